"""Infra fixtures: the template parsed by pycep-parser in .venv-infra (tests/infra/template.py)."""

from __future__ import annotations

import os

import pytest

from .template import REPO, Template, infra_tools_missing, load

# The one way to run without the infra tools: named, so a run that skips them says so on purpose.
OPT_OUT = "SKIP_INFRA_TOOLS"


@pytest.fixture(scope="session")
def infra_tools() -> None:
    """Fail when .venv-infra is missing, unless the run opted out with SKIP_INFRA_TOOLS=1."""
    reason = infra_tools_missing()
    if reason is None:
        return
    if os.environ.get(OPT_OUT) == "1":
        pytest.skip(f"{reason}; skipped because {OPT_OUT}=1")
    pytest.fail(f"{reason}, or set {OPT_OUT}=1 to skip the infra checks on purpose")


@pytest.fixture(scope="session")
def real_template(infra_tools: None) -> Template:
    return load([REPO])[REPO]
