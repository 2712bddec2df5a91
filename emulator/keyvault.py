"""Azure Key Vault's secrets API: versions, tags, paging, soft delete, recover, purge, RBAC.

Shapes follow Microsoft's REST spec (a copy of the 2025-07-01 version is checked against in
tests); error codes and messages follow captured service responses. Authentication is Key
Vault's challenge protocol: a request without a bearer token gets 401 and a
`WWW-Authenticate` header naming the authority and resource, which is how the SDK learns
where to get a token. Authorization is Azure RBAC on the vault, with the built-in roles'
secret actions.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import ServiceError, vault_error
from .state import SecretRecord, SecretVersion, Vault, World
from .tokens import TokenError, TokenService

SUPPORTED_API_VERSIONS = (
    "2016-10-01",
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6",
    "2025-07-01",
    "2026-04-01",
)
NAME_PATTERN = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
VERSION_PATTERN = re.compile(r"^[0-9a-fA-F]{32}$")
MAX_VALUE_BYTES = 25 * 1024  # "maximum size of 25k bytes" (Key Vault service limits)
MAX_TAGS = 15
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256
MAX_CONTENT_TYPE = 255
PAGE_SIZE_LIMIT = 25

# Built-in Key Vault data-plane roles and the secret actions each allows
# (learn.microsoft.com/azure/key-vault/general/rbac-guide, "Azure built-in roles").
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "Key Vault Administrator": frozenset({"*"}),
    "Key Vault Secrets Officer": frozenset({"*"}),
    "Key Vault Secrets User": frozenset({"getSecret/action", "readMetadata/action"}),
    "Key Vault Reader": frozenset({"readMetadata/action"}),
}


class KeyVaultService:
    def __init__(self, world: World, tokens: TokenService, public_base: str) -> None:
        self.world = world
        self.vault: Vault = world.vault
        self.tokens = tokens
        self.base = public_base

    def routes(self) -> list[Route]:
        return [
            Route("/secrets", self.list_secrets, methods=["GET"]),
            Route("/secrets/{name}", self.secret, methods=["GET", "PUT", "DELETE", "PATCH"]),
            # The SDK asks for the latest version as "/secrets/{name}/" (empty version segment).
            Route("/secrets/{name}/", self.secret_version, methods=["GET", "PATCH"]),
            Route("/secrets/{name}/versions", self.list_versions, methods=["GET"]),
            Route("/secrets/{name}/{version}", self.secret_version, methods=["GET", "PATCH"]),
            Route("/deletedsecrets", self.list_deleted, methods=["GET"]),
            Route("/deletedsecrets/{name}", self.deleted_secret, methods=["GET", "DELETE"]),
            Route("/deletedsecrets/{name}/recover", self.recover, methods=["POST"]),
        ]

    # --- protocol: api-version, challenge, RBAC ---
    def _authorize(
        self,
        request: Request,
        action: str,
        kind: str = "secrets",
        roles: dict[str, frozenset[str]] = ROLE_ACTIONS,
    ) -> None:
        """Api-version, challenge and RBAC for one data action on `kind` (secrets, or certificates)."""
        version = request.query_params.get("api-version")
        if version not in SUPPORTED_API_VERSIONS:
            raise vault_error(
                400,
                "BadParameter",
                f"The specified version ({version}) is not recognized. Consider using the latest supported "
                f"version ({SUPPORTED_API_VERSIONS[-1]}).",
            )
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise self._unauthorized("AKV10000: Request is missing a Bearer or PoP token.")
        try:
            posture = self.tokens.posture  # this cloud's vault resource, and Key Vault's app id there (C4)
            caller = self.tokens.verify(header[7:].strip(), {posture.vault, f"{posture.vault}/", posture.vault_app_id})
        except TokenError as exc:
            if exc.kind == "audience":
                raise self._unauthorized("AKV10022: Invalid audience.") from exc
            raise self._unauthorized(f"AKV10013: Token validation failed: {exc.reason}.") from exc
        if caller.tenant_id != self.vault.tenant_id:
            raise self._unauthorized(
                f"AKV10032: Invalid issuer. Expected one of {self.tokens.posture.v1_issuer_of(self.vault.tenant_id)}, "
                f"found {caller.issuer}."
            )
        # A principal may hold several roles on the vault (the product's identity: Secrets Officer and
        # Certificates Officer, infra/app/rbac.bicep); Azure RBAC is the union of their data actions.
        assigned = self.vault.role_assignments.get(caller.object_id) or []
        held = [assigned] if isinstance(assigned, str) else list(assigned)
        allowed = frozenset().union(*(roles.get(role, frozenset()) for role in held))
        if "*" not in allowed and action not in allowed:
            raise vault_error(
                403,
                "Forbidden",
                "Caller is not authorized to perform action on resource.\r\n"
                "If role assignments, deny assignments or role definitions were changed recently, please "
                "observe propagation time.\r\n"
                f"Caller: appid={caller.app_id};oid={caller.object_id};iss={caller.issuer}\r\n"
                f"Action: 'Microsoft.KeyVault/vaults/{kind}/{action}'\r\n"
                "Assignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n",
                inner_code="ForbiddenByRbac",
            )

    def _unauthorized(self, message: str) -> ServiceError:
        challenge = f'Bearer authorization="{self.base}/{self.vault.tenant_id}", resource="{self.tokens.posture.vault}"'
        return vault_error(401, "Unauthorized", message, headers={"WWW-Authenticate": challenge})

    # --- helpers ---
    @staticmethod
    def _valid_name(name: str) -> str:
        if not NAME_PATTERN.match(name):
            raise vault_error(400, "BadParameter", f"The request URI contains an invalid name: {name}")
        return name

    def _purge_expired_deletions(self) -> None:
        now = int(self.world.clock.now().timestamp())
        for key in [k for k, r in self.vault.deleted_secrets.items() if (r.scheduled_purge_date or now + 1) <= now]:
            del self.vault.deleted_secrets[key]

    def _refuse_if_managed(self, name: str, operation: str) -> None:
        """A certificate's secret changes only through its certificate (learn.microsoft.com/azure/key-vault/
        certificates/about-certificates). The status and code Key Vault answers are not documented: unknown."""
        key = name.lower()
        if key in self.vault.certificates or key in self.vault.deleted_certificates:
            raise vault_error(
                403,
                "Forbidden",
                f"Operation {operation} is not allowed on secret {name}: it is managed by the certificate of "
                "the same name.",
            )

    def _record(self, name: str) -> SecretRecord:
        record = self.vault.secrets.get(name.lower())
        if record is None or not self.world.replication.visible(_recovering(name)):
            raise _not_found(name)
        return record

    def _attributes(self, version: SecretVersion) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "enabled": version.enabled,
            "created": version.created,
            "updated": version.updated,
            "recoveryLevel": self._recovery_level(),
            "recoverableDays": self.vault.soft_delete_retention_days,
        }
        if version.not_before is not None:
            attributes["nbf"] = version.not_before
        if version.expires is not None:
            attributes["exp"] = version.expires
        return attributes

    def _recovery_level(self) -> str:
        """DeletionRecoveryLevel: purge protection drops "+Purgeable"; under 90 days is "Customized"."""
        level = "CustomizedRecoverable" if self.vault.soft_delete_retention_days < 90 else "Recoverable"
        return level if self.vault.purge_protection else f"{level}+Purgeable"

    def _bundle(self, record: SecretRecord, version: SecretVersion, with_value: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"id": f"{self.base}/secrets/{record.name}/{version.version}"}
        if with_value:
            body["value"] = version.value
        body["attributes"] = self._attributes(version)
        if version.content_type is not None:
            body["contentType"] = version.content_type
        if version.tags is not None:
            body["tags"] = version.tags
        if version.managed:
            # A certificate's secret: recorded with `managed: true` and the certificate key's `kid`
            # (Azure/azure-sdk-for-js keyvault-certificates "secret in PKCS12 format" recording).
            body["managed"] = True
            body["kid"] = f"{self.base}/keys/{record.name}/{version.version}"
        return body

    def _item(self, record: SecretRecord, version: SecretVersion, versioned: bool) -> dict[str, Any]:
        suffix = f"/{version.version}" if versioned else ""
        item: dict[str, Any] = {
            "id": f"{self.base}/secrets/{record.name}{suffix}",
            "attributes": self._attributes(version),
        }
        if version.content_type is not None:
            item["contentType"] = version.content_type
        if version.tags is not None:
            item["tags"] = version.tags
        if version.managed:
            item["managed"] = True
        return item

    def _deleted_fields(self, record: SecretRecord) -> dict[str, Any]:
        return {
            "recoveryId": f"{self.base}/deletedsecrets/{record.name}",
            "deletedDate": record.deleted_date,
            "scheduledPurgeDate": record.scheduled_purge_date,
        }

    @staticmethod
    def _page_size(request: Request) -> int:
        """`maxresults`: 1 to 25; absent, the service's own page of 25."""
        raw_max = request.query_params.get("maxresults")
        if raw_max is None:
            return PAGE_SIZE_LIMIT
        # isdigit() alone accepts digits int() refuses ("²"), which crashed here with a 500.
        if not (raw_max.isascii() and raw_max.isdigit()) or not 1 <= int(raw_max) <= PAGE_SIZE_LIMIT:
            raise vault_error(
                400,
                "BadParameter",
                f"maxresults must be an integer between 1 and {PAGE_SIZE_LIMIT}.",
            )
        return int(raw_max)

    def _next_link(self, request: Request, path: str, token: str, page_size: int) -> str:
        # Key Vault's own nextLink carries maxresults only when the request set it (recorded in
        # Azure/azure-sdk-for-js's keyvault-secrets "can purge all secrets" recording).
        api_version = request.query_params["api-version"]
        link = f"{self.base}{path}?api-version={api_version}&$skiptoken={token}"
        return link + (f"&maxresults={page_size}" if "maxresults" in request.query_params else "")

    def _page(self, request: Request, path: str, items: list[dict[str, Any]]) -> JSONResponse:
        page_size = self._page_size(request)
        start = _decode_skiptoken(request.query_params.get("$skiptoken"))
        page = items[start : start + page_size]
        body: dict[str, Any] = {"value": page, "nextLink": None}
        if start + page_size < len(items):
            token = base64.urlsafe_b64encode(json.dumps({"o": start + page_size}).encode()).decode()
            body["nextLink"] = self._next_link(request, path, token, page_size)
        return JSONResponse(body)

    async def _json_body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise vault_error(400, "BadParameter", "The request body is not valid JSON.") from exc
        if not isinstance(body, dict):
            raise vault_error(400, "BadParameter", "The request body must be a JSON object.")
        return body

    def _parse_common(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate contentType, tags and attributes shared by set and update."""
        parsed: dict[str, Any] = {}
        if "contentType" in body and body["contentType"] is not None:
            content_type = body["contentType"]
            if not isinstance(content_type, str) or len(content_type) > MAX_CONTENT_TYPE:
                raise vault_error(
                    400, "BadParameter", f"contentType must be a string of at most {MAX_CONTENT_TYPE} characters."
                )
            parsed["content_type"] = content_type
        if "tags" in body and body["tags"] is not None:
            tags = body["tags"]
            if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
                raise vault_error(400, "BadParameter", "Tags must be an object with string values.")
            if len(tags) > MAX_TAGS:
                raise vault_error(400, "BadParameter", f"The number of tags exceeds the maximum of {MAX_TAGS}.")
            for key, value in tags.items():
                if not key or len(key) > MAX_TAG_NAME or len(value) > MAX_TAG_VALUE:
                    raise vault_error(
                        400,
                        "BadParameter",
                        f"Tag names may have at most {MAX_TAG_NAME} characters and values at most {MAX_TAG_VALUE}.",
                    )
            parsed["tags"] = dict(tags)
        attributes = body.get("attributes")
        if attributes is not None:
            if not isinstance(attributes, dict):
                raise vault_error(400, "BadParameter", "attributes must be an object.")
            if "enabled" in attributes and attributes["enabled"] is not None:
                if not isinstance(attributes["enabled"], bool):
                    raise vault_error(400, "BadParameter", "attributes.enabled must be a boolean.")
                parsed["enabled"] = attributes["enabled"]
            for wire, field in (("nbf", "not_before"), ("exp", "expires")):
                if wire in attributes:
                    value = attributes[wire]
                    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                        raise vault_error(400, "BadParameter", f"attributes.{wire} must be a unix time in seconds.")
                    parsed[field] = value
        return parsed

    # --- routes ---
    async def secret(self, request: Request) -> Response:
        if request.method == "GET":
            return await self.secret_version(request)
        if request.method == "PATCH":
            return await self.secret_version(request)
        if request.method == "PUT":
            return await self._set_secret(request)
        return await self._delete_secret(request)

    async def _set_secret(self, request: Request) -> JSONResponse:
        self._authorize(request, "setSecret/action")
        name = self._valid_name(request.path_params["name"])
        body = await self._json_body(request)
        value = body.get("value")
        if not isinstance(value, str):
            raise vault_error(400, "BadParameter", "The parameter 'value' is required and must be a string.")
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise vault_error(
                400,
                "BadParameter",
                f"Secret is beyond the maximum permitted length of {MAX_VALUE_BYTES} characters.",
            )
        parsed = self._parse_common(body)
        self._refuse_if_managed(name, "set")
        self._purge_expired_deletions()
        if name.lower() in self.vault.deleted_secrets:
            raise vault_error(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; "
                "in this state, the secret can only be recovered or purged.",
                inner_code="ObjectIsDeletedButRecoverable",
            )
        now = int(self.world.clock.now().timestamp())
        record = self.vault.secrets.get(name.lower())
        if record is None:
            record = SecretRecord(name=name)
            self.vault.add_record(record)
        version = SecretVersion(
            name=record.name,
            version=uuid.uuid4().hex,
            value=value,
            content_type=parsed.get("content_type"),
            tags=parsed.get("tags"),
            enabled=parsed.get("enabled", True),
            not_before=parsed.get("not_before"),
            expires=parsed.get("expires"),
            created=now,
            updated=now,
        )
        record.versions.append(version)
        self.world.touch()
        return JSONResponse(self._bundle(record, version))

    async def secret_version(self, request: Request) -> JSONResponse:
        # Key Vault authenticates before it looks at the request: no token means the challenge.
        self._authorize(request, "update/action" if request.method == "PATCH" else "getSecret/action")
        name = self._valid_name(request.path_params["name"])
        version_id = request.path_params.get("version", "")
        if version_id and not VERSION_PATTERN.match(version_id):
            raise _not_found(f"{name}/{version_id}")
        if request.method == "PATCH":
            return await self._update(request, name, version_id)
        record = self._record(name)
        version = record.version(version_id) if version_id else record.latest
        if version is None:
            raise _not_found(f"{name}/{version_id}")
        if not version.enabled:
            raise vault_error(
                403, "Forbidden", "Operation get is not allowed on a disabled secret.", inner_code="SecretDisabled"
            )
        return JSONResponse(self._bundle(record, version))

    async def _update(self, request: Request, name: str, version_id: str) -> JSONResponse:
        body = await self._json_body(request)
        if "value" in body:
            raise vault_error(
                400, "BadParameter", "The secret value cannot be changed by an update; set a new version."
            )
        parsed = self._parse_common(body)
        record = self._record(name)
        version = record.version(version_id) if version_id else record.latest
        if version is None:
            raise _not_found(f"{name}/{version_id}")
        if "content_type" in parsed:
            version.content_type = parsed["content_type"]
        if "tags" in parsed:
            version.tags = parsed["tags"]
        if "enabled" in parsed:
            version.enabled = parsed["enabled"]
        if "not_before" in parsed:
            version.not_before = parsed["not_before"]
        if "expires" in parsed:
            version.expires = parsed["expires"]
        version.updated = int(self.world.clock.now().timestamp())
        self.world.touch()
        return JSONResponse(self._bundle(record, version, with_value=False))

    async def _delete_secret(self, request: Request) -> JSONResponse:
        self._authorize(request, "delete")
        name = self._valid_name(request.path_params["name"])
        record = self._record(name)
        self._refuse_if_managed(name, "delete")
        now = int(self.world.clock.now().timestamp())
        record.deleted_date = now
        record.scheduled_purge_date = now + self.vault.soft_delete_retention_days * 86400
        self.vault.remove_record(name)
        self.vault.deleted_secrets[name.lower()] = record
        # Soft delete completes in the background: the deleted secret answers 404 until then (every SDK's
        # delete recording polls GET /deletedsecrets/{name} through 404s for 2-60 s; tests/emulator/recorded.py).
        self.world.replication.created("secretDeletion", _deleting(name))
        self.world.touch()
        body = self._bundle(record, record.latest, with_value=False)
        body.update(self._deleted_fields(record))
        return JSONResponse(body)

    async def list_secrets(self, request: Request) -> JSONResponse:
        """Latest versions, by name, a page at a time: the nextLink carries the name the next page starts at.

        Key Vault's own `$skiptoken` is base64 JSON with a `NextMarker` naming where to resume, so a
        page costs the same at any vault size; this one costs a binary search and 25 items."""
        self._authorize(request, "readMetadata/action")
        page_size = self._page_size(request)
        names, resume = self.vault.names_from(_decode_marker(request.query_params.get("$skiptoken")), page_size)
        items = [
            self._item(record, record.latest, versioned=False) for record in (self.vault.secrets[n] for n in names)
        ]
        body: dict[str, Any] = {"value": items, "nextLink": None}
        if resume is not None:
            marker = base64.b64encode(f"secret/{resume}".encode()).decode()
            token = base64.urlsafe_b64encode(json.dumps({"NextMarker": marker, "TargetLocation": 0}).encode()).decode()
            body["nextLink"] = self._next_link(request, "/secrets", token, page_size)
        return JSONResponse(body)

    async def list_versions(self, request: Request) -> JSONResponse:
        self._authorize(request, "readMetadata/action")
        name = self._valid_name(request.path_params["name"])
        # The versions of a name the vault does not hold are an empty page, not 404: recorded in
        # Azure/azure-sdk-for-python's test_example_secret_list_operations and Azure/azure-sdk-for-net's
        # GetSecretVersionsNonExisting session records (tests/emulator/recorded.py).
        record = self.vault.secrets.get(name.lower())
        items = [self._item(record, v, versioned=True) for v in record.versions] if record is not None else []
        return self._page(request, f"/secrets/{record.name if record else name}/versions", items)

    async def list_deleted(self, request: Request) -> JSONResponse:
        self._authorize(request, "readMetadata/action")
        self._purge_expired_deletions()
        items = []
        for key, record in sorted(self.vault.deleted_secrets.items()):
            if not self.world.replication.visible(_deleting(key)):
                continue  # still being deleted
            item = self._item(record, record.latest, versioned=False)
            item.update(self._deleted_fields(record))
            items.append(item)
        return self._page(request, "/deletedsecrets", items)

    def _deleted_record(self, name: str) -> SecretRecord:
        self._purge_expired_deletions()
        record = self.vault.deleted_secrets.get(name.lower())
        if record is None or not self.world.replication.visible(_deleting(name)):
            raise vault_error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return record

    async def deleted_secret(self, request: Request) -> Response:
        self._authorize(request, "readMetadata/action" if request.method == "GET" else "purge/action")
        name = self._valid_name(request.path_params["name"])
        if request.method == "GET":
            record = self._deleted_record(name)
            body = self._bundle(record, record.latest, with_value=False)
            body.update(self._deleted_fields(record))
            return JSONResponse(body)
        record = self._deleted_record(name)
        if self.vault.purge_protection:
            raise vault_error(
                403,
                "Forbidden",
                f'Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault '
                f"service will automatically purge secret {record.name} after the retention period has passed.",
            )
        del self.vault.deleted_secrets[name.lower()]
        self.world.touch()
        return Response(status_code=204)

    async def recover(self, request: Request) -> JSONResponse:
        self._authorize(request, "recover/action")
        name = self._valid_name(request.path_params["name"])
        record = self._deleted_record(name)
        del self.vault.deleted_secrets[name.lower()]
        record.deleted_date = None
        record.scheduled_purge_date = None
        self.vault.add_record(record)
        # Recovery too completes in the background: GET /secrets/{name} answers 404 meanwhile (the SDKs'
        # recover recordings poll through it), which is what the SDKs' recover pollers wait out.
        self.world.replication.created("secretRecovery", _recovering(name))
        self.world.touch()
        return JSONResponse(self._bundle(record, record.latest, with_value=False))


def _deleting(name: str) -> str:
    """The key under which a secret's pending soft delete is tracked (state.Replication)."""
    return f"vault-deleting/{name.lower()}"


def _recovering(name: str) -> str:
    return f"vault-recovering/{name.lower()}"


def _not_found(name: str) -> ServiceError:
    return vault_error(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret "
        "you may be able to recover it using the correct recovery command. For help resolving this issue, "
        "please see https://go.microsoft.com/fwlink/?linkid=2125182",
    )


def _decode_skiptoken(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["o"]
    except (ValueError, KeyError, TypeError) as exc:
        raise vault_error(400, "BadParameter", "The $skiptoken is invalid.") from exc
    if not isinstance(offset, int) or offset < 0:
        raise vault_error(400, "BadParameter", "The $skiptoken is invalid.")
    return offset


def _decode_marker(token: str | None) -> str | None:
    """The name a listing resumes at, from a `$skiptoken` this service issued."""
    if not token:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        marker = base64.b64decode(payload["NextMarker"], validate=True).decode()
    except (ValueError, KeyError, TypeError) as exc:
        raise vault_error(400, "BadParameter", "The $skiptoken is invalid.") from exc
    if not marker.startswith("secret/") or not NAME_PATTERN.match(marker[len("secret/") :]):
        raise vault_error(400, "BadParameter", "The $skiptoken is invalid.")
    return marker[len("secret/") :].lower()
