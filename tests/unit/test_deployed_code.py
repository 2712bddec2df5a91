"""The deployed code (function_app.py and shared/) never imports the stand-in, which .funcignore keeps out."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOYED = [REPO / "function_app.py", *sorted((REPO / "shared").rglob("*.py"))]


def _emulator_imports(path: Path) -> list[str]:
    """Where `path` imports emulator: at the top, in a function or under TYPE_CHECKING alike."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "emulator" or name.startswith("emulator.") for name in names):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_no_deployed_module_imports_the_emulator() -> None:
    assert len(DEPLOYED) > 10, "the deployed code was not found"
    found = [where for path in DEPLOYED for where in _emulator_imports(path)]
    assert found == [], f"deployed code imports emulator, which is not deployed: {found}"
