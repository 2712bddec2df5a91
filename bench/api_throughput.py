"""Throughput of the HTTP API in one worker process, and whether anything blocks its event loop.

Onboardings of distinct customer tenants (vendor-hosted mode; each tenant created through the
stand-in's admin API and consented to the provisioner app) through the registered PUT handler
with azure.functions.HttpRequest objects, as the Functions worker calls it, at 1, 8 and 32 in
flight. For each level: onboardings per second, p50 and p95 latency, and the CPU each process
spent per onboarding (this worker, the stand-in, Azurite) read from /proc. The floor is the
same run's 1-in-flight figure: the ratio says how much concurrency buys.

Event-loop blocking, measured two ways while the load runs:
- a probe task sleeps 10 ms over and over and records how late it wakes up (the loop's stall);
- a watchdog thread samples the loop thread's stack whenever the probe has not ticked for
  --stall-ms, naming the code that held the loop (aggregated by the innermost frames of the
  product and of the libraries it calls).
With --debug, one more pass at 8 in flight runs asyncio's debug mode and lists the callbacks it
reports as slower than --stall-ms.

Everything runs on this machine's 2 cores, the stand-in and Azurite included, so the figures are
bounded by the stand-in's CPU; the CPU shares say which process the machine spent itself on.

Run: .venv/bin/python -m bench.api_throughput [--onboardings 32] [--levels 1,8,32] [--no-storage] [--debug]
     [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bench.world import INTEGRATION, VendorWorld, azurite_installed, start_world

REPO = Path(__file__).resolve().parents[1]
PROBE_SECONDS = 0.010


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> tuple[float, float]:
    """(CPU seconds all cores spent busy, and in total) since boot, from /proc/stat."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


@dataclass
class StallWatch:
    """The probe (a task on the loop) and the watchdog (a thread) that names what blocked the loop."""

    loop: asyncio.AbstractEventLoop
    stall_seconds: float
    overshoots: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)  # loop-thread CPU between two ticks
    culprits: collections.Counter[str] = field(default_factory=collections.Counter)
    _last_tick: float = 0.0
    _sampled: bool = False
    _running: bool = True
    _loop_thread: int = 0

    async def probe(self) -> None:
        self._loop_thread = threading.get_ident()
        while self._running:
            self._last_tick, cpu = time.perf_counter(), time.thread_time()
            self._sampled = False
            await asyncio.sleep(PROBE_SECONDS)
            self.overshoots.append(time.perf_counter() - self._last_tick - PROBE_SECONDS)
            self.busy.append(time.thread_time() - cpu)

    def watchdog(self) -> None:
        while self._running:
            time.sleep(0.002)
            if self._last_tick and not self._sampled and time.perf_counter() - self._last_tick > self.stall_seconds:
                frame = sys._current_frames().get(self._loop_thread)
                if frame is not None:
                    self.culprits[_where(frame)] += 1
                self._sampled = True  # one sample per stall

    def stop(self) -> None:
        self._running = False


def _where(frame: FrameType) -> str:
    """The innermost frame in the product and the innermost in a library, for a stalled loop's stack."""
    stack = traceback.extract_stack(frame)
    ours = next((f for f in reversed(stack) if "/shared/" in f.filename or "/bench/" in f.filename), None)
    library = next((f for f in reversed(stack) if "site-packages" in f.filename or "/lib/python" in f.filename), None)

    def short(f: traceback.FrameSummary | None) -> str:
        if f is None:
            return "-"
        name = f.filename.split("site-packages/")[-1].split("/lib/python3.11/")[-1].split(str(REPO) + "/")[-1]
        return f"{name}:{f.lineno} {f.name}"

    return f"{short(ours)}  <-  {short(library)}"


@dataclass
class Level:
    in_flight: int
    count: int
    seconds: float
    latencies: list[float]
    statuses: collections.Counter[int]
    overshoots: list[float]
    busy: list[float]
    culprits: collections.Counter[str]
    cpu: dict[str, float]  # process -> CPU seconds spent during the level
    machine_share: float  # how busy all cores were, 0..1

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_level(
    put: Callable[[str], Awaitable[int]],
    tenants: list[str],
    in_flight: int,
    pids: dict[str, int],
    stall_seconds: float,
) -> Level:
    loop = asyncio.get_running_loop()
    watch = StallWatch(loop, stall_seconds)
    probe = asyncio.create_task(watch.probe())
    watchdog = threading.Thread(target=watch.watchdog, daemon=True)
    watchdog.start()
    await asyncio.sleep(PROBE_SECONDS * 2)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for tenant in tenants:
        queue.put_nowait(tenant)
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()

    async def worker() -> None:
        while not queue.empty():
            tenant = queue.get_nowait()
            began = time.perf_counter()
            statuses[await put(tenant)] += 1
            latencies.append(time.perf_counter() - began)

    cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    busy_before, total_before = _machine_busy_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    seconds = time.perf_counter() - started
    cpu = {name: _cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    busy_after, total_after = _machine_busy_seconds()
    cpu["machine (all processes)"] = busy_after - busy_before
    machine_share = (busy_after - busy_before) / (total_after - total_before)
    watch.stop()
    await probe
    watchdog.join()
    return Level(
        in_flight,
        len(tenants),
        seconds,
        latencies,
        statuses,
        watch.overshoots,
        watch.busy,
        watch.culprits,
        cpu,
        machine_share,
    )


class SlowCallbacks(logging.Handler):
    """Collects asyncio debug mode's "Executing <...> took N seconds" warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing "):
            self.found.append(message)


def _summarise_slow(messages: list[str], top: int = 8) -> list[tuple[str, int, float]]:
    """(what ran, count, worst seconds): a task step by its coroutine and line, a callback by its name."""
    groups: dict[str, list[float]] = collections.defaultdict(list)
    for message in messages:
        what, took = message.removeprefix("Executing ").rsplit(" took ", 1)
        if "coro=<" in what:
            coro = what.split("coro=<", 1)[1]
            name = coro.split("(", 1)[0].split(" ", 1)[0]
            at = coro.split(" running at ", 1)[1].split(">", 1)[0] if " running at " in coro else ""
            what = f"task {name} at {at.rsplit('/', 2)[-2:] and '/'.join(at.rsplit('/', 2)[-2:])}"
        else:
            what = what.split(" created at ", 1)[0].removeprefix("<").split("(", 1)[0]
        groups[what].append(float(took.split()[0]))
    ranked = sorted(groups.items(), key=lambda item: -max(item[1]))
    return [(name, len(times), max(times)) for name, times in ranked[:top]]


async def benchmark(world: VendorWorld, args: argparse.Namespace) -> None:
    import azure.functions as func
    from azure.functions.warmup import WarmUpContext

    import function_app
    from shared import bootstrap

    functions = {str(f.get_function_name()): f.get_user_function() for f in function_app.app.get_functions()}

    async def put(tenant: str) -> int:
        request = func.HttpRequest(
            "PUT",
            f"http://localhost:7071/api/tenants/{tenant}/integrations/{INTEGRATION}",
            headers={},
            params={},
            route_params={"tenantId": tenant, "integration": INTEGRATION},
            body=b"",
        )
        response = await functions["onboard_integration"](request)
        if response.status_code >= 400:
            print(f"  {response.status_code}: {json.loads(response.get_body()).get('detail')}", file=sys.stderr)
        return int(response.status_code)

    pids = {"worker (this process)": os.getpid(), "stand-in": world.stand_in.process.pid}
    if world.azurite is not None:
        pids["Azurite"] = world.azurite.process.pid  # type: ignore[attr-defined]
    if "warmup" in functions:
        await functions["warmup"](WarmUpContext())
    for tenant in world.new_tenants(2):  # one-time costs and the first tenant's, outside the timed runs
        await put(tenant)

    levels = [int(n) for n in args.levels.split(",")]
    results = []
    for in_flight in levels:
        tenants = world.new_tenants(max(args.onboardings, 2 * in_flight))
        profiler = cProfile.Profile() if args.profile and in_flight == levels[-1] else None
        if profiler is not None:
            profiler.enable()
        results.append(await run_level(put, tenants, in_flight, pids, args.stall_ms / 1000))
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)

    slow: list[str] = []
    if args.debug:
        handler = SlowCallbacks()
        logging.getLogger("asyncio").addHandler(handler)
        logging.getLogger("asyncio").setLevel(logging.WARNING)
        logging.getLogger("asyncio").propagate = False  # collected, not printed
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = args.stall_ms / 1000
        try:
            await run_level(put, world.new_tenants(args.onboardings), 8, pids, args.stall_ms / 1000)
        finally:
            loop.set_debug(False)
            logging.getLogger("asyncio").removeHandler(handler)
        slow = handler.found
    await bootstrap.services().close()
    report(results, slow, args, world)


def report(results: list[Level], slow: list[str], args: argparse.Namespace, world: VendorWorld) -> None:
    locks = "blob leases in Azurite" if world.azurite is not None else "process locks"
    print(
        f"onboardings of distinct tenants ({INTEGRATION}, vendor-hosted, {locks}), one worker process, {os.cpu_count()} cores:"
    )
    floor = results[0].rate
    processes = [name for name in results[0].cpu if not name.startswith("machine")]
    cpu_header = "".join(f" {name.split(' ')[0] + ' CPU':>14}" for name in processes)
    print(
        f"  {'in flight':>9} {'count':>6} {'rate':>9} {'x 1st':>6} {'p50':>8} {'p95':>8} {'max stall':>10} {'p99 stall':>10} {'max busy':>9}"
        f"{cpu_header} {'all cores busy':>15}  statuses"
    )
    for level in results:
        shares = "".join(
            f" {level.cpu[name] / level.count * 1000:5.0f} ms {level.cpu[name] / level.seconds * 100:3.0f}%"
            for name in processes
        )
        statuses = ", ".join(f"{count}x {status}" for status, count in sorted(level.statuses.items()))
        print(
            f"  {level.in_flight:>9} {level.count:>6} {level.rate:7.2f}/s {level.rate / floor:5.2f}x "
            f"{_percentile(level.latencies, 0.5) * 1000:6.0f} ms {_percentile(level.latencies, 0.95) * 1000:6.0f} ms "
            f"{max(level.overshoots) * 1000:7.1f} ms {_percentile(level.overshoots, 0.99) * 1000:7.1f} ms {max(level.busy) * 1000:6.1f} ms{shares} {level.machine_share * 100:14.0f}%  {statuses}"
        )
    print(
        "  (stall: how late a 10 ms sleep on the loop woke up; busy: the most CPU the loop thread spent between two\n"
        "  such wake-ups, so a stall well above it was the machine, not this process; CPU columns: CPU time per\n"
        "  onboarding, and the share of one core while the level ran)"
    )
    culprits: collections.Counter[str] = collections.Counter()
    for level in results:
        culprits.update(level.culprits)
    total = sum(culprits.values())
    print(f"loop stalls over {args.stall_ms:g} ms caught by the watchdog: {total}")
    for where, count in culprits.most_common(10):
        print(f"  {count:4d}  {where}")
    if args.debug:
        print(f"asyncio debug mode, 8 in flight: {len(slow)} callbacks slower than {args.stall_ms:g} ms")
        for name, count, worst in _summarise_slow(slow):
            print(f"  {count:4d}  worst {worst * 1000:6.1f} ms  {name}")
    last = results[-1]
    ours = sum(seconds for name, seconds in last.cpu.items() if not name.startswith("machine"))
    per_onboarding = {name: seconds / last.count for name, seconds in last.cpu.items()}
    worker = per_onboarding["worker (this process)"]
    together = sum(v for name, v in per_onboarding.items() if not name.startswith("machine"))
    print(
        f"capacity from CPU per onboarding at {last.in_flight} in flight: one worker's event loop (one core) "
        f"{1 / worker:.1f}/s; this machine's {os.cpu_count()} cores for worker + stand-in"
        + (" + Azurite" if world.azurite is not None else "")
        + f" alone {(os.cpu_count() or 1) / together:.1f}/s"
    )
    print(
        f"bounded by: the machine's {os.cpu_count()} cores, shared by this worker, the stand-in"
        + (" and Azurite" if world.azurite is not None else "")
        + f" (and anything else running); at {last.in_flight} in flight all cores were {last.machine_share * 100:.0f}% busy,"
        f" {ours / (last.cpu['machine (all processes)'] or 1) * 100:.0f}% of that in these processes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onboardings", type=int, default=32, help="per level (at least twice the level)")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--stall-ms", type=float, default=20.0, help="what counts as a stall of the loop")
    parser.add_argument("--no-storage", action="store_true", help="process locks instead of blob leases in Azurite")
    parser.add_argument("--debug", action="store_true", help="one more pass in asyncio debug mode")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the last level into FILE (pstats)")
    args = parser.parse_args()

    world = start_world(storage=not args.no_storage and azurite_installed())
    try:
        os.environ.update(world.app_settings())
        logging.basicConfig(level=logging.ERROR)
        asyncio.run(benchmark(world, args))
    finally:
        world.stop()


if __name__ == "__main__":
    main()
