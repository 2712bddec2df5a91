"""How fast the stand-in starts and how many Graph and Key Vault requests per second it serves.

Prints, for one run on this machine:
- start-up: process spawn to ready line, and to the first authenticated Graph 200 (median of 5);
- throughput of Graph GET, Graph upsert (PATCH), Key Vault GET and Key Vault PUT with fault
  injection off, each as requests/second and as a ratio to the baseline measured in the same
  run: the stand-in's trivial health endpoint over the same TLS connections, i.e. what the HTTP
  stack alone allows. The ratio shows what the services' own logic costs.

Run: .venv/bin/python -m bench.standin_throughput [--seconds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import aiohttp
import httpx
from azure.identity import ManagedIdentityCredential

from emulator.launcher import StandIn, start_stand_in

GOAL_RPS = 500


def measure_startup(runs: int) -> tuple[float, float]:
    to_ready, to_first_graph = [], []
    for _ in range(runs):
        started = time.perf_counter()
        instance = start_stand_in(admin=False)
        ready = time.perf_counter()
        try:
            token = _mi_token(instance, "https://graph.microsoft.com/.default")
            context = ssl.create_default_context(cafile=instance.ca_bundle)
            with httpx.Client(verify=context) as client:
                response = client.get(
                    f"{instance.graph_url}/servicePrincipals", headers={"authorization": f"Bearer {token}"}
                )
                response.raise_for_status()
            first = time.perf_counter()
        finally:
            instance.stop()
        to_ready.append(ready - started)
        to_first_graph.append(first - started)
    return statistics.median(to_ready), statistics.median(to_first_graph)


def _mi_token(instance: StandIn, scope: str) -> str:
    os.environ.update(instance.identity_env())
    return str(ManagedIdentityCredential().get_token(scope).token)


class Request(NamedTuple):
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


def _process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _hammer(
    context: ssl.SSLContext, make: Callable[[int], Request], seconds: float, concurrency: int, pid: int
) -> tuple[float, float]:
    """Requests per second achieved, and the stand-in's CPU seconds per request.

    The load generator shares this 2-core machine with the stand-in, so achieved req/s
    understates what the stand-in can do; CPU per request is the stand-in's own cost, and
    1 / (CPU per request) is its capacity on one core.
    """
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(i: int) -> None:
            request = make(i)
            async with session.request(
                request.method, request.url, headers=request.headers, data=request.body
            ) as response:
                await response.read()
                if response.status >= 400:
                    raise RuntimeError(f"{response.status} for {request.method} {request.url}")

        await asyncio.gather(*(send(i) for i in range(concurrency)))  # warm the connections
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal done
            i = offset + concurrency
            while time.perf_counter() < deadline:
                await send(i)
                done += 1
                i += concurrency

        cpu_before, started = _process_cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, _process_cpu_seconds(pid) - cpu_before
        return done / elapsed, cpu / max(done, 1)


def measure_throughput(seconds: float, concurrency: int) -> dict[str, tuple[float, float]]:
    instance = start_stand_in()
    try:
        graph_token = _mi_token(instance, "https://graph.microsoft.com/.default")
        vault_token = _mi_token(instance, "https://vault.azure.net/.default")
        context = ssl.create_default_context(cafile=instance.ca_bundle)
        graph_auth = {"authorization": f"Bearer {graph_token}"}
        vault_auth = {"authorization": f"Bearer {vault_token}", "content-type": "application/json"}
        base = instance.authority
        run = str(uuid.uuid4())[:8]
        with httpx.Client(base_url=base, verify=context) as setup:
            created = setup.post("/v1.0/applications", json={"displayName": "bench"}, headers=graph_auth)
            app_id = created.json()["id"]
            setup.put(
                "/secrets/bench?api-version=2025-07-01", json={"value": "x"}, headers=vault_auth
            ).raise_for_status()

        def request(
            method: str, path: str, headers: dict[str, str], body: bytes | None = None
        ) -> Callable[[int], Request]:
            return lambda i: Request(method, base + path.format(i=i, run=run), headers, body)

        cases = {
            "baseline: health endpoint": request("GET", "/_emulator/health", {}),
            "Graph GET application": request("GET", f"/v1.0/applications/{app_id}", graph_auth),
            "Graph upsert (PATCH create-if-missing)": request(
                "PATCH",
                "/v1.0/applications(uniqueName='bench-{run}-{i}')",
                graph_auth | {"prefer": "create-if-missing", "content-type": "application/json"},
                b'{"displayName": "bench"}',
            ),
            "Key Vault GET secret": request("GET", "/secrets/bench/?api-version=2025-07-01", vault_auth),
            "Key Vault PUT secret (new version)": request(
                "PUT", "/secrets/bench-{i}?api-version=2025-07-01", vault_auth, b'{"value": "v"}'
            ),
        }
        pid = instance.process.pid
        return {name: asyncio.run(_hammer(context, make, seconds, concurrency, pid)) for name, make in cases.items()}
    finally:
        instance.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--startup-runs", type=int, default=5)
    args = parser.parse_args()

    ready, first_graph = measure_startup(args.startup_runs)
    print(
        f"start-up (median of {args.startup_runs}): ready line {ready:.2f} s, first Graph 200 {first_graph:.2f} s (goal < 2 s)"
    )
    results = measure_throughput(args.seconds, args.concurrency)
    _, baseline_cpu = next(iter(results.values()))
    print(f"throughput, {args.concurrency} connections, {args.seconds:.0f} s each, fault injection off:")
    print(f"  {'':<40} {'achieved':>9} {'stand-in CPU':>13} {'capacity, 1 core':>17} {'cost vs baseline':>17}")
    for name, (rps, cpu_per_request) in results.items():
        capacity = 1 / cpu_per_request if cpu_per_request else float("inf")
        verdict = "" if name.startswith("baseline") else ("  meets goal" if capacity >= GOAL_RPS else "  BELOW GOAL")
        print(
            f"  {name:<40} {rps:6.0f}/s {cpu_per_request * 1000:9.2f} ms {capacity:13.0f}/s "
            f"{cpu_per_request / baseline_cpu:14.2f} x{verdict}"
        )


if __name__ == "__main__":
    main()
