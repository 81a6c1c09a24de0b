"""The French catalogue is complete, well formed and up to date with the source strings.

French is the default language: a msgid left untranslated shows English to most citizens. These
tests read ``locale/fr/LC_MESSAGES/django.po`` directly (no extra dependency) and fail when:

* an entry has an empty or fuzzy translation;
* a translation loses, adds or renames a placeholder (``%(name)s``, ``%s``) or an HTML tag;
* a simple single-line string marked for translation in the templates or the Python apps is not
  in the catalogue yet (run ``make messages``, translate, then ``make compilemessages``);
* the compiled ``.mo`` file is missing or older than the ``.po`` file.
"""

import ast
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.utils import translation

BASE_DIR = Path(__file__).resolve().parent.parent
PO_PATH = BASE_DIR / "locale" / "fr" / "LC_MESSAGES" / "django.po"
TEMPLATE_DIR = BASE_DIR / "templates"
PYTHON_APPS = ("booking", "citizens", "clinics", "sync", "config")


# --- a minimal .po reader ----------------------------------------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    line: int = 0

    @property
    def translations(self) -> list[str]:
        return [self.msgstr[i] for i in sorted(self.msgstr)]


_PO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _unquote(text: str) -> str:
    text = text.strip()
    assert text.startswith('"') and text.endswith('"'), f"malformed .po string: {text!r}"
    return re.sub(r"\\(.)", lambda m: _PO_ESCAPES.get(m.group(1), m.group(0)), text[1:-1])


def parse_po(path: Path) -> list[Entry]:
    """Entries of a .po file, header included (msgid ""); obsolete (#~) entries are skipped."""
    entries: list[Entry] = []
    entry: Entry | None = None
    target: tuple[str, int | None] | None = None

    def finish():
        if entry is not None and target is not None:
            entries.append(entry)

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#~"):
            continue
        if line.startswith("#"):
            if target is not None and target[0].startswith("msgstr"):
                finish()
                entry, target = None, None
            entry = entry or Entry(line=number)
            if line.startswith("#,"):
                entry.flags.update(flag.strip() for flag in line[2:].split(","))
            continue
        keyword = re.match(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(\".*\")$", line)
        if keyword:
            name, index, value = keyword.group(1), keyword.group(2), _unquote(keyword.group(3))
            if name in ("msgctxt", "msgid") and target is not None and target[0].startswith("msgstr"):
                finish()
                entry = None
            entry = entry or Entry(line=number)
            if name.startswith("msgstr"):
                target = ("msgstr", int(index) if index is not None else 0)
                entry.msgstr[target[1]] = value
            else:
                target = (name, None)
                setattr(entry, name, value)
            continue
        assert line.startswith('"') and entry is not None and target is not None, (
            f"{path.name}:{number}: cannot parse {raw!r}"
        )
        if target[0] == "msgstr":
            entry.msgstr[target[1]] += _unquote(line)
        else:
            setattr(entry, target[0], (getattr(entry, target[0]) or "") + _unquote(line))
    finish()
    return entries


@pytest.fixture(scope="module")
def catalogue() -> list[Entry]:
    assert PO_PATH.exists(), f"{PO_PATH} is missing: run `make messages`"
    return parse_po(PO_PATH)


@pytest.fixture(scope="module")
def messages(catalogue) -> list[Entry]:
    return [entry for entry in catalogue if entry.msgid]


def _where(entry: Entry) -> str:
    return f"{PO_PATH.name}:{entry.line} {entry.msgid!r}"


# --- the catalogue itself ------------------------------------------------------------------------


def test_header_declares_french_plural_rule(catalogue):
    header = next(entry for entry in catalogue if entry.msgid == "")
    text = header.msgstr[0]
    assert "Language: fr\n" in text
    assert "Plural-Forms: nplurals=2; plural=(n > 1);" in text
    assert "charset=UTF-8" in text
    assert "fuzzy" not in header.flags, "the header is still marked fuzzy"


def test_catalogue_is_not_empty(messages):
    assert len(messages) > 100


def test_every_entry_is_translated(messages):
    untranslated = [
        _where(entry)
        for entry in messages
        if not entry.msgstr or not all(s.strip() for s in entry.translations)
    ]
    assert not untranslated, "untranslated entries:\n" + "\n".join(untranslated)


def test_no_fuzzy_entry(messages):
    fuzzy = [_where(entry) for entry in messages if "fuzzy" in entry.flags]
    assert not fuzzy, "fuzzy entries (check the translation, then remove the flag):\n" + "\n".join(fuzzy)


def test_french_elisions_use_the_typographic_apostrophe(messages):
    """One apostrophe throughout the French pages: "l’agenda", never "l'agenda" beside it."""
    straight = re.compile(r"(?<=[^\W\d_])'(?=\w)")
    wrong = [_where(e) for e in messages if any(straight.search(s) for s in e.translations)]
    assert not wrong, "use ’ (U+2019) in French elisions:\n" + "\n".join(wrong)


def test_plural_entries_have_both_french_forms(messages):
    wrong = [_where(e) for e in messages if e.msgid_plural is not None and sorted(e.msgstr) != [0, 1]]
    assert not wrong, "plural entries need msgstr[0] and msgstr[1]:\n" + "\n".join(wrong)


PLACEHOLDER = re.compile(r"%(?:\([A-Za-z_]\w*\))?[-#0 +]*\d*(?:\.\d+)?[sdifrx]")
HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


def _placeholders(text: str) -> Counter:
    return Counter(PLACEHOLDER.findall(text.replace("%%", "")))


def _pairs(entry: Entry):
    """(source, translation) pairs; French uses the singular form for 0 and 1, the plural above."""
    if entry.msgid_plural is None:
        yield entry.msgid, entry.msgstr.get(0, "")
    else:
        yield entry.msgid, entry.msgstr.get(0, "")
        yield entry.msgid_plural, entry.msgstr.get(1, "")


def test_placeholders_are_kept(messages):
    wrong = [
        f"{_where(entry)}: {sorted(_placeholders(source).elements())} != "
        f"{sorted(_placeholders(translated).elements())}"
        for entry in messages
        for source, translated in _pairs(entry)
        if translated and _placeholders(source) != _placeholders(translated)
    ]
    assert not wrong, "placeholders differ between msgid and msgstr:\n" + "\n".join(wrong)


def test_html_tags_are_kept(messages):
    wrong = [
        _where(entry)
        for entry in messages
        for source, translated in _pairs(entry)
        if translated and Counter(HTML_TAG.findall(source)) != Counter(HTML_TAG.findall(translated))
    ]
    assert not wrong, "HTML tags differ between msgid and msgstr:\n" + "\n".join(wrong)


def test_compiled_catalogue_is_current(messages):
    mo_path = PO_PATH.with_suffix(".mo")
    assert mo_path.exists(), f"{mo_path} is missing: run `make compilemessages`"
    assert mo_path.stat().st_mtime >= PO_PATH.stat().st_mtime, (
        f"{mo_path.name} is older than {PO_PATH.name}: run `make compilemessages`"
    )
    stale = []
    with translation.override("fr"):
        for entry in messages:
            if entry.msgctxt is not None:
                continue
            if entry.msgid_plural is None:
                got = translation.gettext(entry.msgid)
            else:
                got = translation.ngettext(entry.msgid, entry.msgid_plural, 2)
            expected = entry.msgstr.get(1 if entry.msgid_plural is not None else 0)
            if got != expected:
                stale.append(_where(entry))
    assert not stale, (
        "the compiled catalogue differs from the .po (run `make compilemessages`):\n" + "\n".join(stale)
    )


# --- the catalogue covers the source strings -----------------------------------------------------

TRANSLATE_TAG = re.compile(r"""{%\s*trans(?:late)?\s+(?P<q>["'])(?P<text>.*?)(?P=q)(?P<rest>[^%]*)%}""")
BLOCK_TAG = re.compile(
    r"{%\s*blocktrans(?:late)?(?P<options>[^%]*)%}(?P<body>.*?){%\s*endblocktrans(?:late)?\s*%}"
)
BLOCK_VARIABLE = re.compile(r"{{\s*([A-Za-z_]\w*)\s*}}")
GETTEXT_CALL = re.compile(
    r"""(?<![\w.])(?:_|gettext|gettext_lazy|gettext_noop|ngettext|ngettext_lazy)\(\s*"""
    r"""(?P<literal>(?P<q>["'])(?:\\.|(?!(?P=q)).)*(?P=q))\s*[,)]"""
)
GETTEXT_FSTRING = re.compile(
    r"""(?<![\w.])(?:_|gettext|gettext_lazy|ngettext|ngettext_lazy)\(\s*[fF][rR]?["']"""
)


def _template_strings() -> list[tuple[str, str]]:
    found = []
    for path in sorted(TEMPLATE_DIR.rglob("*")):
        if not path.is_file() or path.suffix not in (".html", ".txt", ".xml"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            where = f"{path.relative_to(BASE_DIR)}:{number}"
            for match in TRANSLATE_TAG.finditer(line):
                if "context" not in match.group("rest"):
                    found.append((where, match.group("text")))
            for match in BLOCK_TAG.finditer(line):
                options, body = match.group("options"), match.group("body")
                if "context" in options or "{%" in body.replace("{% plural %}", ""):
                    continue
                singular = body.split("{% plural %}")[0]
                if "trimmed" in options:
                    singular = " ".join(singular.split())
                msgid = BLOCK_VARIABLE.sub(r"%(\1)s", singular.replace("%", "%%"))
                found.append((where, msgid))
    return found


def _python_files() -> list[Path]:
    return sorted(
        path
        for app in PYTHON_APPS
        for path in (BASE_DIR / app).rglob("*.py")
        if "migrations" not in path.parts and "__pycache__" not in path.parts
    )


def _python_strings() -> list[tuple[str, str]]:
    found = []
    for path in _python_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in GETTEXT_CALL.finditer(line):
                found.append(
                    (f"{path.relative_to(BASE_DIR)}:{number}", ast.literal_eval(match.group("literal")))
                )
    return found


def test_source_scan_finds_strings():
    # Guards the regular expressions: if they stop matching, the coverage test would pass vacuously.
    assert len(_template_strings()) > 100
    assert len(_python_strings()) > 100


def test_every_marked_string_is_in_the_catalogue(messages):
    msgids = {entry.msgid for entry in messages}
    missing = [
        f"{where}: {text!r}"
        for where, text in _template_strings() + _python_strings()
        if text and text not in msgids
    ]
    assert not missing, (
        "strings marked for translation but missing from the French catalogue "
        "(run `make messages`, translate them, then `make compilemessages`):\n" + "\n".join(missing)
    )


def test_no_f_string_inside_gettext():
    # gettext looks the string up after formatting: an f-string can never be translated.
    wrong = [
        f"{path.relative_to(BASE_DIR)}:{number}"
        for path in _python_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if GETTEXT_FSTRING.search(line)
    ]
    assert not wrong, "f-string inside gettext (use %(name)s placeholders):\n" + "\n".join(wrong)


# --- wording citizens rely on --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msgid", "expected"),
    [
        ("Page not found", "Page introuvable"),
        (
            "The health insurance number has 4 letters and 8 digits, for example TREM 5551 2314.",
            "4 lettres et 8 chiffres",
        ),
        ("This date is in the past. Choose today or a later date.", "passé"),
        (
            "You are not registered with a family doctor, so we show you clinics open to everyone "
            "near a place you choose.",
            "pas inscrit",
        ),
        ("Book an appointment with a family doctor", "médecin de famille"),
        ("Sequence number", "numéro séquentiel"),
        ("E-mail for the confirmation", "Courriel"),
        ("Reason for the visit", "Motif de consultation"),
        ("Nurse practitioner", "Infirmière praticienne spécialisée"),
        ("Format: YYYY-MM-DD.", "AAAA-MM-JJ"),
    ],
)
def test_key_french_wording(messages, msgid, expected):
    translated = {entry.msgid: entry.msgstr.get(0, "") for entry in messages}
    assert msgid in translated, f"{msgid!r} is no longer in the catalogue"
    assert expected.lower() in translated[msgid].lower()
