"""The bounded sweep at scale: every invocation under its budget, a full pass that completes, work proportional to what
is due, and memory flat with the fleet.

Each run is one scenario at one size, in a fresh process with a fresh stand-in: the stand-in's admin API seeds the
registrations as onboarding leaves them (emulator/bulk.py); a latency rule adds d (default 50 ms) to every request
(Key Vault, Graph, Entra, managed identity); the product's own services (`shared.bootstrap.build`) run the timer's
invocations (`SweepPasses.run`) back to back, each with the product's default budget (SWEEP_INVOCATION_SECONDS,
240 s, against host.json's functionTimeout of 300 s), while W worker tasks do what the queue-triggered rotation
worker does with each work item as it becomes visible (its pacing delay), as W instances' worth of the host would.
The sweep's store is the in-memory one (tests/fakes/sweep_store.py), each call counted: the Storage requests it
stands for are listed apart, and no floor counts them.

Scenarios:
- full: a full pass over a vault the due index knows nothing of (an upgrade, or drift), 1% due. Floor = the listing
  pages, read one after another (Key Vault lists 25 a page and a page's nextLink comes with the page before), x d;
  the work overlaps it: the last rotation starts no sooner than its pacing slot ((due - 1) / ROTATION_RATE_PER_SECOND)
  or than W workers get through those before it, then takes 5 round trips (bench/rotation_sweep.py counts them).
- quiet (0.1% due) and busy (10% due): the due index as a full pass left it a day before the due share came due
  (that pass runs first, untimed, latency off, its clock 15.5 days back; the day then runs 14.5 days back, half a day
  after they came due); no full pass is due. Floor = the first due entry's read (d) + the rotations as above (the
  other reads overlap them).

Printed per run: each invocation's wall time (the longest against functionTimeout) and peak memory growth (VmHWM
reset before it), the scenario's time against its floor, requests per service per registration and per due one,
and the busiest 10-second and 150-second windows against Key Vault's and Graph's documented limits.

Run: .venv/bin/python -m bench.sweep_at_scale [--runs full:10000 quiet:10000 ...] [--latency-ms 50] [--workers 16]
A million registrations hold about 12 GB in the stand-in; `--runs quiet:1000000` is the largest this bench was run at
(README, performance).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.rotation_sweep import (
    GRAPH_APP_ID,
    PAGE,
    ROLE,
    SEED_CHUNK,
    print_busiest_windows,
    reset_peak_rss,
    rss_kib,
    synthetic_catalog,
)
from emulator.launcher import StandIn, start_stand_in

SHARES = {"full": 0.01, "quiet": 0.001, "busy": 0.1}
ROTATE_ROUND_TRIPS = 5  # bench/rotation_sweep.py: read secret and app together, journal, addPassword, token, store
FUNCTION_TIMEOUT = 300  # host.json functionTimeout
INDEXED_BACK = timedelta(days=15.5)  # the untimed pass that leaves the index: before the due share came due
DAY_BACK = timedelta(days=14.5)  # the day measured: half a day after they came due (bulk: due 15 days ago)


def seed(stand_in: StandIn, prefix: str, count: int, due: float) -> list[str]:
    chosen: list[str] = []
    for start in range(0, count, SEED_CHUNK):
        result = stand_in.admin(
            "POST", "/registrations",
            {
                "namePrefix": prefix, "integrations": [f"bulk-{i:05d}" for i in range(start, min(start + SEED_CHUNK, count))],
                "permissions": [{"resourceAppId": GRAPH_APP_ID, "roles": [ROLE]}], "due": due, "seed": start,
            },
        )  # fmt: skip
        chosen += result["due"]
    return chosen


class Workers:
    """What the Functions host does with the work queue, W at a time: each item once it is visible."""

    def __init__(self, services: Any, store: Any, count: int) -> None:
        self.services, self.store, self.count = services, store, count
        self.taken = 0
        self.outcomes: Counter[str] = Counter()
        self.finished = asyncio.Event()  # set once no more work will be queued
        self.last_done = 0.0

    def _next(self) -> Any:
        queue = self.store.queue
        if self.taken < len(queue) and time.monotonic() >= queue[self.taken].queued_at + queue[self.taken].delay:
            self.taken += 1
            return queue[self.taken - 1]
        return None

    async def _one(self) -> None:
        from shared.domain.errors import OnboardingError

        while True:
            queued = self._next()
            if queued is None:
                if self.finished.is_set() and self.taken >= len(self.store.queue):
                    return
                await asyncio.sleep(0.005)
                continue
            try:
                result = await self.services.rotation.rotate(
                    queued.item.tenant_id, queued.item.integration, wait_seconds=0
                )
                self.outcomes[result.action.value] += 1
            except OnboardingError as error:
                self.outcomes[f"failed: {error.problem_type}"] += 1
            self.last_done = time.monotonic()

    async def run(self) -> None:
        await asyncio.gather(*(self._one() for _ in range(self.count)))


async def run_one(scenario: str, count: int, latency_ms: float, worker_count: int) -> dict[str, Any]:
    from shared import bootstrap
    from shared.settings import load_settings
    from tests.fakes.sweep_store import MemorySweepStore

    stand_in = start_stand_in()
    try:
        prefix = f"s{uuid.uuid4().hex[:8]}"
        os.environ.update(stand_in.app_settings())
        os.environ["NAME_PREFIX"] = prefix
        os.environ.pop("AzureWebJobsStorage", None)
        began = time.perf_counter()
        due = seed(stand_in, prefix, count, SHARES[scenario])
        seconds_to_seed = time.perf_counter() - began
        settings = load_settings()
        offset = [timedelta(0)]
        store = MemorySweepStore()
        services = bootstrap.build(
            settings, now=lambda: datetime.now(UTC) - offset[0], catalog=synthetic_catalog(count), sweep_store=store
        )
        passes = services.sweep_passes
        assert passes is not None and services.vault is not None and services.directory is not None
        result: dict[str, Any] = {"scenario": scenario, "registrations": count, "due": len(due)}
        try:
            await services.vault.read(settings.registry.probe_secret_name)  # warm, as an instance is
            await services.directory.password_policy(settings.home_tenant_id)
            if scenario != "full":
                offset[0] = INDEXED_BACK
                started = time.perf_counter()
                growth = []  # the full pass's invocations at this size: their memory, whatever their latency
                while True:
                    peak_reset = reset_peak_rss()
                    rss_before = rss_kib("VmRSS")
                    done = (await passes.run()).completed
                    growth.append(rss_kib("VmHWM") - rss_before if peak_reset else 0)
                    if done:
                        break
                result["index_pass_seconds"] = time.perf_counter() - started
                result["index_pass_invocations"] = len(growth)
                result["index_pass_peak_growth_kib"] = max(growth)
                result["indexed"] = len(store.index)
                assert not store.queue, "nothing was due when the index was built"
                offset[0] = DAY_BACK
            store.calls.clear()
            stand_in.set_faults([{"kind": "latency", "service": "*", "latency_ms": latency_ms}])
            stand_in.admin("DELETE", "/requests")
            workers = Workers(services, store, worker_count)
            working = asyncio.create_task(workers.run())
            invocations = []
            started = time.perf_counter()
            while True:
                peak_reset = reset_peak_rss()
                rss_before = rss_kib("VmRSS")
                t0 = time.perf_counter()
                report = await passes.run()
                invocations.append(
                    {
                        "wall": time.perf_counter() - t0,
                        "pages": report.pages,
                        "due_entries": report.due_entries,
                        "enqueued": sum(report.enqueued.values()),
                        "peak_growth_kib": rss_kib("VmHWM") - rss_before if peak_reset else None,
                        "stopped": report.stopped,
                    }
                )
                if scenario == "full" and report.completed:
                    break
                if scenario != "full":
                    break  # one invocation of the day: every due entry is read within its budget
            pass_wall = time.perf_counter() - started
            workers.finished.set()
            await working
            done_wall = max(workers.last_done, started) - started if workers.outcomes else pass_wall
            log = stand_in.admin("GET", "/requests")
            stand_in.clear_faults()
            result |= {
                "latency_ms": latency_ms,
                "workers": worker_count,
                "rate": settings.rotation_rate_per_second,
                "seconds_to_seed": seconds_to_seed,
                "invocations": invocations,
                "pass_wall": pass_wall,
                "done_wall": max(done_wall, pass_wall),
                "outcomes": dict(workers.outcomes),
                "store_calls": dict(store.calls),
                "requests": log,
                "pages": math.ceil(3 * count / PAGE) + 1,  # three secrets a registration; one page of certificates
            }
        finally:
            await services.close()
        return result
    finally:
        stand_in.stop()


def report(r: dict[str, Any]) -> None:
    d = r["latency_ms"] / 1000
    n, due, w, rate = r["registrations"], r["due"], r["workers"], r["rate"]
    # The last rotation starts no sooner than its pacing slot, or than W workers get through those before it, and
    # then takes its own round trips.
    one = ROTATE_ROUND_TRIPS * d
    work_floor = max((due - 1) / rate if rate else 0.0, (math.ceil(due / w) - 1) * one) + one if due else 0.0
    if r["scenario"] == "full":
        floor = max(r["pages"] * d, work_floor)
        floor_text = f"max({r['pages']:,} pages x {d * 1000:.0f} ms, rotations {work_floor:.1f} s) = {floor:.1f} s"
    else:
        floor = d + work_floor  # the first entry's read, then the rotations (later reads overlap them)
        floor_text = f"the first read {d * 1000:.0f} ms + rotations {work_floor:.1f} s = {floor:.1f} s"
    print(f"{r['scenario']} day, {n:,} registrations, {due:,} due ({SHARES[r['scenario']]:.1%}); d = {d * 1000:.0f} ms")
    print(f"  seeded in {r['seconds_to_seed']:.0f} s" + (
        f"; the index a pass left: {r['indexed']:,} entries ({r['index_pass_seconds']:.0f} s, latency off, "
        f"{r['index_pass_invocations']} invocations, peak memory growth of one "
        f"{r['index_pass_peak_growth_kib'] / 1024:.1f} MiB)"
        if "indexed" in r else ""))  # fmt: skip
    longest = max(i["wall"] for i in r["invocations"])
    growth = [i["peak_growth_kib"] for i in r["invocations"] if i["peak_growth_kib"] is not None]
    print(
        f"  invocations: {len(r['invocations'])}, longest {longest:.1f} s = {longest / FUNCTION_TIMEOUT:.2f} of "
        f"functionTimeout ({FUNCTION_TIMEOUT} s); pages {sum(i['pages'] for i in r['invocations']):,}; due entries "
        f"read {sum(i['due_entries'] for i in r['invocations']):,}; queued {sum(i['enqueued'] for i in r['invocations']):,}"
    )
    if growth:
        print(f"  peak memory growth of one invocation: {max(growth) / 1024:.1f} MiB (largest of {len(growth)})")
    print(f"  outcomes {r['outcomes']}")
    print(f"  floor  = {floor_text} (W = {w} workers, {rate:g} rotations a second fleet-wide)")
    print(f"  pass {r['pass_wall']:.1f} s; all work done {r['done_wall']:.1f} s   ratio {r['done_wall'] / floor:.2f}")
    totals = r["requests"]["totals"]
    print("  requests:")
    for service in ("vault", "graph", "entra", "identity"):
        methods = totals.get(service, {})
        total = sum(methods.values())
        detail = ", ".join(f"{m} {k:,}" for m, k in sorted(methods.items()))
        per_due = f", {total / due:.2f} per due one" if due else ""
        print(f"    {service:<8} {total:>8,}  = {total / n:.4f} per registration{per_due}  ({detail})")
    storage = sum(r["store_calls"].values())
    print(f"    storage  {storage:>8,}  = {storage / n:.4f} per registration  ({r['store_calls']})")
    print_busiest_windows(r["requests"]["bySecond"])
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # The default, a few minutes, is what scripts/bench runs; README's figures add full:100000, busy:100000 and
    # quiet:1000000 (about 45 minutes, and 12 GB in the stand-in for the million).
    parser.add_argument("--runs", nargs="+", default=["full:10000", "quiet:10000", "busy:10000"])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child run: scenario:size, JSON on stdout
    args = parser.parse_args()
    if args.one:
        scenario, size = args.one.split(":")
        print(json.dumps(asyncio.run(run_one(scenario, int(size), args.latency_ms, args.workers))))
        return
    results = []
    for run in args.runs:
        scenario, _ = run.split(":")
        if scenario not in SHARES:
            parser.error(f"unknown scenario {scenario}: one of {sorted(SHARES)}")
        # A process per run: each starts from the same baseline, and one run's memory cannot hide another's.
        command = [sys.executable, "-m", "bench.sweep_at_scale", "--one", run]
        command += ["--latency-ms", str(args.latency_ms), "--workers", str(args.workers)]
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        report(results[-1])
    by_size = sorted(
        (r["registrations"], max([i["peak_growth_kib"] or 0 for i in r["invocations"]], default=0)) for r in results
    )
    if len(by_size) > 1:
        print(
            "peak memory growth of one invocation by size: "
            + ", ".join(f"{n:,}: {g / 1024:.1f} MiB" for n, g in by_size)
        )


if __name__ == "__main__":
    main()
