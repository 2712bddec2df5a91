"""Failure on purpose: latency, throttling, server errors and dropped connections, reproducibly.

Rules are matched in order against each request's service, method and path; the first
rule whose dice roll hits decides the fault. Dice come from one seeded RNG, so a test
that sends the same requests in the same order sees the same faults. Replication lag is
not here: it is a property of the objects (see state.Replication).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import injected_error

SERVICES = ("graph", "vault", "entra", "identity", "arm", "loganalytics", "eventgrid", "*")
KINDS = ("latency", "status", "drop")


def service_of(path: str) -> str:
    if path.startswith(("/v1.0", "/beta", "//v1.0")):
        return "graph"
    if path.startswith(("/secrets", "/deletedsecrets", "/certificates", "/deletedcertificates")):
        return "vault"
    if path.startswith("/msi/"):
        return "identity"
    if path.startswith("/subscriptions/"):
        return "arm"
    if path.startswith("/v1/workspaces/"):
        return "loganalytics"
    if path.startswith("/api/events"):
        return "eventgrid"
    if path.startswith("/_emulator"):
        return "admin"
    return "entra"


@dataclass
class FaultRule:
    kind: str
    service: str = "*"
    method: str | None = None
    path: str | None = None
    probability: float = 1.0
    skip: int = 0  # let the first N matching requests through untouched
    count: int | None = None  # fire at most N times, then stop matching
    status: int = 503
    retry_after: int | None = None
    latency_ms: float = 0.0
    # "before": the request never reaches the service; "after": it is carried out and only the
    # response is lost, the case that tests whether a client's retry is idempotent.
    drop: str = "before"
    fired: int = 0
    seen: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> FaultRule:
        allowed = {
            "kind",
            "service",
            "method",
            "path",
            "probability",
            "skip",
            "count",
            "status",
            "retry_after",
            "latency_ms",
            "drop",
        }
        unknown = set(raw) - allowed
        if unknown:
            raise ValueError(f"unknown fault rule fields: {sorted(unknown)}")
        rule = cls(**raw)
        if rule.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        if rule.service not in SERVICES:
            raise ValueError(f"service must be one of {SERVICES}")
        if not 0.0 <= rule.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if rule.kind == "status" and not 400 <= rule.status <= 599:
            raise ValueError("status must be a 4xx or 5xx code")
        if rule.drop not in ("before", "after"):
            raise ValueError("drop must be 'before' or 'after'")
        if rule.path is not None:
            rule._pattern = re.compile(rule.path)
        return rule

    def matches(self, service: str, method: str, path: str) -> bool:
        if self.count is not None and self.fired >= self.count:
            return False
        if self.service != "*" and self.service != service:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return self._pattern is None or self._pattern.search(path) is not None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "service": self.service,
            "method": self.method,
            "path": self.path,
            "probability": self.probability,
            "skip": self.skip,
            "count": self.count,
            "status": self.status,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "drop": self.drop,
            "fired": self.fired,
            "seen": self.seen,
        }


class FaultInjector:
    def __init__(self, seed: int = 0) -> None:
        self.rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self.injected = 0

    def configure(self, rules: list[dict[str, Any]], seed: int | None = None) -> None:
        parsed = [FaultRule.parse(r) for r in rules]  # all or nothing
        self.rules = parsed
        self.injected = 0  # counters describe the configuration in force
        if seed is not None:
            self._random = random.Random(seed)

    def choose(self, service: str, method: str, path: str) -> tuple[float, FaultRule | None]:
        """Total added latency and the one failure (if any) for this request."""
        latency = 0.0
        failure: FaultRule | None = None
        for rule in self.rules:
            if not rule.matches(service, method, path):
                continue
            rule.seen += 1
            if rule.seen <= rule.skip or self._random.random() >= rule.probability:
                continue
            if rule.kind == "latency":
                rule.fired += 1
                latency += rule.latency_ms
            elif failure is None:
                rule.fired += 1
                failure = rule
        if failure is not None:
            self.injected += 1
        return latency, failure


class RequestLog:
    """How many requests each service received, by method and by second since the last reset.

    Benchmarks read it to count calls per registration and the busiest 10 s, the window
    Key Vault's and Graph's throttling limits are stated in."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = time.monotonic()
        self.totals: Counter[tuple[str, str]] = Counter()
        self.by_second: dict[int, Counter[tuple[str, str]]] = {}

    def record(self, service: str, method: str) -> None:
        self.totals[service, method] += 1
        second = int(time.monotonic() - self.started)
        self.by_second.setdefault(second, Counter())[service, method] += 1

    def describe(self) -> dict[str, Any]:
        totals: dict[str, dict[str, int]] = {}
        for (service, method), count in sorted(self.totals.items()):
            totals.setdefault(service, {})[method] = count
        return {
            "seconds": time.monotonic() - self.started,
            "totals": totals,
            "bySecond": [
                {"second": second, "service": service, "method": method, "count": count}
                for second, counter in sorted(self.by_second.items())
                for (service, method), count in sorted(counter.items())
            ],
        }


class FaultMiddleware:
    def __init__(self, app: ASGIApp, injector: FaultInjector, log: RequestLog | None = None) -> None:
        self.app = app
        self.injector = injector
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = service_of(scope["path"])
        if service == "admin":
            await self.app(scope, receive, send)
            return
        if self.log is not None:
            self.log.record(service, scope["method"])
        latency, failure = self.injector.choose(service, scope["method"], scope["path"])
        if latency:
            # Latency is the service's response time: the answer starts `latency` after the request
            # arrived, whatever the stand-in's own work took inside it (as a real service's time includes
            # its processing). Sleeping first and then working would add the stand-in's CPU to every
            # round trip, which a benchmark's floor of d per round trip would then misattribute.
            send = _answer_no_sooner_than(send, asyncio.get_running_loop().time() + latency / 1000.0)
        if failure is None:
            await self.app(scope, receive, send)
        elif failure.kind == "status":
            await injected_error(service, failure.status, failure.retry_after).response(scope, receive, send)
        elif failure.drop == "after":
            await self.app(scope, receive, _discard)
            await _drop_connection(send)
        else:
            await _drop_connection(send)


def _answer_no_sooner_than(send: Send, moment: float) -> Send:
    async def delayed(message: Message) -> None:
        if message["type"] == "http.response.start":
            remaining = moment - asyncio.get_running_loop().time()
            if remaining > 0:
                await asyncio.sleep(remaining)
        await send(message)

    return delayed


async def _discard(message: Message) -> None:
    return None


async def _drop_connection(send: Send) -> None:
    """Promise a body and close without sending it: the client sees the connection drop.

    ASGI has no 'reset this connection' message; a response that ends short of its declared
    Content-Length makes uvicorn close the transport, which is what a client sees when a
    load balancer drops a connection mid-response.
    """
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"1024"), (b"content-type", b"application/json")],
        }
    )
