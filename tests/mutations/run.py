"""Run the product mutation suite: each mutant applied to its own copy of the repository, its guards run there.

    python -m tests.mutations.run [--all | --fast] [--only NAME] [--timeout SECONDS]

A mutant is *killed* when pytest reports a failing test, *survived* when its guards all pass, and
*invalid* when the run says nothing about the tests (a collection or import error, errors only, a
usage error, nothing collected, or a timeout): a mutant that breaks the import is no meaningful
kill. Exits non-zero if any mutant survives or is invalid.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .mutants import FAST, MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
LINKED = (".venv", ".venv-infra", "node_modules")
DEFAULT_TIMEOUT_SECONDS = 900
GIT = shutil.which("git") or "git"


class MutantRotted(Exception):
    """The mutant's `old` text no longer occurs exactly once: the code moved, the list must follow."""


@dataclass
class Outcome:
    mutant: Mutant
    verdict: str  # killed | survived | invalid
    detail: str
    seconds: float


def project_files(root: Path = ROOT) -> list[str]:
    """Tracked files plus new, not ignored ones (a guard may be a test not yet committed)."""
    listed = subprocess.run(
        [GIT, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return sorted({name for name in listed.split("\0") if name and (root / name).is_file()})


def occurrences(mutant: Mutant, root: Path = ROOT) -> int:
    return (root / mutant.file).read_text(encoding="utf-8").count(mutant.old)


def copy_project(target: Path, root: Path = ROOT) -> None:
    for name in project_files(root):
        if name.split("/", 1)[0] in LINKED:
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, destination, follow_symlinks=False)
    for name in LINKED:
        if (root / name).exists():
            (target / name).symlink_to(root / name, target_is_directory=True)


def apply(mutant: Mutant, copy: Path) -> None:
    path = copy / mutant.file
    text = path.read_text(encoding="utf-8")
    count = text.count(mutant.old)
    if count != 1:
        raise MutantRotted(f"{mutant.name}: its text occurs {count} times in {mutant.file}, not once")
    path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")


SUMMARY = re.compile(r"(\d+) (failed|passed|errors?|skipped|deselected|xfailed|xpassed)")


def classify(returncode: int, output: str) -> tuple[str, str]:
    """(verdict, detail) from pytest's exit code and its last summary line."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    summary = lines[-1] if lines else ""
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in SUMMARY.findall(summary)}
    if returncode == 0:
        return "survived", summary
    if returncode == 1 and counts.get("failed"):
        failed = next((line for line in lines if line.startswith("FAILED ")), summary)
        return "killed", failed[:200]
    # 1 with errors only (a fixture or import broke), 2 interrupted/collection error, 3 internal, 4 usage, 5 none.
    error = next((line for line in lines if line.startswith("ERROR ") or "Error" in line), summary)
    return "invalid", f"pytest exit {returncode}: {error[:200]}"


def run_guards(
    guards: tuple[str, ...], mutant: Mutant | None, timeout: float, root: Path = ROOT
) -> tuple[int | None, str]:
    """pytest's exit code (None on a timeout) and output for `guards` in a fresh copy, `mutant` applied if given."""
    with tempfile.TemporaryDirectory(prefix="mutant-") as temp:
        copy = Path(temp)
        copy_project(copy, root)
        if mutant is not None:
            apply(mutant, copy)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        command = [str(copy / ".venv" / "bin" / "python"), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
        # Its own session, so a timeout ends the stand-in, Azurite or whatever else the guards started too.
        with subprocess.Popen(
            [*command, *guards], cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        ) as process:  # fmt: skip
            try:
                output, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                return None, f"timed out after {timeout:g} s"
    return process.returncode, output


def baseline(mutants: tuple[Mutant, ...], timeout: float = DEFAULT_TIMEOUT_SECONDS) -> tuple[bool, str]:
    """Every guard must pass on an unmutated copy, or a "kill" would mean nothing: (passed, pytest's summary)."""
    guards = tuple(dict.fromkeys(g for m in mutants for g in m.guards))
    returncode, output = run_guards(guards, None, timeout * 2)
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return returncode == 0, (lines[-1] if lines else output)


def run_one(mutant: Mutant, timeout: float = DEFAULT_TIMEOUT_SECONDS, root: Path = ROOT) -> Outcome:
    started = time.monotonic()
    returncode, output = run_guards(mutant.guards, mutant, timeout, root)
    if returncode is None:
        return Outcome(mutant, "invalid", output, time.monotonic() - started)
    verdict, detail = classify(returncode, output)
    return Outcome(mutant, verdict, detail, time.monotonic() - started)


def report(outcomes: list[Outcome]) -> str:
    width = max(len(o.mutant.name) for o in outcomes)
    lines = [f"{'mutant':<{width}}  verdict   seconds  detail"]
    lines += [f"{o.mutant.name:<{width}}  {o.verdict:<8}  {o.seconds:7.1f}  {o.detail}" for o in outcomes]
    killed = sum(o.verdict == "killed" for o in outcomes)
    survived = [o.mutant.name for o in outcomes if o.verdict == "survived"]
    invalid = [o.mutant.name for o in outcomes if o.verdict == "invalid"]
    valid = killed + len(survived)
    lines.append("")
    lines.append(f"mutation score: {killed}/{valid} killed ({len(invalid)} invalid, {len(outcomes)} mutants)")
    if survived:
        lines.append("survived: " + "; ".join(survived))
    if invalid:
        lines.append("invalid: " + "; ".join(invalid))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every mutant (the default)")
    which.add_argument("--fast", action="store_true", help="the CI slice: mutants guarded by unit tests only")
    which.add_argument("--only", action="append", metavar="NAME", help="a mutant by name (repeatable)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds per mutant")
    args = parser.parse_args(argv)

    chosen: tuple[Mutant, ...] = FAST if args.fast else MUTANTS
    if args.only:
        by_name = {m.name: m for m in MUTANTS}
        unknown = [name for name in args.only if name not in by_name]
        if unknown:
            parser.error(f"no mutant named {', '.join(map(repr, unknown))}")
        chosen = tuple(by_name[name] for name in args.only)
    rotted = [m.name for m in chosen if occurrences(m) != 1]
    if rotted:
        print("these mutants' text no longer occurs exactly once: " + "; ".join(rotted), file=sys.stderr)
        return 2

    passed, summary = baseline(chosen, args.timeout)
    print(f"baseline (every guard, no mutant): {summary}", flush=True)
    if not passed:
        print("the guards fail without any mutant: fix them first; no kill would mean anything", file=sys.stderr)
        return 2

    outcomes = []
    for mutant in chosen:
        outcome = run_one(mutant, args.timeout)
        print(f"{outcome.verdict:<8} {outcome.seconds:6.1f} s  {mutant.name}", flush=True)
        outcomes.append(outcome)
    print()
    print(report(outcomes), flush=True)
    return 0 if all(o.verdict == "killed" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
