"""The fleet view at scale: every page of `GET /api/registrations`, through the real handler, against the listing
floor the rotation sweep's benchmark uses.

In a fresh stand-in, the admin API seeds N registrations as the product leaves them (emulator/bulk.py; 1% due, 1%
in their grace period), a latency rule adds d = 20 ms to every request, and the registered function
`list_registrations` is called with real `func.HttpRequest` objects, following `continuationToken` to its end, as
the vendor's backend would. It prints:

- wall time against the floor measured from the same run's pages: floor = P x d, P = the Key Vault listing pages
  read one after another (every secret in the vault, 25 a page, then the certificates' listing: Key Vault lists no
  subset and a page's link arrives with the page before it). The floor counts the pages the product had to read,
  not the fleet view's own work, so it does not move with what is measured;
- the longest single API page against the Functions HTTP limit (230 s) and its share of the listing;
- the rows against the registrations seeded, by state.

Run: .venv/bin/python -m bench.fleet_view [--registrations 10000 50000] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlencode

from bench.rotation_sweep import PAGE, seeded_world, synthetic_catalog
from emulator.launcher import start_stand_in

HTTP_LIMIT_SECONDS = (
    230  # an HTTP-triggered function's answer: https://learn.microsoft.com/azure/azure-functions/functions-scale
)


async def run_one(count: int, latency_ms: float) -> dict[str, Any]:
    stand_in = start_stand_in()
    try:
        chosen, seeded = seeded_world(stand_in, "f", count, 0.01, 0.01)

        import azure.functions as func

        import function_app
        from shared import bootstrap
        from shared.settings import load_settings

        handler = next(
            f.get_user_function()
            for f in function_app.app.get_functions()
            if f.get_function_name() == "list_registrations"
        )
        settings = load_settings()
        services = bootstrap.build(settings, catalog=synthetic_catalog(count))
        bootstrap.override(services)
        assert services.vault is not None
        try:
            await services.vault.read(settings.registry.probe_secret_name)  # warm: a token, a connection
            stand_in.set_faults([{"kind": "latency", "service": "*", "latency_ms": latency_ms}])
            stand_in.admin("DELETE", "/requests")
            states: Counter[str] = Counter()
            pages, longest, token = 0, 0.0, None
            began = time.perf_counter()
            while True:
                query: dict[str, str] = {"continuationToken": token} if token else {}
                request = func.HttpRequest(
                    "GET", f"http://localhost/api/registrations?{urlencode(query)}", params=query, body=b""
                )
                page_started = time.perf_counter()
                response = await handler(request)
                longest = max(longest, time.perf_counter() - page_started)
                assert response.status_code == 200, response.get_body()[:500]
                body = json.loads(response.get_body())
                states.update(row["state"] for row in body["registrations"])
                pages += 1
                if (token := body["continuationToken"]) is None:
                    break
            wall = time.perf_counter() - began
            log = stand_in.admin("GET", "/requests")
            stand_in.clear_faults()
        finally:
            bootstrap.override(None)
            await services.close()
        return {
            "registrations": count,
            "due": len(chosen["due"]),
            "retiring": len(chosen["retiring"]),
            "secrets": 3 * count,  # client id, tenant id, client secret per registration
            "latency_ms": latency_ms,
            "seconds_to_seed": seeded,
            "wall": wall,
            "api_pages": pages,
            "longest_page": longest,
            "states": dict(states),
            "vault_gets": log["totals"].get("vault", {}).get("GET", 0),
        }
    finally:
        stand_in.stop()


def report(results: list[dict[str, Any]]) -> None:
    d = results[0]["latency_ms"] / 1000
    print(f"fleet view, d = {d * 1000:.0f} ms on every request, every page in a fresh process per size\n")
    for r in results:
        listing_pages = math.ceil(r["secrets"] / PAGE) + 1  # + the certificates' listing (one empty page here)
        floor = listing_pages * d
        print(
            f"{r['registrations']:,} registrations ({r['secrets']:,} secrets; seeded in {r['seconds_to_seed']:.0f} s)"
        )
        print(f"  rows by state: {r['states']} (seeded due {r['due']}, in grace {r['retiring']})")
        print(f"  floor  = {listing_pages:,} listing pages x {d * 1000:.0f} ms = {floor:.1f} s")
        print(f"  wall   = {r['wall']:.1f} s over {r['api_pages']} API pages   ratio {r['wall'] / floor:.2f}")
        print(
            f"  longest API page {r['longest_page']:.2f} s ({r['longest_page'] / HTTP_LIMIT_SECONDS:.1%} of the "
            f"{HTTP_LIMIT_SECONDS} s HTTP limit); Key Vault GETs {r['vault_gets']:,} "
            f"({r['vault_gets'] / listing_pages:.2f} per listing page)"
        )
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registrations", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child run: one size, JSON on stdout
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(asyncio.run(run_one(args.one, args.latency_ms))))
        return
    results = []
    for count in args.registrations:
        done = subprocess.run(
            [sys.executable, "-m", "bench.fleet_view", "--one", str(count), "--latency-ms", str(args.latency_ms)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(done.returncode)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    report(results)


if __name__ == "__main__":
    main()
