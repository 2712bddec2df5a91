"""What the bounded sweep keeps between invocations, as plain data with a JSON form: the checkpoint (the full pass's
cursor, the fleet-wide pacing slot, when the last full pass started and ended), the due index's entries, and the work
items it fans out to the queue-triggered rotation worker."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.model import Listing
from shared.domain.registry import INTEGRATION_ID_PATTERN, TENANT_ID_PATTERN, iso, parse_iso

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The queue the sweep fans work items out to, whose trigger is the rotation worker (the host names its poison queue).
WORK_QUEUE = "rotation-work"
ENTRY_TIME_FORMAT = "%Y%m%dT%H%M%SZ"  # sorts as it reads, so a listing of the index comes in time order
RECORD_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")  # a Key Vault object name
MAX_RECHECKS = 99  # counted no further (the interval stopped growing long before)
REASONS = frozenset({"due", "expired", "retire", "journal", "retry"})


class NotAWorkItem(ValueError):
    """A queue message that is not a work item this service wrote (the worker drops it, logged)."""


@dataclass(frozen=True)
class WorkItem:
    """One registration to rotate or retire, as the sweep hands it to the rotation worker through the queue."""

    tenant_id: str
    integration: str
    listing: Listing
    name: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {
            "v": "1", "tenantId": self.tenant_id, "integration": self.integration, "listing": self.listing.value,
            "name": self.name, "reason": self.reason,
        }  # fmt: skip

    @staticmethod
    def from_json(data: Any) -> WorkItem:
        """Validated as strictly as any other input: anyone holding the queue's role can write to it."""
        if not isinstance(data, dict) or data.get("v") != "1":
            raise NotAWorkItem("not a version 1 work item")
        fields = {k: data.get(k) for k in ("tenantId", "integration", "listing", "name", "reason")}
        if not all(isinstance(v, str) for v in fields.values()):
            raise NotAWorkItem("a work item's fields are strings")
        if not re.fullmatch(TENANT_ID_PATTERN, str(fields["tenantId"])):
            raise NotAWorkItem("tenantId is not a tenant id")
        if not re.fullmatch(INTEGRATION_ID_PATTERN, str(fields["integration"])):
            raise NotAWorkItem("integration is not an integration id")
        if fields["listing"] not in {listing.value for listing in Listing}:
            raise NotAWorkItem("listing is not secrets or certificates")
        if not RECORD_NAME.fullmatch(str(fields["name"])) or fields["reason"] not in REASONS:
            raise NotAWorkItem("name or reason is not one the sweep writes")
        return WorkItem(
            str(fields["tenantId"]), str(fields["integration"]), Listing(fields["listing"]), str(fields["name"]),
            str(fields["reason"]),
        )  # fmt: skip


@dataclass(frozen=True, order=True)
class DueEntry:
    """An entry of the due index: the record `name` of `listing` next needs the sweep at `at` (a hint: Key Vault,
    read again when the entry comes due, decides what is done). `rechecks`: how many times in a row the sweep fanned
    the record out and filed this entry to look again (0: filed for what the record says)."""

    at: datetime
    listing: Listing
    name: str
    rechecks: int = 0

    def __post_init__(self) -> None:
        # Whole seconds, rounded up, as the key holds them: an entry read back is equal to the one filed, and never
        # earlier than the time it stands for (a half second early, the sweep would find the record not yet due).
        whole = self.at.astimezone(UTC).replace(microsecond=0)
        object.__setattr__(self, "at", whole if whole == self.at else whole + timedelta(seconds=1))
        object.__setattr__(self, "rechecks", max(0, min(self.rechecks, MAX_RECHECKS)))

    @property
    def key(self) -> str:
        key = f"{self.at.astimezone(UTC).strftime(ENTRY_TIME_FORMAT)}/{self.listing.value}/{self.name}"
        return f"{key}/{self.rechecks}" if self.rechecks else key

    @staticmethod
    def from_key(key: str) -> DueEntry | None:
        """None for a key this service did not write."""
        parts = key.split("/")
        rechecks = (
            int(parts.pop()) if len(parts) == 4 and parts[3].isdigit() and 0 < int(parts[3]) <= MAX_RECHECKS else 0
        )
        if (
            len(parts) != 3
            or parts[1] not in {listing.value for listing in Listing}
            or not RECORD_NAME.fullmatch(parts[2])
        ):
            return None
        try:
            at = datetime.strptime(parts[0], ENTRY_TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            return None
        return DueEntry(at, Listing(parts[1]), parts[2], rechecks)


@dataclass
class FullPass:
    """A full pass over Key Vault's listings in flight: where it stands, and what it has counted so far."""

    id: str
    started_at: datetime
    listing: Listing = Listing.SECRETS
    link: str | None = None  # the next page to read (None: the listing's first)
    pages: int = 0
    scanned: int = 0
    enqueued: int = 0
    indexed: int = 0
    expired: int = 0
    overdue: int = 0
    invocations: int = 0


@dataclass
class Checkpoint:
    """The sweep's durable state: one small JSON document in the Functions storage account."""

    full_pass: FullPass | None = None
    last_started_at: datetime | None = None  # of the last full pass begun: the next begins an interval after it
    last_completed_at: datetime | None = None  # of the last full pass that read both listings to the end
    last_completed_scanned: int = 0
    next_slot: float = 0.0  # epoch seconds: the earliest a newly fanned-out rotation may start (fleet-wide pace)

    def to_json(self) -> dict[str, Any]:
        full = None
        if self.full_pass is not None:
            full = asdict(self.full_pass) | {
                "started_at": iso(self.full_pass.started_at), "listing": self.full_pass.listing.value,
            }  # fmt: skip
        return {
            "v": 1,
            "fullPass": full,
            "lastStartedAt": iso(self.last_started_at) if self.last_started_at else None,
            "lastCompletedAt": iso(self.last_completed_at) if self.last_completed_at else None,
            "lastCompletedScanned": self.last_completed_scanned,
            "nextSlot": self.next_slot,
        }

    @staticmethod
    def from_json(data: Any) -> Checkpoint:
        """A checkpoint in any other shape starts afresh (a new full pass), which skips nothing."""
        if not isinstance(data, dict) or data.get("v") != 1:
            return Checkpoint()
        full = data.get("fullPass")
        full_pass = None
        if isinstance(full, dict):
            try:
                started = parse_iso(full.get("started_at"))
                full_pass = FullPass(
                    id=str(full["id"]),
                    started_at=started or EPOCH,
                    listing=Listing(full["listing"]),
                    link=str(full["link"]) if full.get("link") else None,
                    **{k: int(full.get(k) or 0) for k in COUNTED},
                )
            except (KeyError, ValueError, TypeError):
                full_pass = None
        next_slot = data.get("nextSlot")
        return Checkpoint(
            full_pass=full_pass,
            last_started_at=parse_iso(data.get("lastStartedAt")),
            last_completed_at=parse_iso(data.get("lastCompletedAt")),
            last_completed_scanned=int(data.get("lastCompletedScanned") or 0),
            next_slot=float(next_slot) if isinstance(next_slot, int | float) else 0.0,
        )


COUNTED = ("pages", "scanned", "enqueued", "indexed", "expired", "overdue", "invocations")
