"""Key Vault secrets through the unmodified azure-keyvault-secrets clients (sync and aio).

Every service call goes through the real SDK with a real ManagedIdentityCredential, so the
stand-in is held to what the SDK sends and understands: the challenge flow, paging by
nextLink, soft-delete pollers, error mapping and retries. Hand-written HTTP appears only
where the SDK cannot express the request: an unauthenticated call (to read the challenge
itself) and an api-version the SDK refuses to send. The admin API is used for setup only.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.core.pipeline import PipelineResponse
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from azure.keyvault.secrets import ApiVersion, SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache
from azure.keyvault.secrets.aio import SecretClient as AsyncSecretClient

from emulator.launcher import StandIn
from tests.emulator.sdk import async_secret_client, secret_client

VAULT_SCOPE = "https://vault.azure.net/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
RETENTION_SECONDS = 90 * 86400  # the seeded vault keeps deleted secrets 90 days
MAX_TAGS = 15
MAX_VALUE_BYTES = 25 * 1024
SERVICE_PAGE_LIMIT = 25


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def inner_code(error: HttpResponseError) -> str | None:
    """Key Vault's `error.innererror.code`, which carries the specific reason (e.g. ForbiddenByRbac)."""
    assert error.error is not None
    code = error.error.innererror.get("code")
    return str(code) if code is not None else None


@dataclass
class Exchange:
    """One request/response pair as seen just outside the transport (inside the challenge policy)."""

    method: str
    url: str
    authorization: str | None
    body: bytes
    status: int
    www_authenticate: str | None


@dataclass
class Wire:
    """Records what the SDK put on the wire, via azure-core's per-call raw request/response hooks."""

    exchanges: list[Exchange] = field(default_factory=list)

    def on_response(self, response: PipelineResponse[Any, Any]) -> None:
        http_request = response.http_response.request
        content = http_request.content
        body = content if isinstance(content, bytes) else (content.encode() if isinstance(content, str) else b"")
        self.exchanges.append(
            Exchange(
                method=http_request.method,
                url=http_request.url,
                authorization=http_request.headers.get("Authorization"),
                body=body,
                status=response.http_response.status_code,
                www_authenticate=response.http_response.headers.get("WWW-Authenticate"),
            )
        )

    def hooks(self) -> dict[str, Any]:
        return {"raw_response_hook": self.on_response}


def raw_vault_request(
    stand_in: StandIn, path: str, token: str | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A GET the SDK cannot make (no token, or an api-version it refuses): status, headers, JSON body."""
    context = ssl.create_default_context(cafile=stand_in.ca_bundle)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{stand_in.vault_url}{path}", headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


# --- fixtures ---


@pytest.fixture
def identity_env(stand_in: StandIn, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    """App Service managed identity variables, present whenever MSAL acquires a token in the test."""
    for key, value in stand_in.identity_env().items():
        monkeypatch.setenv(key, value)
    return stand_in


@pytest.fixture
def credential(identity_env: StandIn) -> Iterator[ManagedIdentityCredential]:
    with ManagedIdentityCredential() as managed_identity:
        yield managed_identity


@pytest.fixture
def client(stand_in: StandIn, credential: ManagedIdentityCredential) -> Iterator[SecretClient]:
    with secret_client(stand_in, credential) as sync_client:
        yield sync_client


@pytest.fixture
async def async_client(identity_env: StandIn) -> AsyncIterator[AsyncSecretClient]:
    async with (
        AsyncManagedIdentityCredential() as managed_identity,
        async_secret_client(identity_env, managed_identity) as aio_client,
    ):
        yield aio_client


@pytest.fixture
def vault_role(stand_in: StandIn) -> Iterator[str]:
    """The managed identity's object id; whatever vault role it had is put back afterwards."""
    object_id = str(stand_in.info["managed_identity_object_id"])
    before = stand_in.state()["vault"]["roleAssignments"].get(object_id)
    try:
        yield object_id
    finally:
        stand_in.admin("PUT", "/vault/role-assignments", {"principalId": object_id, "role": before})


@pytest.fixture
def no_cached_challenge() -> Iterator[None]:
    """Forget the challenge the SDK caches per vault host, so the next client must discover it again.

    The cache is process-wide; clearing it is what the SDK's own tests do between cases.
    """
    http_challenge_cache.clear()
    yield
    http_challenge_cache.clear()


class GraphTokenCredential:
    """Hands out the managed identity's Microsoft Graph token whatever scope is asked: the wrong audience."""

    def __init__(self, inner: ManagedIdentityCredential) -> None:
        self.inner = inner

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        token: AccessToken = self.inner.get_token(GRAPH_SCOPE)
        return token


# --- set, get, versions ---


def test_set_then_get_returns_the_latest_version_and_each_version_by_id(client: SecretClient) -> None:
    name = unique("versions")
    first = client.set_secret(name, "one")
    second = client.set_secret(name, "two")

    assert first.properties.version != second.properties.version
    assert first.name == second.name == name

    latest = client.get_secret(name)
    assert latest.value == "two"
    assert latest.properties.version == second.properties.version
    assert latest.id == f"{client.vault_url}/secrets/{name}/{second.properties.version}"

    older = client.get_secret(name, first.properties.version)
    assert older.value == "one"
    assert older.properties.version == first.properties.version


def test_a_new_secret_carries_the_vaults_recovery_settings(client: SecretClient) -> None:
    secret = client.set_secret(unique("recovery"), "v", content_type="text/plain", tags={"team": "onboarding"})

    assert secret.properties.enabled is True
    assert secret.properties.content_type == "text/plain"
    assert secret.properties.tags == {"team": "onboarding"}
    assert secret.properties.created_on is not None
    assert secret.properties.updated_on == secret.properties.created_on
    # Purge protection on and 90 days of retention: recoverable, not purgeable.
    assert secret.properties.recovery_level == "Recoverable"
    assert secret.properties.recoverable_days == 90


def test_getting_a_missing_secret_is_not_found(client: SecretClient) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        client.get_secret(unique("missing"))

    assert caught.value.status_code == 404
    assert caught.value.error is not None
    assert caught.value.error.code == "SecretNotFound"


def test_getting_an_unknown_version_is_not_found(client: SecretClient) -> None:
    name = unique("unknown-version")
    client.set_secret(name, "v")

    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name, uuid.uuid4().hex)


async def test_async_client_sets_and_gets_latest_and_by_version(async_client: AsyncSecretClient) -> None:
    name = unique("aio-versions")
    first = await async_client.set_secret(name, "one")
    second = await async_client.set_secret(name, "two")

    assert (await async_client.get_secret(name)).value == "two"
    assert (await async_client.get_secret(name, first.properties.version)).value == "one"
    assert (await async_client.get_secret(name, second.properties.version)).value == "two"


# --- update ---


def test_updating_properties_changes_tags_content_type_enabled_and_expiry_but_not_the_value(
    client: SecretClient,
) -> None:
    name = unique("update")
    created = client.set_secret(name, "keep-me", tags={"a": "1"})
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    not_before = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)

    updated = client.update_secret_properties(
        name,
        content_type="application/json",
        enabled=True,
        expires_on=expires,
        not_before=not_before,
        tags={"rotated": "yes", "owner": "tenant-onboarding"},
    )

    assert updated.version == created.properties.version
    assert updated.content_type == "application/json"
    assert updated.tags == {"rotated": "yes", "owner": "tenant-onboarding"}
    assert updated.expires_on == expires
    assert updated.not_before == not_before
    assert updated.enabled is True

    fetched = client.get_secret(name)
    assert fetched.value == "keep-me"
    assert fetched.properties.version == created.properties.version
    assert fetched.properties.tags == {"rotated": "yes", "owner": "tenant-onboarding"}
    assert fetched.properties.content_type == "application/json"
    assert fetched.properties.expires_on == expires


def test_updating_an_older_version_leaves_the_latest_alone(client: SecretClient) -> None:
    name = unique("update-old")
    first = client.set_secret(name, "one")
    second = client.set_secret(name, "two", tags={"gen": "2"})

    client.update_secret_properties(name, first.properties.version, tags={"gen": "1-retired"})

    assert client.get_secret(name, first.properties.version).properties.tags == {"gen": "1-retired"}
    latest = client.get_secret(name)
    assert latest.properties.version == second.properties.version
    assert latest.properties.tags == {"gen": "2"}


async def test_async_client_updates_properties(async_client: AsyncSecretClient) -> None:
    name = unique("aio-update")
    await async_client.set_secret(name, "v")

    updated = await async_client.update_secret_properties(name, tags={"k": "v"}, content_type="text/plain")

    assert updated.tags == {"k": "v"}
    assert (await async_client.get_secret(name)).properties.content_type == "text/plain"


def test_getting_a_disabled_secret_is_forbidden(client: SecretClient) -> None:
    name = unique("disabled")
    client.set_secret(name, "hidden")
    client.update_secret_properties(name, enabled=False)

    with pytest.raises(HttpResponseError) as caught:
        client.get_secret(name)

    assert caught.value.status_code == 403
    assert caught.value.error is not None
    assert caught.value.error.code == "Forbidden"
    assert inner_code(caught.value) == "SecretDisabled"
    # Its metadata stays readable, and enabling it again makes it gettable.
    [listed] = list(client.list_properties_of_secret_versions(name))
    assert listed.enabled is False
    client.update_secret_properties(name, enabled=True)
    assert client.get_secret(name).value == "hidden"


def test_a_secret_set_disabled_is_forbidden_to_get(client: SecretClient) -> None:
    name = unique("born-disabled")
    client.set_secret(name, "v", enabled=False)

    with pytest.raises(HttpResponseError) as caught:
        client.get_secret(name)

    assert caught.value.status_code == 403


# --- listing and paging ---


def test_listing_more_than_a_page_follows_next_link_and_returns_every_secret(client: SecretClient) -> None:
    prefix = unique("page")
    created = {client.set_secret(f"{prefix}-{i:02d}", f"value-{i}").name for i in range(30)}
    wire = Wire()

    pages = [list(page) for page in client.list_properties_of_secrets(**wire.hooks()).by_page()]

    listed = [secret.name for page in pages for secret in page]
    assert created <= set(listed)
    assert len(listed) == len(set(listed)), "a secret came back on two pages"
    assert len(pages) >= 2
    assert all(len(page) <= SERVICE_PAGE_LIMIT for page in pages)
    follow_ups = [e for e in wire.exchanges if "$skiptoken" in urllib.parse.unquote(e.url)]
    assert len(follow_ups) == len(pages) - 1, "every page after the first came from the service's nextLink"


def test_a_secret_deleted_mid_listing_shifts_no_later_page(client: SecretClient) -> None:
    # Key Vault resumes a listing at a name (its $skiptoken's NextMarker), not at an offset, so
    # a deletion on an earlier page makes no later secret slip between two pages.
    prefix = unique("shift")
    created = sorted(str(client.set_secret(f"{prefix}-{i:02d}", "v").name) for i in range(12))
    pages = client.list_properties_of_secrets(max_page_size=5).by_page()

    listed: list[str | None] = []
    while created[0] not in listed:  # other tests' secrets may come first
        listed += [secret.name for secret in next(pages)]
    client.begin_delete_secret(created[0]).wait()  # from a page already read, with more of ours after it
    listed += [secret.name for page in pages for secret in page]

    assert [n for n in created if n not in listed] == []
    assert len(listed) == len(set(listed)), "a secret came back on two pages"


def test_listing_with_a_small_page_size_pages_through_every_secret(client: SecretClient) -> None:
    prefix = unique("small-page")
    created = {client.set_secret(f"{prefix}-{i:02d}", "v").name for i in range(12)}

    pages = [list(page) for page in client.list_properties_of_secrets(max_page_size=5).by_page()]

    assert all(len(page) <= 5 for page in pages)
    assert len(pages) >= 3
    assert created <= {secret.name for page in pages for secret in page}


def test_a_page_size_above_the_service_limit_is_a_bad_parameter(client: SecretClient) -> None:
    with pytest.raises(HttpResponseError) as caught:
        list(client.list_properties_of_secrets(max_page_size=SERVICE_PAGE_LIMIT + 1))

    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "BadParameter"


@pytest.mark.parametrize("maxresults", ["0", "-1", "abc", "²", "٣"])
def test_a_malformed_page_size_is_a_bad_parameter_not_a_server_error(client: SecretClient, maxresults: str) -> None:
    # max_page_size is typed int; azure-core's per-call `params` puts the raw value on the query string.
    with pytest.raises(HttpResponseError) as caught:
        list(client.list_properties_of_secrets(params={"maxresults": maxresults}))

    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "BadParameter"


async def test_async_client_pages_through_every_secret(async_client: AsyncSecretClient) -> None:
    prefix = unique("aio-page")
    created = {(await async_client.set_secret(f"{prefix}-{i:02d}", "v")).name for i in range(7)}

    sizes: list[int] = []
    names: set[str | None] = set()
    async for page in async_client.list_properties_of_secrets(max_page_size=3).by_page():
        items = [secret async for secret in page]
        sizes.append(len(items))
        names.update(secret.name for secret in items)

    assert created <= names
    assert len(sizes) >= 3
    assert max(sizes) <= 3


def test_listing_versions_returns_every_version_of_one_secret(client: SecretClient) -> None:
    name = unique("list-versions")
    other = unique("list-versions-other")
    client.set_secret(other, "not mine")
    versions = {client.set_secret(name, f"value-{i}").properties.version for i in range(4)}

    pages = [list(page) for page in client.list_properties_of_secret_versions(name, max_page_size=3).by_page()]

    listed = [secret for page in pages for secret in page]
    assert {secret.version for secret in listed} == versions
    assert {secret.name for secret in listed} == {name}
    assert len(pages) == 2


def test_listing_versions_of_a_missing_secret_is_an_empty_list(client: SecretClient) -> None:
    # As Key Vault answers (recorded[kv-versions-missing]: 200 with an empty page, not 404).
    assert list(client.list_properties_of_secret_versions(unique("no-such"))) == []


# --- soft delete, recover, purge ---


def test_deleting_a_secret_keeps_it_recoverable_until_its_scheduled_purge(client: SecretClient) -> None:
    name = unique("delete")
    client.set_secret(name, "v", tags={"k": "v"})

    poller = client.begin_delete_secret(name)
    poller.wait()
    deleted_now = poller.result()

    assert deleted_now.name == name
    assert deleted_now.recovery_id == f"{client.vault_url}/deletedsecrets/{name}"
    deleted = client.get_deleted_secret(name)
    assert deleted.name == name
    assert deleted.recovery_id == f"{client.vault_url}/deletedsecrets/{name}"
    assert deleted.deleted_date is not None
    assert deleted.scheduled_purge_date is not None
    assert deleted.scheduled_purge_date - deleted.deleted_date == timedelta(seconds=RETENTION_SECONDS)
    assert deleted.properties.tags == {"k": "v"}

    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)
    assert name in {secret.name for secret in client.list_deleted_secrets()}
    assert name not in {secret.name for secret in client.list_properties_of_secrets()}


def test_deleting_a_missing_secret_is_not_found(client: SecretClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        client.begin_delete_secret(unique("never-was"))


def test_setting_a_soft_deleted_name_conflicts(client: SecretClient) -> None:
    name = unique("conflict")
    client.set_secret(name, "v")
    client.begin_delete_secret(name).wait()

    with pytest.raises(ResourceExistsError) as caught:
        client.set_secret(name, "again")

    assert caught.value.status_code == 409
    assert caught.value.error is not None
    assert caught.value.error.code == "Conflict"
    assert inner_code(caught.value) == "ObjectIsDeletedButRecoverable"


def test_recovering_a_deleted_secret_brings_back_every_version(client: SecretClient) -> None:
    name = unique("recover")
    first = client.set_secret(name, "one")
    second = client.set_secret(name, "two")
    client.begin_delete_secret(name).wait()

    poller = client.begin_recover_deleted_secret(name)
    poller.wait()
    recovered = poller.result()

    assert recovered.name == name
    assert recovered.version == second.properties.version
    assert client.get_secret(name).value == "two"
    assert client.get_secret(name, first.properties.version).value == "one"
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret(name)
    # The name is live again, so it takes new versions.
    assert client.set_secret(name, "three").value == "three"


def test_recovering_a_secret_that_is_not_deleted_is_not_found(client: SecretClient) -> None:
    name = unique("not-deleted")
    client.set_secret(name, "v")

    with pytest.raises(ResourceNotFoundError):
        client.begin_recover_deleted_secret(name)


def test_purging_is_refused_while_purge_protection_is_on(client: SecretClient) -> None:
    name = unique("purge")
    client.set_secret(name, "v")
    client.begin_delete_secret(name).wait()

    with pytest.raises(HttpResponseError) as caught:
        client.purge_deleted_secret(name)

    assert caught.value.status_code == 403
    assert caught.value.error is not None
    assert caught.value.error.code == "Forbidden"
    assert "purge protection" in (caught.value.error.message or "")
    assert client.get_deleted_secret(name).name == name  # still there, still recoverable


async def test_async_client_deletes_and_recovers(async_client: AsyncSecretClient) -> None:
    name = unique("aio-delete")
    await async_client.set_secret(name, "v")

    deleted = await async_client.delete_secret(name)
    assert deleted.recovery_id is not None
    assert (await async_client.get_deleted_secret(name)).scheduled_purge_date is not None
    with pytest.raises(ResourceExistsError):
        await async_client.set_secret(name, "again")

    recovered = await async_client.recover_deleted_secret(name)
    assert recovered.name == name
    assert (await async_client.get_secret(name)).value == "v"


# --- validation limits ---


@pytest.mark.parametrize("name", ["under_score", "dot.name", "x" * 128, "spa ce"])
def test_an_invalid_secret_name_is_a_bad_parameter(client: SecretClient, name: str) -> None:
    with pytest.raises(HttpResponseError) as caught:
        client.set_secret(name, "v")

    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "BadParameter"


def test_the_longest_valid_name_is_accepted(client: SecretClient) -> None:
    name = unique("long")
    name += "x" * (127 - len(name))

    assert client.set_secret(name, "v").name == name


def test_more_than_15_tags_is_a_bad_parameter(client: SecretClient) -> None:
    name = unique("tags")
    assert client.set_secret(name, "v", tags={f"t{i}": "x" for i in range(MAX_TAGS)}).properties.tags

    with pytest.raises(HttpResponseError) as caught:
        client.set_secret(name, "v", tags={f"t{i}": "x" for i in range(MAX_TAGS + 1)})

    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "BadParameter"

    with pytest.raises(HttpResponseError) as on_update:
        client.update_secret_properties(name, tags={f"t{i}": "x" for i in range(MAX_TAGS + 1)})
    assert on_update.value.status_code == 400


def test_a_value_over_25_kb_is_a_bad_parameter(client: SecretClient) -> None:
    name = unique("big")
    assert client.set_secret(name, "x" * MAX_VALUE_BYTES).value == "x" * MAX_VALUE_BYTES

    with pytest.raises(HttpResponseError) as caught:
        client.set_secret(name, "x" * (MAX_VALUE_BYTES + 1))

    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "BadParameter"


# --- authorization (RBAC) and authentication ---


def test_a_secrets_user_can_read_but_not_write(stand_in: StandIn, client: SecretClient, vault_role: str) -> None:
    name = unique("rbac")
    client.set_secret(name, "readable")
    stand_in.admin("PUT", "/vault/role-assignments", {"principalId": vault_role, "role": "Key Vault Secrets User"})

    assert client.get_secret(name).value == "readable"
    assert name in {secret.name for secret in client.list_properties_of_secrets()}
    with pytest.raises(HttpResponseError) as caught:
        client.set_secret(name, "overwritten")

    assert caught.value.status_code == 403
    assert caught.value.error is not None
    assert caught.value.error.code == "Forbidden"
    assert inner_code(caught.value) == "ForbiddenByRbac"
    assert "secrets/setSecret/action" in (caught.value.error.message or "")
    with pytest.raises(HttpResponseError) as on_delete:
        client.begin_delete_secret(name)
    assert on_delete.value.status_code == 403


def test_a_principal_without_a_vault_role_cannot_read(stand_in: StandIn, client: SecretClient, vault_role: str) -> None:
    name = unique("no-role")
    client.set_secret(name, "v")
    stand_in.admin("PUT", "/vault/role-assignments", {"principalId": vault_role, "role": None})

    with pytest.raises(HttpResponseError) as caught:
        client.get_secret(name)

    assert caught.value.status_code == 403
    assert inner_code(caught.value) == "ForbiddenByRbac"


def test_a_token_for_another_audience_is_refused(stand_in: StandIn, credential: ManagedIdentityCredential) -> None:
    wrong: TokenCredential = GraphTokenCredential(credential)
    with secret_client(stand_in, wrong) as graph_token_client, pytest.raises(ClientAuthenticationError) as caught:
        graph_token_client.get_secret(unique("any"))

    assert caught.value.status_code == 401
    assert caught.value.error is not None
    assert caught.value.error.code == "Unauthorized"
    assert "AKV10022" in (caught.value.error.message or "")


def test_the_first_request_elicits_a_challenge_and_the_retry_carries_a_token(
    stand_in: StandIn, credential: ManagedIdentityCredential, no_cached_challenge: None
) -> None:
    wire = Wire()
    name = unique("challenge")
    with secret_client(stand_in, credential) as fresh:
        fresh.set_secret(name, "v", **wire.hooks())
        fresh.get_secret(name, **wire.hooks())

    challenge, authorized, follow_up = wire.exchanges
    assert challenge.method == authorized.method == "PUT"
    assert challenge.authorization is None
    assert challenge.body == b"", "the SDK holds the body back until it has a token"
    assert challenge.status == 401
    assert challenge.www_authenticate == (
        f'Bearer authorization="{stand_in.authority}/{stand_in.home_tenant_id}", resource="https://vault.azure.net"'
    )
    assert authorized.authorization is not None and authorized.authorization.startswith("Bearer ")
    assert json.loads(authorized.body)["value"] == "v"
    assert authorized.status == 200
    # The challenge is remembered: later calls go straight in with the token.
    assert follow_up.method == "GET"
    assert follow_up.authorization is not None
    assert follow_up.status == 200


def test_an_unauthenticated_request_gets_the_challenge_header_and_error(stand_in: StandIn) -> None:
    status, headers, body = raw_vault_request(stand_in, f"/secrets/{unique('anyone')}?api-version=7.5")

    assert status == 401
    assert headers["www-authenticate"] == (
        f'Bearer authorization="{stand_in.authority}/{stand_in.home_tenant_id}", resource="https://vault.azure.net"'
    )
    assert body == {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}}


# --- api-version ---


@pytest.mark.parametrize("api_version", [None, "7.4"], ids=["sdk-default", "7.4"])
def test_the_sdk_default_and_an_older_api_version_both_work(
    stand_in: StandIn, credential: ManagedIdentityCredential, api_version: str | None
) -> None:
    kwargs = {"api_version": api_version} if api_version else {}
    wire = Wire()
    name = unique("api-version")
    with secret_client(stand_in, credential, **kwargs) as versioned:
        versioned.set_secret(name, "v", **wire.hooks())
        assert versioned.get_secret(name, **wire.hooks()).value == "v"
        assert name in {s.name for s in versioned.list_properties_of_secrets(**wire.hooks())}
        versioned.update_secret_properties(name, tags={"api": "ok"}, **wire.hooks())

    sent = {urllib.parse.parse_qs(urllib.parse.urlsplit(e.url).query)["api-version"][0] for e in wire.exchanges}
    assert len(sent) == 1
    if api_version:
        assert sent == {api_version}
    else:
        assert sent <= {v.value for v in ApiVersion}


def test_an_unsupported_api_version_is_a_bad_parameter(
    stand_in: StandIn, credential: ManagedIdentityCredential
) -> None:
    # The SDK refuses unknown versions client-side, so this request is made by hand (with a real token).
    token = credential.get_token(VAULT_SCOPE).token

    status, _, body = raw_vault_request(stand_in, "/secrets?api-version=1999-01-01", token)

    assert status == 400
    assert body["error"]["code"] == "BadParameter"
    assert "1999-01-01" in body["error"]["message"]


# --- resilience ---


def test_the_sync_client_retries_through_throttling(clean_faults: StandIn, client: SecretClient) -> None:
    name = unique("throttled")
    client.set_secret(name, "survives")
    clean_faults.set_faults([{"kind": "status", "service": "vault", "status": 429, "retry_after": 0, "count": 2}])
    wire = Wire()

    assert client.get_secret(name, retry_backoff_factor=0, **wire.hooks()).value == "survives"

    assert [e.status for e in wire.exchanges] == [429, 429, 200]
    assert clean_faults.admin("GET", "/faults")["injected"] == 2
