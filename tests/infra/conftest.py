"""Infra fixtures: the template parsed by pycep-parser in .venv-infra (tests/infra/template.py)."""

from __future__ import annotations

import os

import pytest

from .template import REPO, Template, infra_tools_missing, load


@pytest.fixture(scope="session")
def infra_tools() -> None:
    """Skip when .venv-infra is missing on a developer's machine; in CI that is a failure."""
    reason = infra_tools_missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI must run the infra checks)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_template(infra_tools: None) -> Template:
    return load([REPO])[REPO]
