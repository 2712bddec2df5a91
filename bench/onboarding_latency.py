"""How close one onboarding (PUT of a fresh tenant's integration) comes to the latency floor Entra allows.

Runs the product's onboarding use case in process (`shared.bootstrap.build`, vendor-hosted mode:
each onboarding is a new customer tenant reached through the federated provisioner app) against
the stand-in with every request delayed by d and Entra's replication lag on every new object.
Prints, for N onboardings of fresh (tenant, integration) registrations cycling through the catalog:
- wall time per onboarding, median and p90, and the ratio to the floor (goal: median <= 1.3);
- the floor, derived step by step (see `floor`);
- requests per service per onboarding (counted by the stand-in's latency rules, one per service);
- a per-step breakdown: each port call the use case made, how often, and when it started and ended.

Latency d goes on all four services the product talks to: Graph, Key Vault, the Entra token
endpoint and the managed identity endpoint. In Azure the identity endpoint is a local sidecar,
but a token it has not cached costs a round trip to Entra behind it, so it gets d too; the SDKs
cache those tokens per process, so a warm process pays them once. One warm-up onboarding (not
counted) makes the process warm, as a Functions instance serving PUTs is; its request counts are
printed to show what the first onboarding in a process pays on top.

Run: .venv/bin/python -m bench.onboarding_latency [--onboardings 20] [--latency-ms 50]
     [--application-lag-ms 1000] [--service-principal-lag-ms 1000] [--password-lag-ms 4000]
     [--assignment-lag-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.world import consented_tenant, provisioner_app
from emulator.launcher import StandIn, start_stand_in
from shared import bootstrap
from shared.domain.catalog import Catalog, load_catalog
from shared.domain.model import IntegrationProfile
from shared.settings import load_settings
from shared.usecases.onboarding import OnboardRequest, Outcome

GOAL_RATIO = 1.3
SERVICES = ("graph", "vault", "entra", "identity")
BATCH_LIMIT = 20  # Graph's $batch limit: grants beyond it need another round trip
# The ports the use case talks through, and the calls worth timing (shared/domain/ports.py).
TRACED = {
    "directory": (
        "resource_api",
        "password_policy",
        "find_application",
        "upsert_application",
        "find_service_principal",
        "upsert_service_principal",
        "assignments",
        "grant",
        "add_password",
        "remove_password",
    ),
    "vault": ("read", "write", "update_tags", "stored_key_ids"),
    "identity": ("ensure_reachable",),
    "checker": ("granted_roles",),
}


@dataclass(frozen=True)
class Lags:
    """Replication lag per kind of new object, in ms (emulator/state.py Replication)."""

    application: float
    service_principal: float
    password: float
    assignment: float


@dataclass
class Floor:
    total_ms: float
    steps: list[str] = field(default_factory=list)


def floor(profile: IntegrationProfile, d: float, lags: Lags) -> Floor:
    """The least time an onboarding of a fresh registration can take: dependent round trips x d + lags.

    A dependent request needs the answer of the one before it (an id, or a decision), or an
    object that becomes visible only when its replication lag has passed. Everything that needs
    neither can run beside the critical path and costs nothing here. The lag is counted from the
    answer of the write that created the object, and the dependent request as a full round trip
    after it: a client cannot know when replication ends, so this is the floor a perfect poller
    meets, not the physical minimum.
    """
    grants = math.ceil(len(profile.all_roles()) / BATCH_LIMIT)
    f = Floor(0.0)

    def step(ms: float, text: str) -> None:
        f.total_ms += ms
        f.steps.append(f"{ms:7.0f} ms  {text}")

    step(d, "token for the customer tenant (client assertion; the managed identity's token is cached)")
    step(d, "resource APIs' service principals (role ids) and the app management policy, at once")
    step(d, "create the app (upsert by uniqueName): its objectId and appId")
    # Two branches need the app replicated, then run side by side until the proof needs both.
    sp_branch = lags.application + d + lags.service_principal + grants * d + lags.assignment
    secret_branch = lags.application + d + max(lags.password, d)
    step(
        max(sp_branch, secret_branch),
        f"max(service principal branch {sp_branch:.0f} ms = app lag {lags.application:.0f} + create SP {d:.0f}"
        f" + SP lag {lags.service_principal:.0f} + {grants} grant batch(es) {grants * d:.0f}"
        f" + grant lag {lags.assignment:.0f};",
    )
    f.steps.append(
        f"{'':7}     secret branch {secret_branch:.0f} ms = app lag {lags.application:.0f} + addPassword {d:.0f}"
        f" + max(secret lag {lags.password:.0f}, store in Key Vault {d:.0f}))"
    )
    step(d, f"prove: a token with the new secret per resource API ({len(profile.permissions)}, at once)")
    step(d, "mark the stored secret verified, beside writing Client ID and Tenant ID (ids only after proof)")
    return f


@dataclass
class Call:
    port: str
    name: str
    start: float
    end: float
    error: str | None


class Tracer:
    """Wraps the ports' methods on the live objects, so every holder of them is traced."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def wrap(self, port: str, target: object, names: tuple[str, ...]) -> None:
        for name in names:
            method = getattr(target, name, None)
            if method is not None:
                setattr(target, name, self._traced(port, name, method))

    def _traced(self, port: str, name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def traced(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            error = None
            try:
                return await method(*args, **kwargs)
            except BaseException as exc:
                error = type(exc).__name__
                raise
            finally:
                self.calls.append(Call(port, name, start, time.perf_counter(), error))

        return traced


@dataclass
class Run:
    integration: str
    elapsed_ms: float
    floor_ms: float
    outcome: str
    requests: dict[str, int]
    steps: dict[str, tuple[int, float, float]]  # port.name -> (calls, first start, last end) in ms from start

    @property
    def ratio(self) -> float:
        return self.elapsed_ms / self.floor_ms if self.floor_ms else math.inf


def latency_rules(d: float) -> list[dict[str, Any]]:
    # One rule per service rather than "*": the same delay, and each rule's `fired` counts that service's requests.
    return [{"kind": "latency", "service": s, "latency_ms": d, "probability": 1} for s in SERVICES]


def request_counts(stand_in: StandIn) -> dict[str, int]:
    rules = stand_in.admin("GET", "/faults")["rules"]
    return {str(r["service"]): int(r["fired"]) for r in rules}


async def onboard_all(
    stand_in: StandIn, tenants: list[str], catalog: Catalog, d: float, lags: Lags
) -> tuple[Run, list[Run]]:
    services = bootstrap.build(load_settings())
    tracer = Tracer()
    ports = {
        "directory": services.onboarding.directory,
        "vault": services.onboarding.vault,
        "identity": services.onboarding.access,
        "checker": services.onboarding.credentials.checker,
    }
    for port, target in ports.items():
        tracer.wrap(port, target, TRACED[port])
    integrations = [p.id for p in list(catalog)]
    runs: list[Run] = []
    try:
        for index, tenant in enumerate(tenants):
            integration = integrations[index % len(integrations)]
            profile = catalog.get(integration)
            assert profile is not None
            tracer.calls.clear()
            before = request_counts(stand_in)
            started = time.perf_counter()
            result = await services.onboarding.onboard(OnboardRequest(tenant, integration))
            elapsed = time.perf_counter() - started
            after = request_counts(stand_in)
            steps: dict[str, tuple[int, float, float]] = {}
            grouped: dict[str, list[Call]] = defaultdict(list)
            for call in tracer.calls:
                grouped[f"{call.port}.{call.name}"].append(call)
            for key, calls in grouped.items():
                first = min(c.start for c in calls) - started
                last = max(c.end for c in calls) - started
                steps[key] = (len(calls), first * 1000, last * 1000)
            runs.append(
                Run(
                    integration,
                    elapsed * 1000,
                    floor(profile, d, lags).total_ms,
                    result.outcome.value,
                    {s: after.get(s, 0) - before.get(s, 0) for s in SERVICES},
                    steps,
                )
            )
            if result.outcome is not Outcome.CREATED:
                print(f"  onboarding {index} ({integration}) answered {result.outcome.value}: {result.pending_reason}")
    finally:
        await services.close()
    return runs[0], runs[1:]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onboardings", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="per-request latency d, every service")
    # Defaults: a second for a new app, service principal or grant to replicate, and the low end of the
    # seconds to minutes a brand-new secret takes to work at the token endpoint (emulator/FIDELITY.md, row E4).
    parser.add_argument("--application-lag-ms", type=float, default=1000.0)
    parser.add_argument("--service-principal-lag-ms", type=float, default=1000.0)
    parser.add_argument("--password-lag-ms", type=float, default=4000.0)
    parser.add_argument("--assignment-lag-ms", type=float, default=1000.0)
    args = parser.parse_args()
    d = args.latency_ms
    lags = Lags(args.application_lag_ms, args.service_principal_lag_ms, args.password_lag_ms, args.assignment_lag_ms)

    stand_in = start_stand_in()
    try:
        provisioner = provisioner_app(stand_in)
        resource_apps = ["graph", "logAnalytics", "defenderEndpoint"]
        tenants = [consented_tenant(stand_in, provisioner, i, resource_apps) for i in range(args.onboardings + 1)]
        for name in [n for n in os.environ if n.startswith("AzureWebJobsStorage")]:
            del os.environ[name]  # no lease storage: ProcessLocks, so a lock costs no round trip here
        os.environ.update(stand_in.app_settings())
        os.environ.update({"PROVISIONER_CLIENT_ID": provisioner, "NAME_PREFIX": f"b{uuid.uuid4().hex[:8]}"})
        catalog = load_catalog()
        stand_in.set_faults(
            latency_rules(d),
            seed=1,
            application=lags.application,
            servicePrincipal=lags.service_principal,
            password=lags.password,
            appRoleAssignment=lags.assignment,
        )
        warm_up, runs = asyncio.run(onboard_all(stand_in, tenants, catalog, d, lags))
    finally:
        stand_in.stop()

    print(
        f"onboarding latency: {len(runs)} onboardings of fresh registrations (one new customer tenant each), "
        f"d = {d:.0f} ms on every request, replication lag: application {lags.application:.0f} ms, "
        f"service principal {lags.service_principal:.0f} ms, password {lags.password:.0f} ms, "
        f"app role assignment {lags.assignment:.0f} ms"
    )
    for profile in list(catalog):
        f = floor(profile, d, lags)
        print(f"floor for {profile.id}: {f.total_ms:.0f} ms")
        for line in f.steps:
            print(f"  {line}")
    elapsed = [r.elapsed_ms for r in runs]
    ratios = [r.ratio for r in runs]
    median_ratio = statistics.median(ratios)
    print(
        f"measured: median {statistics.median(elapsed):.0f} ms, p90 {percentile(elapsed, 90):.0f} ms; "
        f"ratio to floor: median {median_ratio:.2f}, p90 {percentile(ratios, 90):.2f} "
        f"(goal <= {GOAL_RATIO}){'  meets goal' if median_ratio <= GOAL_RATIO else '  ABOVE GOAL'}"
    )
    print(f"outcomes: {dict(Counter(r.outcome for r in runs))}")
    for integration in sorted({r.integration for r in runs}):
        mine = [r for r in runs if r.integration == integration]
        print(
            f"  {integration:<18} n={len(mine):<3} median {statistics.median(r.elapsed_ms for r in mine):6.0f} ms,"
            f" floor {mine[0].floor_ms:6.0f} ms, ratio {statistics.median(r.ratio for r in mine):.2f}"
        )
    median_requests = {s: statistics.median(r.requests[s] for r in runs) for s in SERVICES}
    print(
        "requests per onboarding (median; each $batch item counts, as Graph throttles them): "
        + ", ".join(f"{s} {median_requests[s]:g}" for s in SERVICES)
        + "; the warm-up (first in the process): "
        + ", ".join(f"{s} {warm_up.requests[s]}" for s in SERVICES)
    )
    print("per step (median over onboardings; ms from the start of the PUT's use case):")
    print(f"  {'port call':<36} {'calls':>5} {'first start':>12} {'last end':>9}")
    keys = sorted({k for r in runs for k in r.steps}, key=lambda k: statistics.median(
        r.steps[k][1] for r in runs if k in r.steps
    ))  # fmt: skip
    for key in keys:
        present = [r.steps[key] for r in runs if key in r.steps]
        calls = statistics.median(s[0] for s in present)
        first = statistics.median(s[1] for s in present)
        last = statistics.median(s[2] for s in present)
        print(
            f"  {key:<36} {calls:5g} {first:12.0f} {last:9.0f}"
            + (f"  (in {len(present)} of {len(runs)})" if len(present) < len(runs) else "")
        )


if __name__ == "__main__":
    main()
