"""Print, as JSON, what pycep-parser reads in each project's infra/**/*.bicep, plus its azure.yaml.

Runs under .venv-infra/bin/python (scripts/setup), never in the app's .venv: tests/infra/template.py
calls it as a subprocess. Usage: parse_bicep.py PROJECT_ROOT [PROJECT_ROOT ...]; prints
{root: {"pycep_version", "bicep": {path under infra/: tree}, "errors": {path: message}, "azure_yaml"}}.
"""

from __future__ import annotations

import importlib
import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pycep import BicepParser

# PyYAML comes with checkov; by name, because the app's .venv (where mypy runs) does not have it.
yaml = importlib.import_module("yaml")


def parse_project(root: Path, parser: Any) -> dict[str, Any]:
    bicep: dict[str, Any] = {}
    errors: dict[str, str] = {}
    infra = root / "infra"
    for path in sorted(infra.rglob("*.bicep")):
        name = path.relative_to(infra).as_posix()
        try:
            bicep[name] = parser.parse(text=path.read_text(encoding="utf-8"))
        except Exception as exc:  # noqa: BLE001 - lark raises many kinds; each is reported as "cannot parse"
            errors[name] = " ".join(str(exc).split())[:300]
    azure_yaml_path = root / "azure.yaml"
    azure_yaml = yaml.safe_load(azure_yaml_path.read_text(encoding="utf-8")) if azure_yaml_path.is_file() else None
    return {"pycep_version": version("pycep-parser"), "bicep": bicep, "errors": errors, "azure_yaml": azure_yaml}


def main(roots: list[str]) -> None:
    parser = BicepParser()
    result = {root: parse_project(Path(root), parser) for root in roots}
    json.dump(result, sys.stdout, default=str)


if __name__ == "__main__":
    main(sys.argv[1:])
