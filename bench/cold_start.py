"""Cold start of the function app: its import against the SDKs it needs, and the first onboarding's one-time cost.

1. Import, in fresh interpreters (median of --runs, interleaved so drift on this shared machine
   hits every variant alike), each with the app settings the Functions host would set,
   Application Insights included:
   - `import function_app`, then indexing it (`app.get_functions()`), as the host does at start;
   - the floor: the four design packages, `azure.functions`, `azure.identity.aio`,
     `azure.keyvault.secrets.aio` and `msgraph`. Fixed: it does not move with the code measured;
   - `import function_app`, then composing its services (`bootstrap.services()`: every adapter and
     SDK, the audit exporter's pipeline), which the `warmup` trigger or the first request pays;
   - a bare interpreter, the part of every figure no code can cut.
   Wall time from spawn to exit and peak RSS (the child's ru_maxrss), each as a ratio to the
   floor, and the import alone as timed inside the child. Goal: function_app <= 1.2x the floor,
   wall and peak RSS. Then, from one more process of each under -X importtime, the import's self
   time by top-level package beside the floor's, so a regression names its package.
2. The first onboarding in a fresh process against the second in the same process, through the
   registered PUT handler with azure.functions.HttpRequest objects, against a fresh stand-in in
   vendor-hosted mode (each onboarding is a customer tenant of its own, so the second pays its
   tenant's own costs and first - second is what a process pays once). Median of
   --onboard-runs processes, cold (restart or scale from zero: nothing runs before the first
   request) and after the `warmup` function (the host runs it when it adds an instance). One
   more cold process under -X importtime names the modules the first onboarding imports.

Run: .venv/bin/python -m bench.cold_start [--runs 10] [--onboard-runs 5] [--no-storage]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, NamedTuple

from bench.world import INTEGRATION, VendorWorld, azurite_installed, start_world

REPO = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.2
# The design's four packages (README): what any implementation of this app on its SDKs imports.
FLOOR_PACKAGES = ("azure.functions", "azure.identity.aio", "azure.keyvault.secrets.aio", "msgraph")

IMPORT_APP = """
import time
started = time.perf_counter()
import function_app
function_app.app.get_functions()  # the host indexes the app at start
print(time.perf_counter() - started)
"""

IMPORT_FLOOR = (
    "import time\nstarted = time.perf_counter()\n"
    + "".join(f"import {name}\n" for name in FLOOR_PACKAGES)
    + "print(time.perf_counter() - started)\n"
)

IMPORT_AND_COMPOSE = """
import time
started = time.perf_counter()
import function_app
function_app.app.get_functions()
from shared import bootstrap
bootstrap.services()  # what the warmup trigger, or else the first request, pays
print(time.perf_counter() - started)
"""

ONBOARD = (
    f"INTEGRATION = {INTEGRATION!r}\n"
    + """
import asyncio, json, sys, time
started = time.perf_counter()
import function_app
functions = {str(f.get_function_name()): f.get_user_function() for f in function_app.app.get_functions()}
imported = time.perf_counter() - started
import azure.functions as func
from azure.functions.warmup import WarmUpContext
from shared import bootstrap

async def put(tenant):
    request = func.HttpRequest(
        "PUT", f"http://localhost:7071/api/tenants/{tenant}/integrations/{INTEGRATION}",
        headers={}, params={}, route_params={"tenantId": tenant, "integration": INTEGRATION}, body=b"",
    )
    began = time.perf_counter()
    response = await functions["onboard_integration"](request)
    return time.perf_counter() - began, response.status_code

async def main(tenants, warm):
    result = {"import": imported, "warmup": None}
    if warm and "warmup" in functions:
        began = time.perf_counter()
        await functions["warmup"](WarmUpContext())
        result["warmup"] = time.perf_counter() - began
    result["first"], first_status = await put(tenants[0])
    result["second"], second_status = await put(tenants[1])
    result["statuses"] = [first_status, second_status]
    await bootstrap.services().close()
    print(json.dumps(result))

asyncio.run(main(json.loads(sys.argv[1]), sys.argv[2] == "warm"))
"""
)


class Sample(NamedTuple):
    wall: float  # seconds, spawn to exit
    rss_kib: int  # the child's peak resident set
    stdout: str
    stderr: str


# Children are started by a small spawner process, not by this one: Linux keeps a process's peak
# RSS across fork and exec, so a child forked from this ~50 MiB benchmark would report at least
# that. The spawner is a bare interpreter (no site, os and json only) that forks, execs, and
# reports wall time and the child's own ru_maxrss from wait4.
SPAWNER = """
import json, os, sys, time
for line in sys.stdin:
    job = json.loads(line)
    out = os.open(job["stdout"], os.O_WRONLY | os.O_TRUNC)
    err = os.open(job["stderr"], os.O_WRONLY | os.O_TRUNC)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0); os.dup2(out, 1); os.dup2(err, 2)
            os.chdir(job["cwd"])
            os.execve(job["argv"][0], job["argv"], job["env"])
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    os.close(out); os.close(err)
    print(json.dumps({"wall": wall, "rss_kib": usage.ru_maxrss, "code": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class Spawner:
    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", SPAWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._folder = tempfile.TemporaryDirectory(prefix="cold-start-")
        self._out, self._err = Path(self._folder.name, "out"), Path(self._folder.name, "err")
        self._out.touch(mode=0o600)
        self._err.touch(mode=0o600)

    def run(self, code: str, env: dict[str, str], *args: str, python_flags: tuple[str, ...] = ()) -> Sample:
        assert self._process.stdin is not None and self._process.stdout is not None
        job = {
            "argv": [sys.executable, *python_flags, "-c", code, *args],
            "env": env,
            "cwd": str(REPO),
            "stdout": str(self._out),
            "stderr": str(self._err),
        }
        self._process.stdin.write(json.dumps(job) + "\n")
        self._process.stdin.flush()
        report = json.loads(self._process.stdout.readline())
        stdout, stderr = self._out.read_text(), self._err.read_text()
        if report["code"] != 0:
            raise RuntimeError(f"child failed ({report['code']}):\n{stderr[-3000:]}")
        return Sample(report["wall"], report["rss_kib"], stdout, stderr)  # ru_maxrss: KiB on Linux

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait()
        self._folder.cleanup()


# --- measurements ---


def measure_imports(spawner: Spawner, runs: int, env: dict[str, str]) -> dict[str, list[Sample]]:
    variants = {
        "import function_app (+ index)": IMPORT_APP,
        "floor: the four design packages": IMPORT_FLOOR,
        "function_app + services composed": IMPORT_AND_COMPOSE,
        "bare interpreter": "print(0.0)\n",
    }
    for code in variants.values():
        spawner.run(code, env)  # bytecode caches written, files in the page cache
    samples: dict[str, list[Sample]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, code in variants.items():
            samples[name].append(spawner.run(code, env))
    return samples


def measure_onboarding(spawner: Spawner, world: VendorWorld, runs: int, warm: bool) -> list[dict[str, Any]]:
    env = dict(os.environ, **world.app_settings())
    results = []
    for _ in range(runs):
        tenants = world.new_tenants(2)
        sample = spawner.run(ONBOARD, env, json.dumps(tenants), "warm" if warm else "cold")
        result = json.loads(sample.stdout.strip().splitlines()[-1])
        if result["statuses"] != [201, 201]:
            raise RuntimeError(f"onboarding answered {result['statuses']}:\n{sample.stderr[-3000:]}")
        results.append(result)
    return results


def first_onboarding_imports(
    spawner: Spawner, world: VendorWorld, top: int = 8
) -> tuple[float, int, list[tuple[str, float]]]:
    """Self time of the modules imported after function_app was indexed (the first onboarding's imports)."""
    env = dict(os.environ, **world.app_settings())
    sample = spawner.run(ONBOARD, env, json.dumps(world.new_tenants(2)), "cold", python_flags=("-X", "importtime"))
    lines = [line for line in sample.stderr.splitlines() if line.startswith("import time:") and "self [us]" not in line]
    end = max(i for i, line in enumerate(lines) if line.rstrip().endswith("| function_app"))
    total, count, roots = 0, 0, []
    for line in lines[end + 1 :]:
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        total, count = total + int(self_us), count + 1
        if len(name) - len(name.lstrip()) <= 2:  # imported by non-library code or a library's top
            roots.append((name.strip(), int(cumulative_us) / 1e6))
    return total / 1e6, count, sorted(roots, key=lambda r: -r[1])[:top]


def import_breakdown(spawner: Spawner, env: dict[str, str]) -> dict[str, dict[str, float]]:
    """Self time (ms) under -X importtime by top-level package: the app's import and the floor's."""
    result: dict[str, dict[str, float]] = {}
    for name, code in (("app", IMPORT_APP), ("floor", IMPORT_FLOOR)):
        sample = spawner.run(code, env, python_flags=("-X", "importtime"))
        by_package: collections.defaultdict[str, float] = collections.defaultdict(float)
        for line in sample.stderr.splitlines():
            if line.startswith("import time:") and "self [us]" not in line:
                self_us, _, module = line.removeprefix("import time:").split("|")
                parts = module.strip().split(".")
                # azure.* is many distributions: name each (azure.identity, azure.storage, ...).
                package = ".".join(parts[:2]) if parts[0] == "azure" and len(parts) > 1 else parts[0]
                by_package[package] += int(self_us) / 1000
        result[name] = dict(by_package)
    return result


def _median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="fresh processes per import variant")
    parser.add_argument("--onboard-runs", type=int, default=5, help="fresh processes per onboarding variant")
    parser.add_argument("--no-storage", action="store_true", help="process locks instead of blob leases in Azurite")
    args = parser.parse_args()
    storage = not args.no_storage and azurite_installed()

    world = start_world(storage=storage)
    spawner = Spawner()
    try:
        # As in Azure, where Application Insights is configured: function_app then also sets up the audit
        # exporter at import (shared/adapters/telemetry.py). Nothing listens on the endpoint; nothing is sent at import.
        app_insights = {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint=http://127.0.0.1:9/",
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        }
        env = dict(os.environ, **world.app_settings(), **app_insights)
        samples = measure_imports(spawner, args.runs, env)
        names = list(samples)
        floor_wall = _median([s.wall for s in samples[names[1]]])
        floor_rss = _median([s.rss_kib for s in samples[names[1]]])
        bare_wall = _median([s.wall for s in samples[names[3]]])
        print(f"import, median of {args.runs} fresh processes, Application Insights configured")
        print(f"  {'':<36} {'wall':>8} {'x floor':>8} {'import':>8} {'peak RSS':>10} {'x floor':>8}")
        for name in names:
            wall = _median([s.wall for s in samples[name]])
            inside = _median([float(s.stdout.strip()) for s in samples[name]])
            rss = _median([s.rss_kib for s in samples[name]])
            print(
                f"  {name:<36} {wall * 1000:6.0f} ms {wall / floor_wall:7.2f}x {inside * 1000:6.0f} ms "
                f"{rss / 1024:7.1f} MiB {rss / floor_rss:7.2f}x"
            )
        app_wall = _median([s.wall for s in samples[names[0]]])
        app_rss = _median([s.rss_kib for s in samples[names[0]]])
        met = app_wall / floor_wall <= GOAL_RATIO and app_rss / floor_rss <= GOAL_RATIO
        print(
            f"  function_app above the bare interpreter: {(app_wall - bare_wall) / (floor_wall - bare_wall):.2f}x "
            f"the floor's; goal <= {GOAL_RATIO}x, wall and peak RSS: {'met' if met else 'MISSED'}"
        )
        breakdown = import_breakdown(spawner, env)
        app, floor = breakdown["app"], breakdown["floor"]
        print("  self time under -X importtime by top-level package (one process each), largest first:")
        print(f"    {'package':<32} {'function_app':>12} {'floor':>8}")
        for package in sorted(set(app) | set(floor), key=lambda p: -max(app.get(p, 0), floor.get(p, 0)))[:14]:
            print(f"    {package:<32} {app.get(package, 0):9.1f} ms {floor.get(package, 0):5.1f} ms")
        print(f"    {'all':<32} {sum(app.values()):9.1f} ms {sum(floor.values()):5.1f} ms")

        locks = "blob leases in Azurite" if storage else "process locks"
        print(f"\nfirst vs second onboarding ({INTEGRATION}, vendor-hosted, {locks}), median of {args.onboard_runs}:")
        print(f"  {'':<44} {'import':>8} {'warm-up':>8} {'first':>8} {'second':>8} {'one-time':>9}")
        for label, warm in (
            ("cold (restart, scale from zero)", False),
            ("after the warmup function (scale-out)", True),
        ):
            results = measure_onboarding(spawner, world, args.onboard_runs, warm)
            first, second = _median([r["first"] for r in results]), _median([r["second"] for r in results])
            warmups = [r["warmup"] for r in results if r["warmup"] is not None]
            if warm and not warmups:
                print(f"  {label:<44} (function_app registers no warmup function)")
                continue
            warmup = _median(warmups) if warm else None
            print(
                f"  {label:<44} {_median([r['import'] for r in results]) * 1000:6.0f} ms "
                f"{(f'{warmup * 1000:6.0f} ms' if warmup is not None else '       -'):>8} "
                f"{first * 1000:6.0f} ms {second * 1000:6.0f} ms {(first - second) * 1000:7.0f} ms"
            )
        total, count, roots = first_onboarding_imports(spawner, world)
        print(
            f"  the cold first onboarding imports {count} modules, {total * 1000:.0f} ms under -X importtime; largest:"
        )
        for name, seconds in roots:
            print(f"    {seconds * 1000:6.1f} ms  {name}")
    finally:
        spawner.close()
        world.stop()


if __name__ == "__main__":
    main()
