"""No template of ours carries inline code the Content Security Policy would block: no <script>
without src (except the nonced Swagger UI start-up script), no <style>, no style="" attribute and
no on*="" handler. Quicker than the browser and names the file. E-mails are exempt: a mail client
does not apply our policy, and inline styles are how e-mail is styled."""

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
EXEMPT_DIRS = ("email",)

INLINE = [
    (
        "inline <script>",
        re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*\bnonce=)(?![^>]*type=\"application/json\")[^>]*>"),
    ),
    ("<style> element", re.compile(r"<style\b")),
    ('style="" attribute', re.compile(r"\sstyle\s*=")),
    ("on* handler", re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)),
]


def test_no_template_carries_inline_script_or_style():
    problems = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        if any(part in EXEMPT_DIRS for part in path.relative_to(TEMPLATES).parts):
            continue
        text = re.sub(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", "", path.read_text(), flags=re.DOTALL)
        for label, pattern in INLINE:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{path.relative_to(TEMPLATES)}:{line}: {label}")
    assert problems == [], "move inline code to static/<app>/ (docs/security.md):\n" + "\n".join(problems)
