"""The Bicep template as pycep-parser reads it, and helpers to walk its expression trees.

pycep-parser and checkov live in .venv-infra (scripts/setup), not in the app's .venv where the tests run,
so the template is parsed by a subprocess (parse_bicep.py) and read back as JSON. pycep's trees drop the
quotes of string literals: `'Enabled'` and a parameter named Enabled both read "Enabled", so checks that
care compare with the file's parameters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
INFRA_VENV = REPO / ".venv-infra"
INFRA_PYTHON = INFRA_VENV / "bin" / "python"
CHECKOV = INFRA_VENV / "bin" / "checkov"
PARSER = Path(__file__).with_name("parse_bicep.py")
# What `azd up` reads: the template and azure.yaml. Mutation tests copy these.
TEMPLATE_PATHS = ("infra", "azure.yaml")


def infra_tools_missing() -> str | None:
    """Why the infra tools cannot run here, or None when they can."""
    if not INFRA_PYTHON.is_file() or not CHECKOV.is_file():
        return f"{INFRA_VENV.name} is missing: run scripts/setup to install requirements-infra.txt"
    return None


@dataclass(frozen=True)
class Template:
    root: Path  # a project root: infra/ and azure.yaml
    bicep: dict[str, Any]  # path under infra/ -> pycep tree
    errors: dict[str, str]  # path under infra/ -> why pycep could not parse it
    azure_yaml: Any
    pycep_version: str

    def text(self, path: str) -> str:
        """A file under infra/, as written (comments included)."""
        return (self.root / "infra" / path).read_text(encoding="utf-8")

    def tree(self, path: str) -> dict[str, Any]:
        found = self.bicep.get(path)
        return found if isinstance(found, dict) else {}

    def resources(self, path: str) -> dict[str, Any]:
        return section(self.tree(path), "resources")

    def resource(self, path: str, name: str) -> dict[str, Any]:
        """The resource's own properties (through `if` and `for` wrappers); {} when it is not there."""
        return body(self.resources(path).get(name))

    def params(self, path: str) -> dict[str, Any]:
        return section(self.tree(path), "parameters")

    def variables(self, path: str) -> dict[str, Any]:
        return section(self.tree(path), "variables")

    def modules(self, path: str) -> dict[str, Any]:
        return section(self.tree(path), "modules")

    def outputs(self, path: str) -> dict[str, Any]:
        return section(self.tree(path), "outputs")

    def resources_of_type(self, resource_type: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(file, symbolic name, resource) of every resource of that type, in every file."""
        for path in sorted(self.bicep):
            for name, resource in self.resources(path).items():
                if isinstance(resource, dict) and resource.get("type") == resource_type:
                    yield path, name, resource


def section(tree: dict[str, Any], key: str) -> dict[str, Any]:
    found = tree.get(key)
    return found if isinstance(found, dict) else {}


def body(resource: Any) -> dict[str, Any]:
    """A resource's or module's properties, unwrapped from `if (...)` and `[for ...]`."""
    config = resource.get("config") if isinstance(resource, dict) else None
    while isinstance(config, dict) and "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config if isinstance(config, dict) else {}


def condition(resource: Any) -> Any:
    """The `if (...)` of a resource or module, or None."""
    config = resource.get("config") if isinstance(resource, dict) else None
    return config.get("condition") if isinstance(config, dict) else None


def loop(resource: Any) -> dict[str, Any]:
    """The `[for item in array: ...]` of a resource, or {}: {"item_name", "array_name"}."""
    config = resource.get("config") if isinstance(resource, dict) else None
    detail = config.get("loop_type", {}).get("detail") if isinstance(config, dict) else None
    return detail if isinstance(detail, dict) else {}


def dig(value: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(value, dict) and isinstance(key, str):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return None
    return value


def nodes(value: Any) -> Iterator[Any]:
    """Every node of an expression tree, depth first."""
    yield value
    if isinstance(value, dict):
        for child in value.values():
            yield from nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from nodes(child)


def functions(value: Any, name: str) -> list[dict[str, Any]]:
    """The parameters of every call of the Bicep function `name` (pycep's snake_case) in the tree."""
    found = []
    for node in nodes(value):
        call = node.get("function") if isinstance(node, dict) else None
        if isinstance(call, dict) and call.get("type") == name:
            parameters = call.get("parameters")
            found.append(parameters if isinstance(parameters, dict) else {})
    return found


def accessor(value: Any) -> list[Any]:
    """`a.b.c` as ["a", "b", "c"] (pycep nests property accessors); [] when it is not one."""
    access = dig(value, "operator")
    if not isinstance(access, dict) or access.get("type") != "property_accessor":
        return []
    first, rest = dig(access, "operands", "operand_1"), dig(access, "operands", "operand_2")
    tail = accessor(rest) or [rest]
    return [first, *tail]


def literal_values(value: Any, variables: dict[str, Any], seen: frozenset[str] = frozenset()) -> set[str]:
    """Every string an expression can take: through variables, concat/union, arrays and `?:` branches."""
    if isinstance(value, str):
        if value in variables and value not in seen:
            return literal_values(dig(variables, value, "value"), variables, seen | {value})
        return {value}
    if isinstance(value, list):
        return set().union(*(literal_values(item, variables, seen) for item in value))
    if isinstance(value, dict):
        call = value.get("function")
        if isinstance(call, dict) and call.get("type") in ("concat", "union"):
            arguments = call.get("parameters") or {}
            return set().union(*(literal_values(arg, variables, seen) for arg in arguments.values()))
        branches = dig(value, "operator", "operands")
        if dig(value, "operator", "type") == "conditional" and isinstance(branches, dict):
            return literal_values(branches.get("true_value"), variables, seen) | literal_values(
                branches.get("false_value"), variables, seen
            )
    return set()


def load(roots: list[Path]) -> dict[Path, Template]:
    """Parse each project root's template in one subprocess under .venv-infra."""
    completed = subprocess.run(
        [str(INFRA_PYTHON), str(PARSER), *map(str, roots)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"parse_bicep.py failed ({completed.returncode}): {completed.stderr[-2000:]}")
    parsed = json.loads(completed.stdout)
    return {
        root: Template(
            root=root,
            bicep=parsed[str(root)]["bicep"],
            errors=parsed[str(root)]["errors"],
            azure_yaml=parsed[str(root)]["azure_yaml"],
            pycep_version=parsed[str(root)]["pycep_version"],
        )
        for root in roots
    }


def copy_template(destination: Path) -> Path:
    """A copy of what `azd up` reads (infra/, azure.yaml) to break on purpose; returns its root."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in TEMPLATE_PATHS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name)
        else:
            shutil.copy2(source, destination / name)
    return destination
