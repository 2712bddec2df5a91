"""The operator's fleet report (the CLI's `report`): the fleet view's rows as a table grouped by state with the
soonest expiries first, as CSV, or as JSON, and a text histogram of expiries by week for the next 90 days."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from shared.entrypoints.presenters import fleet_row_json
from shared.usecases.fleet import FleetRow, FleetState

# The most pressing first: what needs someone now, then what the service will do, then what is fine.
STATE_ORDER = (
    FleetState.EXPIRED,
    FleetState.CONSENT_REVOKED,
    FleetState.FAILING,
    FleetState.UNMANAGED_LEFTOVER,
    FleetState.DUE,
    FleetState.IN_GRACE,
    FleetState.HEALTHY,
)
HISTOGRAM_WEEKS = 13  # 91 days: the next 90 and the day they end on
BAR_WIDTH = 40
CSV_FIELDS = (
    "state", "tenantId", "integration", "credentialType", "clientId", "expires", "lastRotated", "verified",
    "lastProblem", "failures", "superseded",
)  # fmt: skip


def ordered(rows: Iterable[FleetRow]) -> list[FleetRow]:
    """Grouped by state (most pressing first), soonest expiry first within a state (none last)."""
    rank = {state: index for index, state in enumerate(STATE_ORDER)}
    return sorted(
        rows,
        key=lambda r: (rank[r.state], r.expires is None, r.expires or datetime.max, r.tenant_id, r.integration),
    )


def expiries_by_week(rows: Iterable[FleetRow], now: datetime) -> list[int]:
    """How many credentials expire in each of the next HISTOGRAM_WEEKS weeks from `now` (superseded ones left out:
    they are retired before they expire)."""
    weeks = [0] * HISTOGRAM_WEEKS
    for row in rows:
        if row.expires is None or row.superseded or row.expires < now:
            continue
        week = int((row.expires - now) / timedelta(weeks=1))
        if week < HISTOGRAM_WEEKS:
            weeks[week] += 1
    return weeks


def report_json(rows: list[FleetRow], now: datetime) -> dict[str, Any]:
    listed = ordered(rows)
    counts = Counter(r.state for r in listed)
    return {
        "registrations": [fleet_row_json(r) for r in listed],
        "byState": {state.value: counts[state] for state in STATE_ORDER},
        "expiriesByWeek": expiries_by_week(listed, now),
    }


def report_csv(rows: list[FleetRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in ordered(rows):
        data = fleet_row_json(row)
        problem = data.pop("lastProblem")
        writer.writerow(
            {
                **{k: data[k] for k in CSV_FIELDS if k in data},
                "lastProblem": problem["type"] if problem else "",
                "failures": problem["failures"] if problem else 0,
            }
        )
    return buffer.getvalue()


def report_text(rows: list[FleetRow], now: datetime) -> list[str]:
    lines: list[str] = []
    listed = ordered(rows)
    counts = Counter(r.state for r in listed)
    lines.append(
        f"{len(listed)} registrations: " + ", ".join(f"{counts[s]} {s.value}" for s in STATE_ORDER if counts[s])
    )
    for state in STATE_ORDER:
        group = [r for r in listed if r.state is state]
        if not group:
            continue
        lines.append("")
        lines.append(f"{state.value} ({len(group)})")
        for r in group:
            expires = r.expires.strftime("%Y-%m-%d %H:%M") if r.expires else "-"
            problem = f"  {r.last_problem.type} x{r.last_problem.failures}" if r.last_problem else ""
            mark = " (superseded)" if r.superseded else ""
            lines.append(
                f"  {expires:<16}  {r.tenant_id}  {r.integration:<28} {r.credential_type:<18}{mark}{problem}".rstrip()
            )
    weeks = expiries_by_week(listed, now)
    widest = max(weeks) or 1
    lines.append("")
    lines.append("expiries by week, next 90 days")
    for index, count in enumerate(weeks):
        start = (now + timedelta(weeks=index)).strftime("%Y-%m-%d")
        bar = "#" * (round(count / widest * BAR_WIDTH) if count else 0)
        lines.append(f"  {start}  {count:>6}  {bar}".rstrip())
    return lines
