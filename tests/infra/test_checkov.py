"""checkov over infra/ (Bicep framework, offline): no file it cannot parse, no failed check, and every
skip written in the Bicep as `// checkov:skip=ID: reason` with a reason. checkov exits 0 when it cannot
parse a file, so its JSON report is read instead of its exit code. Not --quiet: that report leaves out
both the unparsable files and the skipped checks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .checks import checkov_problems
from .template import CHECKOV, REPO, copy_template

# Offline: no download of Bridgecrew/Prisma policy metadata or guidelines, no package scan.
OFFLINE = {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
NETWORK_TRACES = re.compile(r"prismacloud|bridgecrew\.cloud|HTTPSConnectionPool|Max retries exceeded", re.I)


def run_checkov(root: Path) -> tuple[Any, str, float]:
    """checkov's JSON report for root/infra, its stderr, and the seconds it took."""
    started = time.monotonic()
    completed = subprocess.run(
        [str(CHECKOV), "-d", "infra", "--framework", "bicep", "--output", "json", "--skip-download"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, **OFFLINE},
    )
    elapsed = time.monotonic() - started
    assert completed.returncode in (0, 1), completed.stderr[-2000:]  # 1: failed checks, still a report
    return json.loads(completed.stdout), completed.stderr, elapsed


def summary(report: Any) -> dict[str, Any]:
    parts = report if isinstance(report, list) else [report]
    found = parts[0].get("summary", parts[0]) if parts and isinstance(parts[0], dict) else {}
    return found if isinstance(found, dict) else {}


def test_checkov_passes_offline(infra_tools: None) -> None:
    report, stderr, elapsed = run_checkov(REPO)
    assert checkov_problems(report) == []
    counts = summary(report)
    print(f"checkov: {counts} in {elapsed:.1f} s")
    assert counts.get("parsing_errors") == 0
    assert counts.get("failed") == 0
    assert counts.get("passed", 0) > 0 and counts.get("resource_count", 0) > 0
    assert not NETWORK_TRACES.search(stderr), stderr[-2000:]


def test_checkov_problems_are_caught(infra_tools: None, tmp_path: Path) -> None:
    """One broken copy, three ways: a check whose skip is gone fails, a skip without a reason, and a file
    checkov cannot parse."""
    root = copy_template(tmp_path / "broken")
    storage = root / "infra" / "app" / "storage.bicep"
    text = storage.read_text(encoding="utf-8")
    skip = re.search(r"^\s*// checkov:skip=CKV_AZURE_206:.*\n", text, re.M)
    assert skip is not None
    storage.write_text(text.replace(skip.group(0), ""), encoding="utf-8")
    function = root / "infra" / "app" / "function.bicep"
    text = function.read_text(encoding="utf-8")
    reasoned = re.search(r"// checkov:skip=CKV_AZURE_17:.*$", text, re.M)
    assert reasoned is not None
    function.write_text(text.replace(reasoned.group(0), "// checkov:skip=CKV_AZURE_17"), encoding="utf-8")
    (root / "infra" / "app" / "broken.bicep").write_text("resource broken 'x' = {\n", encoding="utf-8")

    report, _, _ = run_checkov(root)
    problems = checkov_problems(report)

    assert any(
        p.startswith("checkov CKV_AZURE_206 failed on Microsoft.Storage/storageAccounts.storage") for p in problems
    ), problems
    assert "checkov CKV_AZURE_17 skipped on Microsoft.Web/sites.site without a reason" in problems
    assert any(p.startswith("checkov cannot parse") and p.endswith("broken.bicep") for p in problems), problems
    assert len(problems) == 3, problems


@pytest.mark.parametrize(
    "report",
    [
        {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 0},  # nothing found
        [],
    ],
)
def test_empty_reports_have_no_problems(report: Any) -> None:
    assert checkov_problems(report) == []


def test_a_quiet_report_still_shows_unparsed_files() -> None:
    """--quiet leaves the unparsable files out of results; their count in the summary still fails."""
    quiet = {"check_type": "bicep", "results": {"failed_checks": []}, "summary": {"parsing_errors": 1}}
    assert checkov_problems(quiet) == ["checkov cannot parse 1 file(s) (run it without --quiet)"]
