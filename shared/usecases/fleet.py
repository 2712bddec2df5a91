"""The fleet view: every registration this deployment manages, read from Key Vault's listing alone (tags and expiry,
never a value), with its state, a page at a time.

A row is a registration's credential record as the listing shows it: a client secret, a vendor certificate's
record, a client certificate (listed apart, after the secrets), or, for a federated registration that holds no
credential, its Client ID record. A registration switching credential type shows its outgoing credential as a second
row, `in-grace`, until the sweep retires it. Key Vault lists no subset and documents no order, so a page is a bounded
number of listing pages (filters apply to what they hold: a filtered page may be empty and still say where to go on),
and the continuation token is where the listing stopped: the pages cost what the listing costs, however large the
vault.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.domain.catalog import Catalog
from shared.domain.errors import InvalidRequest
from shared.domain.model import CredentialType, Listing, SecretKind, SecretSummary
from shared.domain.ports import Vault
from shared.domain.registry import ProblemRecord, Tag, parse_iso
from shared.settings import Settings
from shared.usecases.sweep import plan_reason

# Problem types that mean the customer's tenant no longer lets this service in (shared/domain/errors.py).
CONSENT_PROBLEMS = frozenset({"consent-required"})
# Listing pages (25 records each) one fleet page reads at most: about a second at Key Vault's pace, whatever the
# filters leave.
LISTING_PAGES_PER_PAGE = 40
MAX_TOKEN = 4096


class FleetState(StrEnum):
    HEALTHY = "healthy"
    DUE = "due"  # within its rotation window (or a rotation is under way): the sweep rotates it
    IN_GRACE = "in-grace"  # a previous credential is kept until its grace period ends
    FAILING = "failing"  # the last rotation failed
    EXPIRED = "expired"
    CONSENT_REVOKED = "consent-revoked"
    UNMANAGED_LEFTOVER = "unmanaged-leftover"  # its integration has left the catalog: offboard it


@dataclass(frozen=True)
class FleetRow:
    tenant_id: str
    integration: str
    credential_type: str  # secret | certificate | vendor-certificate | federated
    client_id: str | None
    expires: datetime | None
    last_rotated: datetime | None
    verified: bool
    state: FleetState
    last_problem: ProblemRecord | None
    superseded: bool  # an outgoing credential of a registration that switched type


@dataclass(frozen=True)
class FleetQuery:
    states: frozenset[FleetState] = frozenset()  # empty: every state
    tenant_id: str | None = None
    expiring_before: datetime | None = None
    continuation_token: str | None = None


@dataclass(frozen=True)
class FleetPage:
    rows: list[FleetRow]
    continuation_token: str | None  # None: the listing is done
    listed: int  # records of this deployment the page read


class Fleet:
    def __init__(self, settings: Settings, catalog: Catalog, vault: Vault, now: Callable[[], datetime]) -> None:
        self.settings = settings
        self.catalog = catalog
        self.vault = vault
        self.now = now

    async def page(self, query: FleetQuery) -> FleetPage:
        """Up to LISTING_PAGES_PER_PAGE listing pages from where the token says, their rows that match the query."""
        listing, link = _read_token(query.continuation_token)
        rows: list[FleetRow] = []
        listed = 0
        for _ in range(LISTING_PAGES_PER_PAGE):
            page = await self.vault.record_page(listing, link)
            listed += len(page.records)
            rows += (row for row in self.rows(listing, page.records) if _matches(row, query))
            link = page.next_link
            if link is None:
                if listing is Listing.CERTIFICATES:
                    return FleetPage(rows, None, listed)
                listing = Listing.CERTIFICATES
        return FleetPage(rows, _token(listing, link), listed)

    async def every(self, query: FleetQuery) -> AsyncIterator[FleetRow]:
        """Every matching row, page after page (the CLI's report)."""
        while True:
            page = await self.page(query)
            for row in page.rows:
                yield row
            if page.continuation_token is None:
                return
            query = FleetQuery(query.states, query.tenant_id, query.expiring_before, page.continuation_token)

    def rows(self, listing: Listing, records: Iterable[SecretSummary]) -> Iterable[FleetRow]:
        """The rows a listing page's records make (the other records, ids and journals, make none)."""
        for record in records:
            kind = record.tags.get(Tag.KIND)
            if listing is Listing.CERTIFICATES:
                if kind == Tag.CERTIFICATE_KIND:
                    yield self.row(record, CredentialType.CERTIFICATE.value)
            elif kind == SecretKind.CLIENT_SECRET.value:
                yield self.row(record, CredentialType.SECRET.value)
            elif kind == SecretKind.VENDOR_CERTIFICATE.value:
                yield self.row(record, SecretKind.VENDOR_CERTIFICATE.value)
            elif kind == SecretKind.CLIENT_ID.value and (
                record.tags.get(Tag.CREDENTIAL_TYPE) == CredentialType.FEDERATED.value
            ):
                yield self.row(record, CredentialType.FEDERATED.value)

    def row(self, record: SecretSummary, credential_type: str) -> FleetRow:
        tags = record.tags
        federated = credential_type == CredentialType.FEDERATED.value
        problem = ProblemRecord.parse(tags.get(Tag.LAST_PROBLEM))
        return FleetRow(
            tenant_id=str(tags.get(Tag.TENANT_ID, "")),
            integration=str(tags.get(Tag.INTEGRATION, "")),
            credential_type=credential_type,
            client_id=tags.get(Tag.CLIENT_ID),
            expires=None if federated else record.expires,
            last_rotated=parse_iso(tags.get(Tag.ROTATED_AT)),
            verified=federated or tags.get(Tag.VERIFIED) == Tag.TRUE,
            state=self._state(record, federated, problem),
            last_problem=problem,
            superseded=Tag.SUPERSEDED_BY in tags,
        )

    def _state(self, record: SecretSummary, federated: bool, problem: ProblemRecord | None) -> FleetState:
        """The most pressing of what the record says, in this order: the integration gone, expired, consent
        revoked, failing, due, in grace, healthy."""
        tags = record.tags
        if self.catalog.get(str(tags.get(Tag.INTEGRATION, ""))) is None:
            return FleetState.UNMANAGED_LEFTOVER
        if federated:  # no credential of its own: the connector's trusts are checked by status, not listed
            return FleetState.HEALTHY
        now = self.now()
        if record.expires is None or record.expires <= now:
            return FleetState.EXPIRED
        if problem is not None:
            return FleetState.CONSENT_REVOKED if problem.type in CONSENT_PROBLEMS else FleetState.FAILING
        if Tag.SUPERSEDED_BY in tags:
            return FleetState.IN_GRACE
        reason = plan_reason(self.settings, record, now)
        if reason in ("due", "journal"):
            return FleetState.DUE
        if reason in ("retire", "waiting"):
            return FleetState.IN_GRACE
        return FleetState.HEALTHY


def _matches(row: FleetRow, query: FleetQuery) -> bool:
    return (
        (not query.states or row.state in query.states)
        and (query.tenant_id is None or row.tenant_id == query.tenant_id)
        and (query.expiring_before is None or (row.expires is not None and row.expires < query.expiring_before))
    )


def _token(listing: Listing, link: str | None) -> str:
    raw = json.dumps({"listing": listing.value, "link": link}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str | None) -> tuple[Listing, str | None]:
    """Where a token says the listing stopped; InvalidRequest for anything this service did not give (the vault
    adapter checks the link itself is its own listing's)."""
    if token is None:
        return Listing.SECRETS, None
    try:
        if len(token) > MAX_TOKEN:
            raise ValueError("too long")
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        listing = Listing(data["listing"])
        link = data["link"]
        if link is not None and not isinstance(link, str):
            raise ValueError("link")
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise InvalidRequest(
            "The continuation token is not one this service gave.", field="continuationToken"
        ) from error
    return listing, link
