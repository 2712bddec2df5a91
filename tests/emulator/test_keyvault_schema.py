"""The stand-in's Key Vault responses, checked against Microsoft's REST spec (secrets, 2025-07-01).

Requests are made by the real azure-keyvault-secrets client; azure-core's `raw_response_hook`
hands over each raw response, whose JSON is validated against the spec's own definitions.
Object definitions are closed (`additionalProperties: false`), so a field the spec does not
define fails the test: the stand-in's shapes must be the spec's, not merely contain them.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineResponse
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache
from jsonschema import Draft4Validator  # type: ignore[import-untyped]  # no stubs in the venv

from emulator.launcher import StandIn
from tests.emulator.sdk import secret_client

# Kept in the repository (spec/README.md says where it comes from), so a clone runs these checks.
SPEC_PATH = Path(__file__).resolve().parent / "spec" / "keyvault-secrets-2025-07-01.json"

# Key Vault sends `"nextLink": null` on the last page of every list (see the recorded responses in
# Azure/azure-sdk-for-js, sdk/keyvault/*/recordings), although the spec types nextLink as a plain
# string. The service's wire behaviour wins; every other field is held to the spec as written.
NULLABLE_AS_SERVED = {("SecretListResult", "nextLink"), ("DeletedSecretListResult", "nextLink")}


EXPIRES = datetime(2099, 1, 1, tzinfo=UTC)


def unique(prefix: str) -> str:
    return f"schema-{prefix}-{uuid.uuid4().hex[:12]}"


def strict_definitions(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's definitions with closed objects and swagger's x-nullable turned into JSON Schema."""
    definitions: dict[str, Any] = copy.deepcopy(spec["definitions"])
    for name, definition in definitions.items():
        if definition.get("type") == "object" and "properties" in definition:
            definition.setdefault("additionalProperties", False)
            for prop_name, prop in definition["properties"].items():
                if (name, prop_name) in NULLABLE_AS_SERVED or prop.get("x-nullable") is True:
                    prop["type"] = [prop["type"], "null"]
        if definition.get("x-nullable") is True and "type" in definition:
            definition["type"] = [definition["type"], "null"]
    return definitions


@dataclass
class Captured:
    """Raw (status, JSON body) of each response the SDK receives, via azure-core's raw_response_hook."""

    responses: list[tuple[int, Any]] = field(default_factory=list)

    def __call__(self, response: PipelineResponse[Any, Any]) -> None:
        http_response = response.http_response
        text = http_response.text()
        self.responses.append((http_response.status_code, json.loads(text) if text else None))

    def bodies(self, status: int) -> list[Any]:
        return [body for code, body in self.responses if code == status]

    def last(self, status: int) -> Any:
        bodies = self.bodies(status)
        assert bodies, f"no {status} response was captured: {[code for code, _ in self.responses]}"
        return bodies[-1]


@pytest.fixture(scope="module")
def definitions() -> dict[str, Any]:
    # A missing spec fails: skipping would turn every check in this module green without running it.
    assert SPEC_PATH.is_file(), f"Microsoft's Key Vault secrets spec is missing from {SPEC_PATH} (spec/README.md)"
    spec = json.loads(SPEC_PATH.read_text())
    return strict_definitions(spec)


def assert_matches(definitions: dict[str, Any], definition: str, body: Any) -> None:
    validator = Draft4Validator({"$ref": f"#/definitions/{definition}", "definitions": definitions})
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, f"{definition} mismatch:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )


@pytest.fixture
def client(stand_in: StandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[SecretClient]:
    for key, value in stand_in.identity_env().items():
        monkeypatch.setenv(key, value)
    with ManagedIdentityCredential() as credential, secret_client(stand_in, credential) as sync_client:
        yield sync_client


@pytest.fixture
def captured() -> Captured:
    return Captured()


def test_the_strict_schema_rejects_fields_the_spec_does_not_define(definitions: dict[str, Any]) -> None:
    """Guards the checks below: an unknown field, or a wrong type, must fail validation."""
    validator = Draft4Validator({"$ref": "#/definitions/SecretBundle", "definitions": definitions})
    assert validator.is_valid({"id": "https://v/secrets/a/b", "value": "x", "attributes": {"enabled": True}})
    assert not validator.is_valid({"id": "https://v/secrets/a/b", "name": "a"})
    assert not validator.is_valid({"id": "https://v/secrets/a/b", "attributes": {"enabled": True, "deleted": 1}})
    assert not validator.is_valid({"id": "https://v/secrets/a/b", "attributes": {"recoveryLevel": "Whatever"}})
    assert not validator.is_valid({"id": "https://v/secrets/a/b", "attributes": {"created": "2025-01-01"}})


def test_set_get_and_update_answer_secret_bundles(
    client: SecretClient, captured: Captured, definitions: dict[str, Any]
) -> None:
    name = unique("bundle")
    first = client.set_secret(
        name, "v1", content_type="text/plain", tags={"a": "b"}, expires_on=EXPIRES, raw_response_hook=captured
    )
    assert_matches(definitions, "SecretBundle", captured.last(200))

    client.set_secret(name, "v2", raw_response_hook=captured)
    client.get_secret(name, raw_response_hook=captured)
    latest = captured.last(200)
    assert_matches(definitions, "SecretBundle", latest)
    assert latest["value"] == "v2"

    client.get_secret(name, first.properties.version, raw_response_hook=captured)
    assert_matches(definitions, "SecretBundle", captured.last(200))

    client.update_secret_properties(name, enabled=True, tags={"k": "v"}, raw_response_hook=captured)
    updated = captured.last(200)
    assert_matches(definitions, "SecretBundle", updated)
    assert "value" not in updated, "an update answers without the secret value"


def test_listing_secrets_answers_secret_list_results_on_every_page(
    client: SecretClient, captured: Captured, definitions: dict[str, Any]
) -> None:
    prefix = unique("list")
    for i in range(3):
        client.set_secret(f"{prefix}-{i}", "v", tags={"i": str(i)}, content_type="text/plain")

    list(client.list_properties_of_secrets(max_page_size=2, raw_response_hook=captured))

    pages = captured.bodies(200)
    assert len(pages) >= 2
    for page in pages:
        assert_matches(definitions, "SecretListResult", page)
    assert isinstance(pages[0]["nextLink"], str)


def test_listing_versions_answers_secret_list_results(
    client: SecretClient, captured: Captured, definitions: dict[str, Any]
) -> None:
    name = unique("versions")
    for i in range(3):
        client.set_secret(name, f"v{i}")

    list(client.list_properties_of_secret_versions(name, max_page_size=2, raw_response_hook=captured))

    pages = captured.bodies(200)
    assert len(pages) == 2
    for page in pages:
        assert_matches(definitions, "SecretListResult", page)
        assert all("value" not in item for item in page["value"])


def test_delete_get_deleted_and_list_deleted_answer_deleted_shapes(
    client: SecretClient, captured: Captured, definitions: dict[str, Any]
) -> None:
    name = unique("deleted")
    client.set_secret(name, "v", tags={"a": "b"}, content_type="text/plain")

    client.begin_delete_secret(name, raw_response_hook=captured).result()
    assert_matches(definitions, "DeletedSecretBundle", captured.last(200))

    client.get_deleted_secret(name, raw_response_hook=captured)
    deleted = captured.last(200)
    assert_matches(definitions, "DeletedSecretBundle", deleted)
    assert {"recoveryId", "deletedDate", "scheduledPurgeDate"} <= deleted.keys()

    listing = Captured()
    list(client.list_deleted_secrets(raw_response_hook=listing))
    pages = listing.bodies(200)
    assert pages
    for page in pages:
        assert_matches(definitions, "DeletedSecretListResult", page)
    assert any(item["id"].endswith(f"/secrets/{name}") for page in pages for item in page["value"])


def test_recover_answers_a_secret_bundle(client: SecretClient, captured: Captured, definitions: dict[str, Any]) -> None:
    name = unique("recover")
    client.set_secret(name, "v")
    client.begin_delete_secret(name).wait()

    client.begin_recover_deleted_secret(name, raw_response_hook=captured).result()

    assert_matches(definitions, "SecretBundle", captured.last(200))


def test_not_found_answers_a_key_vault_error(
    client: SecretClient, captured: Captured, definitions: dict[str, Any]
) -> None:
    with pytest.raises(HttpResponseError):
        client.get_secret(unique("missing"), raw_response_hook=captured)

    body = captured.last(404)
    assert_matches(definitions, "KeyVaultError", body)
    assert body["error"]["code"] == "SecretNotFound"


def test_a_conflict_answers_a_key_vault_error_with_an_inner_error(
    client: SecretClient, captured: Captured, definitions: dict[str, Any]
) -> None:
    name = unique("conflict")
    client.set_secret(name, "v")
    client.begin_delete_secret(name).wait()

    with pytest.raises(HttpResponseError):
        client.set_secret(name, "again", raw_response_hook=captured)

    body = captured.last(409)
    assert_matches(definitions, "KeyVaultError", body)
    assert body["error"]["innererror"] == {"code": "ObjectIsDeletedButRecoverable"}


def test_other_refusals_answer_key_vault_errors(
    client: SecretClient, captured: Captured, definitions: dict[str, Any]
) -> None:
    name = unique("refusals")
    client.set_secret(name, "v", enabled=False)
    with pytest.raises(HttpResponseError):
        client.get_secret(name, raw_response_hook=captured)  # 403 SecretDisabled
    with pytest.raises(HttpResponseError):
        client.set_secret("bad_name", "v", raw_response_hook=captured)  # 400 BadParameter
    client.begin_delete_secret(name).wait()
    with pytest.raises(HttpResponseError):
        client.purge_deleted_secret(name, raw_response_hook=captured)  # 403 purge protection

    errors = captured.bodies(403) + captured.bodies(400)
    assert len(errors) == 3
    for body in errors:
        assert_matches(definitions, "KeyVaultError", body)


def test_the_authentication_challenge_answers_a_key_vault_error(
    stand_in: StandIn, client: SecretClient, captured: Captured, definitions: dict[str, Any]
) -> None:
    name = unique("challenge")
    client.set_secret(name, "v")
    http_challenge_cache.clear()  # the SDK caches the challenge per host; make it ask again
    try:
        client.get_secret(name, raw_response_hook=captured)
    finally:
        http_challenge_cache.clear()

    body = captured.last(401)
    assert_matches(definitions, "KeyVaultError", body)
    assert captured.last(200)["value"] == "v"
