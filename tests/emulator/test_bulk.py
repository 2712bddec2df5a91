"""The admin API's bulk registrations and request log, read back through the unmodified SDKs.

Bulk registrations stand in for thousands of onboardings, so they are held to what onboarding
and rotation write: the same app, owner, grants and credential names in Entra, the same secret
names, values, content types, tags and expiry in Key Vault, and a secret that really works.
"""

from __future__ import annotations

import ssl
import urllib.error
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from emulator.launcher import StandIn
from tests.emulator.directory import GRAPH_APP_ID
from tests.emulator.sdk import GRAPH_SCOPE, secret_client, secret_credential

ROLE = "User.Read.All"
NOTES = "Managed by tenant onboarding automation: permissions and secrets are set and rotated automatically."


def seed(stand_in: StandIn, prefix: str, integrations: list[str], **shares: float) -> Any:
    return stand_in.admin(
        "POST",
        "/registrations",
        {
            "namePrefix": prefix,
            "integrations": integrations,
            "permissions": [{"resourceAppId": GRAPH_APP_ID, "roles": [ROLE]}],
            **shares,
        },
    )


@pytest.fixture
def vault(stand_in: StandIn) -> SecretClient:
    return secret_client(stand_in, ManagedIdentityCredential())


@pytest.fixture
def graph(stand_in: StandIn) -> httpx.Client:
    token = ManagedIdentityCredential().get_token(GRAPH_SCOPE).token
    return httpx.Client(
        base_url=stand_in.graph_url,
        headers={"authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=stand_in.ca_bundle),
    )


def app_by_unique_name(graph: httpx.Client, unique_name: str) -> dict[str, Any]:
    response = graph.get(f"/applications(uniqueName='{unique_name}')")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def test_a_bulk_registration_is_what_onboarding_leaves_and_its_secret_works(
    stand_in: StandIn, vault: SecretClient, graph: httpx.Client
) -> None:
    prefix, tenant = f"p{uuid.uuid4().hex[:8]}", stand_in.home_tenant_id

    result = seed(stand_in, prefix, ["alpha", "beta"])

    assert result["created"] == 2 and result["secrets"] == 6 and result["fresh"] == 2
    app = app_by_unique_name(graph, f"{prefix}-alpha")
    assert app["displayName"] == "alpha" and app["signInAudience"] == "AzureADMyOrg" and app["notes"] == NOTES
    assert app["tags"] == ["tenant-onboarding", "integration:alpha"]
    graph_sp = graph.get(f"/servicePrincipals(appId='{GRAPH_APP_ID}')").json()
    role_id = next(r["id"] for r in graph_sp["appRoles"] if r["value"] == ROLE)
    assert app["requiredResourceAccess"] == [
        {"resourceAppId": GRAPH_APP_ID, "resourceAccess": [{"id": role_id, "type": "Role"}]}
    ]
    owners = graph.get(f"/applications/{app['id']}/owners").json()["value"]
    assert [o["id"] for o in owners] == [stand_in.info["managed_identity_object_id"]]
    [password] = app["passwordCredentials"]
    assert password["displayName"].startswith(f"{prefix} ")

    name = f"{prefix}-{tenant}-alpha"
    secret = vault.get_secret(f"{name}-client-secret")
    assert secret.properties.content_type == "application/vnd.entra.client-secret"
    assert secret.properties.expires_on == datetime.fromisoformat(password["endDateTime"].replace("Z", "+00:00"))
    base = {
        "managed-by": prefix,
        "tenant-id": tenant,
        "integration": "alpha",
        "app-object-id": app["id"],
        "client-id": app["appId"],
    }
    assert secret.properties.tags == base | {
        "kind": "client-secret",
        "key-id": password["keyId"],
        "verified": "true",
        "issued-at": password["startDateTime"],
        "lifetime-days": "180",
    }
    for kind, value in (("client-id", app["appId"]), ("tenant-id", tenant)):
        stored = vault.get_secret(f"{name}-{kind}")
        assert stored.value == value
        assert stored.properties.content_type == f"application/vnd.entra.{kind}"
        assert stored.properties.tags == base | {"kind": kind}
        assert stored.properties.expires_on is None

    token = secret_credential(stand_in, tenant, app["appId"], str(secret.value)).get_token(GRAPH_SCOPE).token
    assert ROLE in jwt.decode(token, options={"verify_signature": False})["roles"]


def test_shares_are_exact_and_dated_the_way_a_sweep_plans_them(
    stand_in: StandIn, vault: SecretClient, graph: httpx.Client
) -> None:
    prefix, tenant = f"p{uuid.uuid4().hex[:8]}", stand_in.home_tenant_id
    now = datetime.now(UTC)

    result = seed(stand_in, prefix, [f"i{n:03d}" for n in range(100)], due=0.1, retiring=0.1, waiting=0.1, seed=3)

    assert [len(result[s]) for s in ("due", "retiring", "waiting")] == [10, 10, 10] and result["fresh"] == 70
    due = vault.get_secret(f"{prefix}-{tenant}-{result['due'][0]}-client-secret").properties
    assert due.expires_on is not None and timedelta(0) < due.expires_on - now <= timedelta(days=30)
    fresh = next(
        f"i{n:03d}" for n in range(100) if all(f"i{n:03d}" not in result[s] for s in ("due", "retiring", "waiting"))
    )
    fresh_expiry = vault.get_secret(f"{prefix}-{tenant}-{fresh}-client-secret").properties.expires_on
    assert fresh_expiry is not None and fresh_expiry - now > timedelta(days=30)
    for share, passed in (("retiring", True), ("waiting", False)):
        integration = result[share][0]
        versions = sorted(
            vault.list_properties_of_secret_versions(f"{prefix}-{tenant}-{integration}-client-secret"),
            key=lambda p: (p.tags or {}).get("issued-at", ""),
        )
        old, new = (dict(v.tags or {}) for v in versions)
        assert new["previous-key-id"] == old["key-id"] and new["rotated-at"] == new["issued-at"]
        retire_after = datetime.strptime(new["retire-after"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert (retire_after <= now) is passed
        app = app_by_unique_name(graph, f"{prefix}-{integration}")
        assert sorted(p["keyId"] for p in app["passwordCredentials"]) == sorted([old["key-id"], new["key-id"]])


def test_seeding_a_registration_that_exists_is_refused_and_creates_nothing(
    stand_in: StandIn, vault: SecretClient
) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}"
    seed(stand_in, prefix, ["taken"])

    with pytest.raises(urllib.error.HTTPError) as refused:
        seed(stand_in, prefix, ["new-one", "taken"])

    assert refused.value.code == 400
    assert f"{prefix}-taken" in refused.value.read().decode()
    with pytest.raises(ResourceNotFoundError):
        vault.get_secret(f"{prefix}-{stand_in.home_tenant_id}-new-one-client-id")


def test_the_request_log_counts_each_services_requests_until_reset(stand_in: StandIn, graph: httpx.Client) -> None:
    stand_in.admin("DELETE", "/requests")

    graph.get(f"/servicePrincipals(appId='{GRAPH_APP_ID}')").raise_for_status()
    graph.get(f"/servicePrincipals(appId='{GRAPH_APP_ID}')").raise_for_status()
    log = stand_in.admin("GET", "/requests")

    assert log["totals"]["graph"]["GET"] == 2
    assert sum(row["count"] for row in log["bySecond"] if row["service"] == "graph") == 2
    assert "admin" not in log["totals"]
