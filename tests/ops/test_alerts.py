"""The alert rules (ops/alerts/*.yml): valid Prometheus rule files, reading only metrics that exist,
each with a runbook that says what it means, how to check and how to fix."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from config.metrics import EXPORTED_NAMES

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "ops" / "alerts").glob("*.yml"))
# Metrics of other exporters that the rules may read: the database host's disk (node_exporter) and
# Prometheus's own scrape health.
EXTERNAL = {"node_filesystem_avail_bytes", "node_filesystem_size_bytes", "up"}
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
SEVERITIES = {"page", "ticket"}
RUNBOOK_SECTIONS = ("## What it means", "## How to check", "## How to fix")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are not functions, keywords, label
    names inside ``{…}`` or ``by (…)``, strings or durations."""
    text = re.sub(r'"(\\.|[^"\\])*"', '""', expr)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group()
        following = text[match.end() :].lstrip()
        if following.startswith("(") or name in KEYWORDS or name.lower() in ("inf", "nan"):
            continue
        names.add(name)
    return names


def all_rules() -> list[dict]:
    rules = []
    for path in RULE_FILES:
        document = yaml.safe_load(path.read_text())
        assert set(document) == {"groups"}, path
        for group in document["groups"]:
            assert set(group) <= {"name", "rules", "interval"} and group["name"] and group["rules"], group
            rules.extend(group["rules"])
    return rules


def test_there_are_rule_files_with_the_alerts_the_issue_asks_for():
    assert RULE_FILES
    names = {rule["alert"] for rule in all_rules()}
    for required in ("OutboxLag", "WebhookDeadLetters", "HighErrorRate", "BookingFailures", "EmrSilent",
                     "DatabaseDiskFilling"):  # fmt: skip
        assert required in names
    assert len(names) == len(all_rules()), "alert names must be unique"


@pytest.mark.parametrize("rule", all_rules(), ids=lambda rule: rule.get("alert", "?"))
def test_each_rule_is_complete_and_reads_only_metrics_that_exist(rule):
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
    assert DURATION.match(rule.get("for", "0s")), rule["for"]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    expr = rule["expr"]
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
    names = metric_names(expr)
    assert names, "an alert that reads no metric cannot fire"
    unknown = names - EXPORTED_NAMES - EXTERNAL
    assert not unknown, f"{rule['alert']} reads metrics nobody exports: {unknown}"
    runbook = ROOT / annotations["runbook_url"]
    assert runbook.is_file(), runbook
    text = runbook.read_text()
    assert rule["alert"] in text.splitlines()[0]
    for section in RUNBOOK_SECTIONS:
        assert section in text, f"{runbook.name} lacks {section}"


def test_the_metric_name_check_catches_a_misspelt_metric():
    assert metric_names('sum by (view) (rate(rdv_http_requests_totl{status=~"5.."}[5m])) > 0') == {
        "rdv_http_requests_totl"
    }
    assert metric_names('max(rdv_a) unless on() max(rdv_b) == 1 or up{job="x"} == 0') == {
        "rdv_a",
        "rdv_b",
        "up",
    }


def test_every_runbook_is_linked_from_an_alert_and_the_index():
    linked = {Path(rule["annotations"]["runbook_url"]).name for rule in all_rules()}
    runbooks = {p.name for p in (ROOT / "docs" / "runbooks").glob("*.md")} - {"README.md"}
    assert runbooks == linked
    index = (ROOT / "docs" / "runbooks" / "README.md").read_text()
    assert all(f"({name})" in index for name in runbooks)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rule_files():
    promtool = str(shutil.which("promtool"))
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
