"""The layers of shared/ hold: use cases and domain import no adapter, entry point or SDK, even transitively;
blueprints never import each other; deployed code never imports the stand-in."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "shared"
INNER_LAYERS = ("shared.domain", "shared.usecases")
OUTER = ("shared.adapters", "shared.entrypoints", "shared.bootstrap")
# Modules the inner layers may reach outside the standard library: the settings they are configured with.
INNER_MAY_IMPORT = {"shared.settings"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@cache
def imports(module: str) -> frozenset[str]:
    """Every module `module` names in an import statement, at any depth of its body (lazy imports included)."""
    tree = ast.parse(MODULES[module].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(
                f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in MODULES
            )
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{module}: relative import; the project imports `shared.…` absolutely")
    return frozenset(found)


def closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        for name in imports(current):
            if name in MODULES and name not in seen:
                seen.add(name)
                todo.append(name)
            elif name not in MODULES:
                seen.add(name)
    return seen


def is_stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names or name == "__future__"


def test_the_layer_folders_exist_and_hold_every_module() -> None:
    top = {m for m in MODULES if m.count(".") == 1}
    assert top <= {"shared.bootstrap", "shared.settings", "shared.domain", "shared.usecases", "shared.adapters",
                   "shared.entrypoints"}, top  # fmt: skip
    assert all(MODULES[m].with_name("__init__.py").exists() for m in MODULES)


def test_no_use_case_or_domain_module_reaches_an_adapter_an_entry_point_or_an_sdk() -> None:
    inner = [m for m in MODULES if m.startswith(INNER_LAYERS)]
    assert len(inner) > 10, inner
    for module in inner:
        reached = closure(module)
        outward = sorted(n for n in reached if n.startswith(OUTER))
        assert not outward, f"{module} reaches {outward}"
        foreign = sorted(n for n in reached if not is_stdlib(n) and not n.startswith(("shared.", "shared")))
        assert not foreign, f"{module} reaches third-party {foreign}"
        shared_outside = sorted(
            n for n in reached if n.startswith("shared") and not n.startswith(INNER_LAYERS) and n in MODULES
        )
        assert set(shared_outside) <= INNER_MAY_IMPORT | {"shared"}, f"{module} reaches {shared_outside}"


# What each layer may import from the package (itself included): imports point inward only. Adapters and
# entry points are both outer, and neither may import the other: entry points reach adapters only through
# the composition root, which alone knows every layer.
MAY_IMPORT = {
    "shared.domain": ("shared.domain",),
    "shared.settings": ("shared.domain", "shared.settings"),
    "shared.usecases": ("shared.domain", "shared.settings", "shared.usecases"),
    "shared.adapters": ("shared.domain", "shared.settings", "shared.adapters"),
    # ... and the telemetry set-up, which a process entry (function_app.py, the CLI) runs before anything else
    # logs; going through the composition root would load every SDK for `--help`.
    "shared.entrypoints": (
        "shared.domain",
        "shared.settings",
        "shared.usecases",
        "shared.entrypoints",
        "shared.bootstrap",
        "shared.adapters.telemetry",
    ),
    "shared.bootstrap": ("shared.domain", "shared.settings", "shared.usecases", "shared.adapters", "shared.bootstrap"),
}


def layer_of(module: str) -> str:
    return next(layer for layer in MAY_IMPORT if module == layer or module.startswith(layer + "."))


def test_every_import_points_inward() -> None:
    wrong = []
    for module in MODULES:
        if module == "shared":
            continue
        allowed = MAY_IMPORT[layer_of(module)]
        for name in imports(module):
            if name.startswith("shared.") and not name.startswith(allowed):
                wrong.append(f"{module} imports {name}")
    assert not wrong, wrong


def test_nothing_imports_by_name_at_run_time() -> None:
    """importlib and __import__ would hide an import from the checks above."""
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = ast.unparse(node.func)
                assert called not in ("__import__", "importlib.import_module", "import_module"), (module, called)
        assert "importlib" not in imports(module), module


def test_importing_every_use_case_loads_no_sdk() -> None:
    """The same at run time, in a fresh interpreter: what the use cases import, and nothing else, is loaded."""
    inner = [m for m in MODULES if m.startswith(INNER_LAYERS)]
    probe = (
        f"import sys\nfor m in {inner!r}: __import__(m)\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'azure', 'msgraph', 'kiota_abstractions', "
        "'kiota_http', 'aiohttp', 'httpx', 'opentelemetry'}))\n"
        "print(sorted(n for n in sys.modules if n.startswith(('shared.adapters', 'shared.entrypoints', 'shared.bootstrap', 'emulator'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["[]", "[]"], done.stdout


def test_blueprints_never_import_each_other() -> None:
    blueprints = {m for m, p in MODULES.items() if "func.Blueprint()" in p.read_text()}
    assert blueprints >= {"shared.entrypoints.http_api", "shared.entrypoints.rotation_api", "shared.entrypoints.warmup"}
    for module in blueprints:
        others = sorted(n for n in closure(module) if n in blueprints and n != module)
        assert not others, f"{module} reaches the blueprint(s) {others}"


def test_deployed_code_never_imports_the_stand_in() -> None:
    deployed = [*MODULES, "function_app"]
    for module in MODULES:
        assert not any(n == "emulator" or n.startswith("emulator.") for n in imports(module)), module
    app = ast.parse((REPO / "function_app.py").read_text())
    names = {n.module for n in ast.walk(app) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(app) if isinstance(n, ast.Import) for a in n.names
    }
    assert not any(str(n).startswith("emulator") for n in names), deployed
