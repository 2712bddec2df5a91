"""The rotation sweep at scale: wall time against its floor, memory growth, and calls per registration.

For each size (default 10,000 and 50,000 managed registrations), in a fresh process with a fresh
stand-in: the stand-in's admin API seeds the registrations as the product leaves them after
onboarding (emulator/bulk.py), 1% due for rotation and 1% rotated and past their grace period
(waiting to retire); a latency rule adds d = 20 ms to every request (Graph, Key Vault, Entra,
managed identity); then the product's own sweep (`shared.bootstrap.build(...).sweep.run()`)
runs once and is timed. It prints:

- wall time against a floor computed in the same run:
  floor = P x d + (R_due x due + R_retire x retiring) x d / C, where P = the Key Vault listing
  pages that must be read one after another (every secret in the vault, 25 a page: Key Vault
  lists no subset, and a page's nextLink is known only once the page before it has arrived),
  C = ROTATION_CONCURRENCY (the product's default, 8), and R = the round trips one registration's
  work needs at least, when everything that can overlap does: rotate = 5 (read the secret and the
  app together, journal, addPassword, one token with the new secret, store it), retire = 3 (read
  the secret, the app and the versions together, removePassword, drop `retire-after`). The sweep
  also starts at most ROTATION_RATE_PER_SECOND (10) rotations a second; the due work overlaps the
  listing, so that pacing costs nothing here while the actions fit in the listing's time (1,000
  actions take 100 s at 10 a second, against 120 s of pages at 50,000 registrations);
- the sweeping process's peak memory growth (peak RSS over the sweep minus RSS before it; the
  stand-in runs in another process, so this is the product's alone) and its growth from the
  smallest size to the largest (goal < 2x while the registrations grow 5x);
- requests per service per registration, and the busiest 10 s window against Key Vault's and
  Microsoft Graph's documented throttling limits (https://learn.microsoft.com/graph/throttling-limits).

Locks are the in-process ones (ProcessLocks): one sweeping process holds every lock it takes,
blob leases would add two Storage calls per registration acted on (none per registration only
listed) against a service the floor does not count, and Azurite has no latency rule to make
those calls comparable with the others.

Run: .venv/bin/python -m bench.rotation_sweep [--registrations 10000 50000] [--latency-ms 20]
     [--due 0.01] [--retiring 0.01] [--no-verify]

Afterwards (untimed, latency off) every registration acted on is checked: a due one's stored
secret is a new credential on its app that gets a token holding its role; a retiring one's app
holds only the stored credential. The whole run takes about 6 minutes on 2 cores.
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
from pathlib import Path
from typing import Any

from emulator.launcher import StandIn, start_stand_in

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
ROLE = "User.Read.All"
PAGE = 25  # Key Vault's largest page (maxresults <= 25)
SEED_CHUNK = 2500  # registrations per admin call, so no single call holds the stand-in for long
ROUND_TRIPS = {"rotate": 5, "retire": 3}
# Documented throttling limits: https://learn.microsoft.com/graph/throttling-limits (identity and access
# service limits) and https://learn.microsoft.com/azure/key-vault/general/service-limits.
VAULT_CREATES_PER_10S = 300
VAULT_OTHERS_PER_10S = 4000
GRAPH_UNITS_PER_10S = 3500  # per app + tenant, the smallest tenants (< 50 users)
GRAPH_WRITES_PER_150S = 3000  # per app + tenant
GRAPH_TENANT_WRITES_PER_300S = 18000
GRAPH_GET_APPLICATION_UNITS = 2  # a GET on applications costs 2 resource units, a write 1 (+1 write)


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> bool:
    """Make VmHWM start again from the current RSS (Linux: clear_refs 5), so the peak is the sweep's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def synthetic_catalog(count: int) -> Any:
    """`count` integrations, one Graph permission each: one registration per integration in the home tenant."""
    from shared.domain.catalog import Catalog
    from shared.domain.model import IntegrationProfile, ResourcePermissions

    graph = ResourcePermissions(
        GRAPH_APP_ID, "Microsoft Graph", "https://graph.microsoft.com/.default", (ROLE,),
        role_ids={ROLE: "df021288-bdef-4463-88db-98f22de89214"},  # the id the catalog reviewed for it
    )  # fmt: skip
    return Catalog(
        {
            f"bulk-{i:05d}": IntegrationProfile(f"bulk-{i:05d}", f"Bulk {i}", "rotation sweep bench", (graph,))
            for i in range(count)
        }
    )


def seed(stand_in: StandIn, prefix: str, count: int, due: float, retiring: float) -> dict[str, list[str]]:
    chosen: dict[str, list[str]] = {"due": [], "retiring": []}
    for start in range(0, count, SEED_CHUNK):
        result = stand_in.admin(
            "POST",
            "/registrations",
            {
                "namePrefix": prefix,
                "integrations": [f"bulk-{i:05d}" for i in range(start, min(start + SEED_CHUNK, count))],
                "permissions": [{"resourceAppId": GRAPH_APP_ID, "roles": [ROLE]}],
                "due": due,
                "retiring": retiring,
                "seed": start,
            },
        )
        for share in chosen:
            chosen[share] += result[share]
    return chosen


def seeded_world(
    stand_in: StandIn, letter: str, count: int, due: float, retiring: float
) -> tuple[dict[str, list[str]], float]:
    """The app's settings (this process's environment) pointed at `stand_in` under a fresh name prefix, in-process
    locks, and `count` registrations seeded there: which are due and retiring, and the seconds seeding took."""
    prefix = f"{letter}{uuid.uuid4().hex[:8]}"
    os.environ.update(stand_in.app_settings())
    os.environ["NAME_PREFIX"] = prefix
    os.environ.pop("AzureWebJobsStorage", None)
    started = time.perf_counter()
    return seed(stand_in, prefix, count, due, retiring), time.perf_counter() - started


def busiest(by_second: list[dict[str, Any]], pick: Any, window: int) -> int:
    per_second: Counter[int] = Counter()
    for row in by_second:
        per_second[row["second"]] += pick(row) * row["count"]
    if not per_second:
        return 0
    return max(sum(per_second[s] for s in range(start, start + window)) for start in range(0, max(per_second) + 1))


async def run_one(count: int, latency_ms: float, due: float, retiring: float, verify: bool) -> dict[str, Any]:
    stand_in = start_stand_in()
    try:
        chosen, seeded = seeded_world(stand_in, "b", count, due, retiring)

        from shared import bootstrap
        from shared.domain.model import SecretKind
        from shared.entrypoints.presenters import sweep_json
        from shared.settings import load_settings

        settings = load_settings()
        services = bootstrap.build(settings, catalog=synthetic_catalog(count))
        assert services.vault is not None and services.directory is not None
        try:
            # Warm, as a function instance is when its timer fires: tokens for both services, connections open.
            await services.vault.read(settings.registry.probe_secret_name)
            await services.directory.password_policy(settings.home_tenant_id)
            stand_in.set_faults([{"kind": "latency", "service": "*", "latency_ms": latency_ms}])
            stand_in.admin("DELETE", "/requests")
            peak_reset = reset_peak_rss()
            rss_before = rss_kib("VmRSS")
            began = time.perf_counter()
            summary = await services.sweep.run()
            wall = time.perf_counter() - began
            peak = rss_kib("VmHWM")
            log = stand_in.admin("GET", "/requests")
            stand_in.clear_faults()
            checked = await check(services, stand_in, chosen, SecretKind.CLIENT_SECRET) if verify else None
        finally:
            await services.close()
        secrets_in_vault = 3 * count  # client id, tenant id, client secret per registration; nothing else
        return {
            "registrations": count,
            "due": len(chosen["due"]),
            "retiring": len(chosen["retiring"]),
            "latency_ms": latency_ms,
            "concurrency": settings.rotation_concurrency,
            "secrets": secrets_in_vault,
            "seconds_to_seed": seeded,
            "wall": wall,
            "summary": sweep_json(summary),
            "rss_before_kib": rss_before,
            "peak_growth_kib": peak - rss_before if peak_reset else None,
            "requests": log,
            "checked": checked,
        }
    finally:
        stand_in.stop()


async def check(services: Any, stand_in: StandIn, chosen: dict[str, list[str]], kind: Any) -> dict[str, int]:
    """After the sweep: every due registration's stored secret is a new credential that gets a token with
    its role; every retiring one's app holds one credential, the stored one."""
    from shared.domain.registry import Tag

    settings, tenant = services.settings, services.settings.home_tenant_id
    limit = asyncio.Semaphore(16)
    good: Counter[str] = Counter()

    async def one(share: str, integration: str) -> None:
        async with limit:
            stored = await services.vault.read(
                settings.registry.secret_name(tenant, integration, kind), with_value=True
            )
            app = await services.directory.find_application(tenant, settings.registry.unique_name(integration))
            key_ids = [p.key_id for p in app.passwords]
            if share == "due" and Tag.ROTATED_AT in stored.tags and stored.tags[Tag.KEY_ID] in key_ids:
                roles = await services.rotation.credentials.checker.granted_roles(
                    tenant, app.app_id, stored.value, "https://graph.microsoft.com/.default"
                )
                good[share] += ROLE in roles
            elif share == "retiring" and key_ids == [stored.tags[Tag.KEY_ID]]:
                good[share] += 1

    await asyncio.gather(*(one(share, i) for share, ids in chosen.items() for i in ids))
    return dict(good)


def print_busiest_windows(rows: list[dict[str, Any]]) -> None:
    """The busiest 10-, 150- and 300-second windows of a run's requests (the stand-in's log by second) against the
    documented limits, all registrations in one tenant and one vault: the worst case."""
    kv_creates = busiest(rows, lambda row: row["service"] == "vault" and row["method"] == "PUT", 10)
    kv_others = busiest(rows, lambda row: row["service"] == "vault" and row["method"] != "PUT", 10)
    units = busiest(
        rows,
        lambda row: 0 if row["service"] != "graph" else (GRAPH_GET_APPLICATION_UNITS if row["method"] == "GET" else 1),
        10,
    )
    writes = lambda row: row["service"] == "graph" and row["method"] != "GET"  # noqa: E731
    print("  busiest window vs documented limit (all registrations in one tenant and one vault: the worst case):")
    print(f"    Key Vault secret creates      {kv_creates:>6,} / 10 s   limit {VAULT_CREATES_PER_10S:,} per vault")
    print(f"    Key Vault other operations    {kv_others:>6,} / 10 s   limit {VAULT_OTHERS_PER_10S:,} per vault")
    print(
        f"    Graph resource units          {units:>6,} / 10 s   limit {GRAPH_UNITS_PER_10S:,} per app+tenant "
        f"(GETs counted at {GRAPH_GET_APPLICATION_UNITS})"
    )
    print(
        f"    Graph writes                  {busiest(rows, writes, 150):>6,} / 150 s  limit {GRAPH_WRITES_PER_150S:,} "
        "per app+tenant"
    )
    print(
        f"    Graph writes                  {busiest(rows, writes, 300):>6,} / 300 s  limit "
        f"{GRAPH_TENANT_WRITES_PER_300S:,} per tenant"
    )


def report(results: list[dict[str, Any]]) -> None:
    d = results[0]["latency_ms"] / 1000
    print(f"rotation sweep, d = {d * 1000:.0f} ms on every request, one sweep per size in a fresh process\n")
    for r in results:
        n, c = r["registrations"], r["concurrency"]
        pages = math.ceil(r["secrets"] / PAGE)
        listing = pages * d
        work = (r["due"] * ROUND_TRIPS["rotate"] + r["retiring"] * ROUND_TRIPS["retire"]) * d / c
        floor = listing + work
        totals = r["requests"]["totals"]
        read_pages = totals.get("vault", {}).get("GET", 0)
        print(f"{n:,} registrations ({r['secrets']:,} secrets; seeded in {r['seconds_to_seed']:.0f} s)")
        print(f"  due {r['due']}, retiring {r['retiring']}; planned {r['summary']['planned']}")
        print(f"  outcomes {r['summary']['outcomes']}" + (f"; checked after: {r['checked']}" if r["checked"] else ""))
        print(
            f"  floor  = {pages:,} pages x {d * 1000:.0f} ms + ({r['due']} x {ROUND_TRIPS['rotate']} + "
            f"{r['retiring']} x {ROUND_TRIPS['retire']}) round trips x {d * 1000:.0f} ms / {c} = "
            f"{listing:.1f} + {work:.1f} = {floor:.1f} s"
        )
        print(f"  wall   = {r['wall']:.1f} s   ratio {r['wall'] / floor:.2f} (goal <= 1.3)")
        growth = r["peak_growth_kib"]
        print(
            f"  memory: RSS before {r['rss_before_kib'] / 1024:.0f} MiB, peak growth during the sweep "
            + (f"{growth / 1024:.1f} MiB" if growth is not None else "unavailable (no /proc/self/clear_refs)")
        )
        print(f"  requests (Key Vault GETs include {pages:,} listing pages; read {read_pages:,} GETs in all):")
        for service in ("vault", "graph", "entra", "identity"):
            methods = totals.get(service, {})
            total = sum(methods.values())
            detail = ", ".join(f"{m} {k:,}" for m, k in sorted(methods.items()))
            print(f"    {service:<8} {total:>7,}  = {total / n:.3f} per registration  ({detail})")
        print_busiest_windows(r["requests"]["bySecond"])
        print()
    if len(results) > 1:
        small, large = results[0], results[-1]
        if small["peak_growth_kib"] and large["peak_growth_kib"] is not None:
            print(
                f"peak memory growth {large['registrations']:,} vs {small['registrations']:,} registrations: "
                f"{large['peak_growth_kib'] / 1024:.1f} / {small['peak_growth_kib'] / 1024:.1f} MiB = "
                f"{large['peak_growth_kib'] / small['peak_growth_kib']:.2f}x (goal < 2x for "
                f"{large['registrations'] / small['registrations']:.0f}x the registrations)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registrations", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--due", type=float, default=0.01)
    parser.add_argument("--retiring", type=float, default=0.01)
    parser.add_argument(
        "--no-verify", dest="verify", action="store_false", help="skip checking every registration acted on"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child run: one size, JSON on stdout
    args = parser.parse_args()
    if args.one is not None:
        result = asyncio.run(run_one(args.one, args.latency_ms, args.due, args.retiring, args.verify))
        print(json.dumps(result))
        return
    results = []
    for count in args.registrations:
        # A process per size: each starts from the same baseline, and one size's freed memory cannot hide another's.
        command = [sys.executable, "-m", "bench.rotation_sweep", "--one", str(count)]
        command += ["--latency-ms", str(args.latency_ms), "--due", str(args.due), "--retiring", str(args.retiring)]
        command += [] if args.verify else ["--no-verify"]
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    report(results)


if __name__ == "__main__":
    main()
