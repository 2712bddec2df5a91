"""The fleet view through the real handler, and the CLI's report: every registration from Key Vault's records alone,
agreeing with Key Vault and with each other after onboarding, rotation, a failing rotation and offboarding."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from shared.domain.model import SecretKind
from shared.entrypoints.cli import EXIT_OK, main
from shared.usecases import fleet
from tests.functions.conftest import Api, body_of


def token_for(link: str) -> str:
    """A continuation token as this service writes them, pointing where a caller wants."""
    raw = json.dumps({"listing": "secrets", "link": link}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CERTIFICATE = json.dumps({"credentialType": "certificate"}).encode()


async def listed(api: Api, **query: str) -> dict[str, Any]:
    path = "registrations" + (f"?{urlencode(query)}" if query else "")
    response = await api.call("list_registrations", "GET", path)
    assert response.status_code == 200, body_of(response)
    return dict(body_of(response))


async def every_row(api: Api, **query: str) -> list[dict[str, Any]]:
    """Every page, following the continuation token to its end."""
    rows: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(1000):
        page = await listed(api, **query, **({"continuationToken": token} if token else {}))
        rows += page["registrations"]
        token = page["continuationToken"]
        if token is None:
            return rows
    raise AssertionError("the continuation tokens never ended")


def by_integration(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["integration"]: row for row in rows}


async def rotate(api: Api, tenant: str, integration: str) -> int:
    response = await api.call(
        "rotate_now", "POST", f"tenants/{tenant}/integrations/{integration}/rotate",
        {"tenantId": tenant, "integration": integration}, b'{"retirePrevious": "immediately"}',
        {"content-type": "application/json"},
    )  # fmt: skip
    return int(response.status_code)


def report(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    out = capsys.readouterr().out
    assert code == EXIT_OK
    return out


async def test_the_fleet_agrees_with_key_vault_through_rotation_failure_and_offboarding(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant = api.stand_in.home_tenant_id
    assert (await api.put(tenant, "m365-defender")).status_code == 201
    assert (await api.put(tenant, "sentinel", CERTIFICATE)).status_code == 201
    assert (await api.put(tenant, "defender-endpoint")).status_code == 201

    rows = by_integration(await every_row(api))
    assert set(rows) == {"m365-defender", "sentinel", "defender-endpoint"}
    assert {r["integration"]: r["credentialType"] for r in rows.values()} == {
        "m365-defender": "secret", "sentinel": "certificate", "defender-endpoint": "secret",
    }  # fmt: skip
    assert all(r["state"] == "healthy" and r["verified"] and r["lastProblem"] is None for r in rows.values())
    vault = SecretClient(
        api.stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
        connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    stored = vault.get_secret(
        api.services.settings.registry.secret_name(tenant, "m365-defender", SecretKind.CLIENT_SECRET)
    )
    assert stored.properties.expires_on is not None
    assert rows["m365-defender"]["expires"] == stored.properties.expires_on.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rows["m365-defender"]["clientId"] == (stored.properties.tags or {})["client-id"]

    # A rotation that fails records its problem on the credential; the next that ends well sheds it.
    api.stand_in.set_faults(
        [{"kind": "status", "service": "graph", "method": "POST", "path": "addPassword$", "status": 400, "count": 4}]
    )
    assert await rotate(api, tenant, "m365-defender") >= 400
    assert await rotate(api, tenant, "m365-defender") >= 400
    failing = by_integration(await every_row(api, state="failing"))
    assert set(failing) == {"m365-defender"}
    assert failing["m365-defender"]["lastProblem"]["failures"] == 2 and failing["m365-defender"]["lastProblem"]["type"]
    api.stand_in.clear_faults()
    assert await rotate(api, tenant, "m365-defender") == 200
    rotated = by_integration(await every_row(api))["m365-defender"]
    assert rotated["state"] == "healthy" and rotated["lastProblem"] is None and rotated["lastRotated"] is not None
    # On a rotated secret (its tags near Key Vault's 15) the record still fits, and its count starts again.
    api.stand_in.set_faults(
        [{"kind": "status", "service": "graph", "method": "POST", "path": "addPassword$", "status": 400, "count": 2}]
    )
    assert await rotate(api, tenant, "m365-defender") >= 400
    again = by_integration(await every_row(api, state="failing"))["m365-defender"]
    assert again["lastProblem"]["failures"] == 1 and again["lastRotated"] == rotated["lastRotated"]
    api.stand_in.clear_faults()
    assert await rotate(api, tenant, "m365-defender") == 200

    # The CLI's report says the same, in each of its formats.
    as_json = json.loads(await asyncio.to_thread(report, capsys, "--json", "report"))
    assert {(r["integration"], r["state"]) for r in as_json["registrations"]} == {
        (r["integration"], r["state"]) for r in await every_row(api)
    }
    assert as_json["byState"]["healthy"] == 3 and sum(as_json["expiriesByWeek"]) == 0  # a year ahead: beyond 90 days
    as_csv = list(csv.DictReader(io.StringIO(await asyncio.to_thread(report, capsys, "report", "--csv"))))
    assert {(r["integration"], r["credentialType"]) for r in as_csv} == {
        (r["integration"], r["credentialType"]) for r in as_json["registrations"]
    }
    text = await asyncio.to_thread(report, capsys, "report")
    assert text.startswith("3 registrations: 3 healthy") and "expiries by week, next 90 days" in text

    offboarded = await api.call(
        "offboard_integration",
        "DELETE",
        "tenants/x/integrations/sentinel",
        {"tenantId": tenant, "integration": "sentinel"},
    )
    assert offboarded.status_code == 200
    assert set(by_integration(await every_row(api))) == {"m365-defender", "defender-endpoint"}


async def test_pages_resume_where_the_listing_stopped_and_filters_apply_to_each(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = api.stand_in.home_tenant_id
    for integration in ("m365-defender", "sentinel", "defender-endpoint"):
        assert (await api.put(tenant, integration)).status_code == 201
    whole = await every_row(api)
    monkeypatch.setattr(fleet, "LISTING_PAGES_PER_PAGE", 1)  # a page of the fleet per page of the listing
    paged = await every_row(api)
    assert sorted(map(json.dumps, paged)) == sorted(map(json.dumps, whole)) and len(whole) == 3

    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert await every_row(api, expiringBefore=soon) == []
    later = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
    assert len(await every_row(api, expiringBefore=later, tenantId=tenant, state="healthy,due")) == 3
    assert await every_row(api, tenantId="11111111-2222-3333-4444-555555555555") == []


@pytest.mark.parametrize(
    "query",
    [
        {"state": "broken"},
        {"tenantId": "not-a-guid"},
        {"expiringBefore": "2027-01-01T00:00:00"},  # no zone
        {"expiringBefore": "next week"},
        {"continuationToken": "not-a-token"},
        {"continuationToken": token_for("https://elsewhere.example/secrets")},  # the bearer token stays home
        {"continuationToken": token_for("https://127.0.0.1/secrets/a-secret-name")},  # a listing, nothing else
        {"surprise": "1"},
    ],
)
async def test_a_bad_query_is_a_400_naming_its_field(api: Api, query: dict[str, str]) -> None:
    response = await api.call("list_registrations", "GET", f"registrations?{urlencode(query)}")
    problem = body_of(response)
    assert response.status_code == 400 and problem["field"] == next(iter(query)), problem
