"""Entra ID through msgraph-sdk: the only module that speaks Graph. Returns the project's dataclasses.

Graph's failures become the project's: replication lag (`NotReplicatedYet`), throttling the
SDK's own retries did not ride out (`Throttled`), and named errors for the rest. Minting a
secret is the one non-idempotent call; the SDK's retry handler would repeat it on 429/503 and
could mint a second secret whose text is lost, so it runs with SDK retries off and the use
case decides (shared/usecases/credentials.py).
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime
from typing import Any

import httpx
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
    RemovePasswordPostRequestBody,
)
from msgraph.generated.directory.deleted_items.graph_application.graph_application_request_builder import (
    GraphApplicationRequestBuilder,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.models.service_principal import ServicePrincipal

from shared.adapters.entra_answers import token_claims
from shared.adapters.graph_client import (
    GraphClients,
    GraphToken,
    app_by_unique_name,
    create_if_missing,
    no_sdk_retry,
    sp_by_app_id,
)
from shared.adapters.graph_failures import (
    PRINCIPAL_EXISTS_STATUSES,
    error_code,
    error_message,
    has_detail,
    item_ids,
    log_failure,
    no_answer,
    retry_after,
    retry_after_header,
    sent_ids,
    translate,
)
from shared.adapters.graph_models import (
    application_body,
    duration,
    holding,
    key_info,
    parse_datetime,
    password_info,
    registration,
)
from shared.adapters.identity import ManagementCredentials
from shared.domain.errors import (
    CertificatesRefusedByPolicy,
    NotOwned,
    SecretLifetimeExceedsPolicy,
    SecretsForbiddenByPolicy,
    UpstreamError,
    request_ids_text,
)
from shared.domain.model import (
    AppRegistration,
    Assignment,
    FederatedTrust,
    KeyInfo,
    NewKey,
    NewPassword,
    PasswordPolicy,
    ResourceApi,
    Secret,
)
from shared.domain.ports import (
    ApplicationSpec,
    GrantResult,
    NameHeldByDeletedApplication,
    NotReplicatedYet,
    PasswordOutcomeUnknown,
    Throttled,
)
from shared.domain.retry import THROTTLED_WITHOUT_RETRY_AFTER_SECONDS
from shared.settings import Settings

logger = logging.getLogger(__name__)
# Graph's DateTimeOffset as the key credential's dates are written.
GRAPH_TIME = "%Y-%m-%dT%H:%M:%SZ"
BATCH_LIMIT = 20  # Graph's JSON batching limit
# A rerun's grant: Graph's text as clients report it (no Microsoft page shows it). Only a shortcut: any
# other 400 is settled by reading the grants back (grant()).
ALREADY_GRANTED = "Permission being assigned already exists on the object."
# Graph's answers while an object we just wrote is still replicating (emulator/FIDELITY.md has the sources).
NO_BACKING_APP = "does not reference a valid application object"
NOT_IN_LOCAL_TENANT = "backing application of the service principal being created must in the local tenant"
# A grant to a principal the write path does not know yet: 400 Request_BadRequest with this text, which
# terraform-provider-azuread's app role assignment resource retries on (microsoft-graph-docs-contrib
# issue 1407). Only the text tells it apart from a grant that can never succeed.
NOT_A_VALID_REFERENCE = "Not a valid reference update"


class GraphDirectory:
    """The Directory port over Microsoft Graph: one method per call the use cases make."""

    def __init__(self, settings: Settings, identity: ManagementCredentials) -> None:
        self._settings = settings
        self._identity = identity
        self.clients = GraphClients(settings, identity)

    async def resource_api(self, tenant_id: str, resource_app_id: str) -> ResourceApi | None:
        info = sp_by_app_id(self.clients.client(tenant_id), resource_app_id).to_get_request_information()
        sp = await self.clients.read(tenant_id, info, "reading a resource API's service principal")
        if sp is None:
            return None
        roles = {
            str(role["value"]): str(role["id"])
            for role in sp.get("appRoles") or []
            if role.get("value")
            and role.get("isEnabled") is not False
            and "Application" in (role.get("allowedMemberTypes") or [])
        }
        return ResourceApi(str(sp["id"]), str(sp["appId"]), str(sp.get("displayName") or ""), roles)

    async def password_policy(self, tenant_id: str) -> PasswordPolicy:
        info = self.clients.client(tenant_id).policies.default_app_management_policy.to_get_request_information()
        try:
            policy = await self.clients.read(tenant_id, info, "reading the app management policy")
        except UpstreamError as error:
            if error.upstream_status == 403:
                # Without Policy.Read.All we cannot clamp ahead of time; addPassword still enforces it.
                logger.warning(
                    "cannot read the app management policy of tenant %s (403, %s); not clamping",
                    tenant_id, request_ids_text(error.upstream_request_ids),
                )  # fmt: skip
                return PasswordPolicy()
            raise
        restrictions = (policy or {}).get("applicationRestrictions") or {}
        if not policy or not policy.get("isEnabled"):
            return PasswordPolicy()
        allowed, max_days = True, None
        forbidden_from: datetime | None = None
        capped_from: datetime | None = None
        for restriction in restrictions.get("passwordCredentials") or []:
            # Every field of passwordCredentialConfiguration that narrows or switches off a restriction
            # (https://learn.microsoft.com/graph/api/resources/passwordcredentialconfiguration):
            # `state: disabled` is not enforced; `restrictForAppsCreatedAfterDateTime` limits it to apps
            # created from then on; `excludeActors` may exempt this very caller. customPasswordAddition and
            # the symmetricKey kinds do not concern the generated secrets this service asks for.
            if str(restriction.get("state") or "enabled").lower() == "disabled":
                continue
            kind = restriction.get("restrictionType")
            since = restriction.get("restrictForAppsCreatedAfterDateTime")
            since_date = parse_datetime(str(since)) if since else None
            if kind == "passwordAddition" and not restriction.get("excludeActors"):
                allowed = False
                forbidden_from = since_date
            elif kind == "passwordLifetime" and restriction.get("maxLifetime"):
                days = duration(str(restriction["maxLifetime"])).total_seconds() / 86400
                max_days = days if max_days is None else min(max_days, days)
                capped_from = since_date
        certificate_days, certificate_capped_from = None, None
        for restriction in restrictions.get("keyCredentials") or []:
            # keyCredentialConfiguration: v1.0 knows only `asymmetricKeyLifetime`, narrowed and switched off by
            # the same fields as a password restriction
            # (https://learn.microsoft.com/graph/api/resources/keycredentialconfiguration).
            if str(restriction.get("state") or "enabled").lower() == "disabled":
                continue
            if restriction.get("restrictionType") == "asymmetricKeyLifetime" and restriction.get("maxLifetime"):
                days = duration(str(restriction["maxLifetime"])).total_seconds() / 86400
                certificate_days = days if certificate_days is None else min(certificate_days, days)
                since = restriction.get("restrictForAppsCreatedAfterDateTime")
                certificate_capped_from = parse_datetime(str(since)) if since else None
        return PasswordPolicy(
            additions_allowed=allowed,
            max_lifetime_days=max_days,
            policy_id=policy.get("id"),
            additions_forbidden_for_apps_created_from=forbidden_from,
            lifetime_capped_for_apps_created_from=capped_from,
            certificate_max_lifetime_days=certificate_days,
            certificate_lifetime_capped_for_apps_created_from=certificate_capped_from,
        )

    async def find_application(self, tenant_id: str, unique_name: str) -> AppRegistration | None:
        info = app_by_unique_name(self.clients.client(tenant_id), unique_name).to_get_request_information()
        app = await self.clients.read(tenant_id, info, "reading the app registration")
        return registration(app) if app is not None else None

    async def find_service_principal(self, tenant_id: str, app_id: str) -> str | None:
        info = sp_by_app_id(self.clients.client(tenant_id), app_id).to_get_request_information()
        sp = await self.clients.read(tenant_id, info, "reading the service principal")
        return str(sp["id"]) if sp is not None else None

    async def assignments(self, tenant_id: str, principal_id: str) -> list[Assignment]:
        builder = (
            self.clients.client(tenant_id).service_principals.by_service_principal_id(principal_id).app_role_assignments
        )
        info: RequestInformation | None = builder.to_get_request_information()
        found: list[Assignment] = []
        while info is not None:
            page = await self.clients.read(tenant_id, info, "reading granted permissions")
            if page is None:
                raise NotReplicatedYet("the service principal", "Request_ResourceNotFound")
            found += [
                Assignment(str(a["id"]), str(a["resourceId"]), str(a["appRoleId"])) for a in page.get("value", [])
            ]
            next_link = page.get("@odata.nextLink")
            info = builder.with_url(next_link).to_get_request_information() if next_link else None
        return found

    async def application_owners(self, tenant_id: str, app_object_id: str) -> frozenset[str]:
        """The object ids of the app's owners (users, service principals), every page."""
        builder = self.clients.client(tenant_id).applications.by_application_id(app_object_id).owners
        query = builder.OwnersRequestBuilderGetQueryParameters(select=["id"])
        info: RequestInformation | None = builder.to_get_request_information(
            RequestConfiguration(query_parameters=query)
        )
        return frozenset(await self._ids_of_every_page(tenant_id, builder, info, "reading the app's owners"))

    async def federated_credentials(self, tenant_id: str, app_object_id: str) -> tuple[str, ...]:
        """The ids of the app's federated identity credentials (tokens it accepts from other issuers)."""
        builder = (
            self.clients.client(tenant_id).applications.by_application_id(app_object_id).federated_identity_credentials
        )
        info: RequestInformation | None = builder.to_get_request_information()
        found = await self._ids_of_every_page(tenant_id, builder, info, "reading the app's federated credentials")
        return tuple(found)

    async def federated_trusts(self, tenant_id: str, app_object_id: str) -> tuple[FederatedTrust, ...]:
        """Every federated identity credential of the app, in full (Graph caps an app at 20 of them)."""
        builder = (
            self.clients.client(tenant_id).applications.by_application_id(app_object_id).federated_identity_credentials
        )
        info: RequestInformation | None = builder.to_get_request_information()
        found: list[FederatedTrust] = []
        while info is not None:
            page = await self.clients.read(tenant_id, info, "reading the app's federated credentials")
            if page is None:
                raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
            found += [
                FederatedTrust(
                    str(item.get("name") or ""),
                    str(item.get("issuer") or ""),
                    str(item.get("subject") or ""),
                    tuple(str(a) for a in item.get("audiences") or ()),
                    str(item["id"]),
                )
                for item in page.get("value", [])
            ]
            next_link = page.get("@odata.nextLink")
            info = builder.with_url(next_link).to_get_request_information() if next_link else None
        return tuple(found)

    async def add_federated_trust(self, tenant_id: str, app_object_id: str, trust: FederatedTrust) -> None:
        body = {
            "name": trust.name,
            "issuer": trust.issuer,
            "subject": trust.subject,
            "audiences": list(trust.audiences),
        }
        info = RequestInformation(Method.POST, "{+baseurl}/applications/{id}/federatedIdentityCredentials")
        info.path_parameters = {"id": app_object_id}
        info.set_stream_content(json.dumps(body).encode(), "application/json")
        try:
            await self.clients.send_for_json(tenant_id, info)
        except ODataError as error:
            if error.response_status_code == 404:
                raise NotReplicatedYet("the connector app", error_code(error)) from error
            raise translate(error, "adding a federated credential", tenant_id) from error
        except httpx.HTTPError as error:
            raise no_answer(error, tenant_id) from error

    async def remove_federated_trust(self, tenant_id: str, app_object_id: str, trust_id: str) -> bool:
        info = RequestInformation(Method.DELETE, "{+baseurl}/applications/{id}/federatedIdentityCredentials/{fic}")
        info.path_parameters = {"id": app_object_id, "fic": trust_id}
        adapter = self.clients.client(tenant_id).request_adapter
        try:
            await adapter.send_no_response_content_async(info, {"XXX": ODataError})
        except ODataError as error:
            if error.response_status_code == 404:
                return False
            raise translate(error, "removing a federated credential", tenant_id) from error
        except httpx.HTTPError as error:
            raise no_answer(error, tenant_id) from error
        return True

    async def _ids_of_every_page(
        self, tenant_id: str, builder: Any, info: RequestInformation | None, doing: str
    ) -> list[str]:
        found: list[str] = []
        while info is not None:
            page = await self.clients.read(tenant_id, info, doing)
            if page is None:
                raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
            found += [str(item["id"]) for item in page.get("value", [])]
            next_link = page.get("@odata.nextLink")
            info = builder.with_url(next_link).to_get_request_information() if next_link else None
        return found

    async def caller_object_id(self, tenant_id: str) -> str:
        """This service's own object id in the tenant: the `oid` of the token it calls Graph with
        (https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference). The token
        is the one the Graph client uses anyway, so this costs no request while it is cached."""
        credential = GraphToken(self._identity.management_credential(tenant_id), tenant_id)  # refusals translated
        token = await credential.get_token(self._settings.graph_scope)
        oid = token_claims(token.token).get("oid")
        if not isinstance(oid, str) or not oid:
            raise UpstreamError("Entra returned a token without an object id", "entra", 200, None, tenantId=tenant_id)
        return oid

    # --- writes ---
    async def update_application(self, tenant_id: str, app_object_id: str, spec: ApplicationSpec) -> None:
        """Converge an existing app, proven this service's, to the spec (PATCH by object id)."""
        try:
            await (
                self.clients.client(tenant_id)
                .applications.by_application_id(app_object_id)
                .patch(application_body(spec))
            )
        except ODataError as error:
            if error.response_status_code == 404:
                raise NotReplicatedYet("the app registration", error_code(error)) from error
            raise translate(error, "updating the app registration", tenant_id) from error
        except httpx.HTTPError as error:
            raise no_answer(error, tenant_id) from error

    async def upsert_application(
        self, tenant_id: str, unique_name: str, spec: ApplicationSpec
    ) -> tuple[AppRegistration, bool]:
        try:
            builder = app_by_unique_name(self.clients.client(tenant_id), unique_name)
            info = builder.to_patch_request_information(
                application_body(spec), request_configuration=create_if_missing()
            )
            created = await self.clients.send_for_json(tenant_id, info)
        except ODataError as error:
            if error.response_status_code == 403:
                raise NotOwned(
                    "An app with this unique name exists in the tenant and this service may not change it.",
                    tenantId=tenant_id,
                    uniqueName=unique_name,
                    upstream_request_ids=log_failure(error, "creating or updating the app registration", tenant_id),
                ) from error
            if error.response_status_code in (400, 409):
                # A deleted app keeps its uniqueName in deleted items for 30 days. What Entra answers then
                # is not documented, so the name is looked up there instead of trusting a status or code.
                await self._raise_if_held_by_deleted(tenant_id, unique_name)
            raise translate(error, "creating or updating the app registration", tenant_id) from error
        except httpx.HTTPError as error:
            raise no_answer(error, tenant_id) from error
        if created is not None:
            return registration(created), True
        # 204: it existed and now matches the spec; read it back (may lag right after creation).
        found = await self.find_application(tenant_id, unique_name)
        if found is None:
            # Or the upsert met the deleted app that holds the name, which a read does not show.
            await self._raise_if_held_by_deleted(tenant_id, unique_name)
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        return found, False

    async def _raise_if_held_by_deleted(self, tenant_id: str, unique_name: str) -> None:
        deleted = await self.find_deleted_application(tenant_id, unique_name)
        if deleted is not None:
            raise NameHeldByDeletedApplication(deleted)

    async def upsert_service_principal(
        self, tenant_id: str, app_id: str, *, app_is_new: bool = False
    ) -> tuple[str, bool]:
        """The app's service principal, created only when missing: (its object id, created now).

        An existing one is read, never written: a PATCH of it would need its ownership, which an
        Application.ReadWrite.OwnedBy caller is not documented to get by creating it (Terraform's
        azuread provider: a new service principal has no owners unless given), and nothing about it
        needs changing. For an app this call created there is nothing to read, so it goes straight to
        the create-if-missing upsert, whose 204 (someone else created it meanwhile) is then read back.
        """
        if not app_is_new:
            found = await self.find_service_principal(tenant_id, app_id)
            if found is not None:
                return found, False
        try:
            builder = sp_by_app_id(self.clients.client(tenant_id), app_id)
            info = builder.to_patch_request_information(
                ServicePrincipal(account_enabled=True), request_configuration=create_if_missing()
            )
            created = await self.clients.send_for_json(tenant_id, info)
        except ODataError as error:
            message = error_message(error)
            if (
                NO_BACKING_APP in message
                or NOT_IN_LOCAL_TENANT in message
                or has_detail(error, "NoBackingApplicationObject")
            ):
                raise NotReplicatedYet("the app registration", "NoBackingApplicationObject") from error
            if error.response_status_code in PRINCIPAL_EXISTS_STATUSES and not app_is_new:
                # The read found none, the upsert met one: a principal still replicating to reads (a rerun
                # after a 202), which the upsert then tried to update. Graph's answer to that update by a
                # caller that does not own the principal is undocumented (403 in the stand-in, 409 as
                # plausible): read again, and call it replication while the read still lags. Logged with
                # Graph's request ids, so a refusal that lasts (the PUT answering 202 on) can be traced.
                log_failure(error, "creating the service principal (it may exist and still replicate)", tenant_id)
                found = await self.find_service_principal(tenant_id, app_id)
                if found is not None:
                    return found, False
                raise NotReplicatedYet("the service principal", error_code(error)) from error
            raise translate(error, "creating the service principal", tenant_id) from error
        except httpx.HTTPError as error:
            raise no_answer(error, tenant_id) from error
        if created is not None:
            return str(created["id"]), True
        found = await self.find_service_principal(tenant_id, app_id)
        if found is None:
            raise NotReplicatedYet("the service principal", "Request_ResourceNotFound")
        return found, False

    async def grant(self, tenant_id: str, principal_id: str, roles: list[tuple[str, str]]) -> GrantResult:
        """Admin consent for application permissions, up to 20 grants per round trip ($batch).

        Graph's batch answers each grant on its own: 201 granted, 400 "already exists" (a rerun),
        404 or 400 "Not a valid reference update." while the new service principal replicates,
        429/5xx when throttled. The last two are reported as pending for the caller to retry.
        No Microsoft page shows the "already exists" text, so any other 400 is settled by reading
        the principal's grants back: present means granted, absent is Graph's refusal.
        """
        granted: list[str] = []
        pending: list[str] = []
        # (resource, role, status, code, Graph's ids of the refusal)
        unsettled: list[tuple[str, str, int, str | None, dict[str, str]]] = []
        retry_after: float | None = None
        for start in range(0, len(roles), BATCH_LIMIT):
            chunk = roles[start : start + BATCH_LIMIT]
            requests = [
                {
                    "id": str(index),
                    "method": "POST",
                    # Relative to the version root: Graph refuses absolute URLs in a batch.
                    "url": f"/servicePrincipals/{resource_id}/appRoleAssignedTo",
                    "headers": {"Content-Type": "application/json"},
                    "body": {"principalId": principal_id, "resourceId": resource_id, "appRoleId": role_id},
                }
                for index, (resource_id, role_id) in enumerate(chunk)
            ]
            responses = await self._batch(tenant_id, requests)
            for index, (resource_id, role_id) in enumerate(chunk):
                item = responses.get(str(index), {})
                status = int(item.get("status", 0))
                error = (item.get("body") or {}).get("error") or {}
                message = str(error.get("message") or "")
                replicating = status == 404 or (status == 400 and NOT_A_VALID_REFERENCE in message)
                if status == 201 or (status == 400 and message == ALREADY_GRANTED):
                    granted.append(role_id)
                elif replicating or status == 429 or status >= 500:
                    pending.append(role_id)
                    hint = retry_after_header(item.get("headers") or {})
                    if hint is None and not replicating:
                        # Throttled or failed without saying how long: not at the pace of a replication poll.
                        hint = THROTTLED_WITHOUT_RETRY_AFTER_SECONDS
                    if hint is not None:
                        retry_after = max(retry_after or 0.0, hint)
                else:
                    unsettled.append((resource_id, role_id, status, error.get("code"), item_ids(item)))
        if unsettled:
            held = {(a.resource_object_id, a.app_role_id) for a in await self.assignments(tenant_id, principal_id)}
            for resource_id, role_id, status, code, ids in unsettled:
                if (resource_id, role_id) not in held:
                    logger.info(
                        "Graph answered %s %s to a grant of app role %s in tenant %s (%s)",
                        status, code, role_id, tenant_id, request_ids_text(ids),
                    )  # fmt: skip
                    raise UpstreamError(
                        "Graph refused to grant a permission", "graph", status, code,
                        tenantId=tenant_id, appRoleId=role_id, upstream_request_ids=ids,
                    )  # fmt: skip
                granted.append(role_id)
        return GrantResult(tuple(granted), tuple(pending), retry_after)

    async def revoke(self, tenant_id: str, resource_object_id: str, assignment_id: str) -> bool:
        """DELETE /servicePrincipals/{resource}/appRoleAssignedTo/{id}; False if it was already gone
        (https://learn.microsoft.com/graph/api/serviceprincipal-delete-approleassignedto)."""
        try:
            await (
                self.clients.client(tenant_id)
                .service_principals.by_service_principal_id(resource_object_id)
                .app_role_assigned_to.by_app_role_assignment_id(assignment_id)
                .delete()
            )
        except ODataError as error:
            if error.response_status_code == 404:
                return False
            raise translate(error, "revoking a permission", tenant_id) from error
        except httpx.HTTPError as error:
            raise no_answer(error, tenant_id) from error
        return True

    async def _batch(self, tenant_id: str, requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """POST /$batch through the SDK's adapter (auth, retries), reading item bodies ourselves:
        msgraph-core's batch response model drops JSON bodies, which carry the error messages."""
        info = RequestInformation(Method.POST, "{+baseurl}/$batch")
        info.headers.try_add("Accept", "application/json")
        info.set_stream_content(json.dumps({"requests": requests}).encode(), "application/json")
        adapter = self.clients.client(tenant_id).request_adapter
        try:
            raw = await adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
        except ODataError as error:
            raise translate(error, "granting permissions", tenant_id) from error
        except httpx.HTTPError as error:
            raise no_answer(error, tenant_id) from error
        payload = json.loads(raw or b"{}")
        return {str(item.get("id")): item for item in payload.get("responses", [])}

    async def add_password(self, tenant_id: str, app_object_id: str, display_name: str, end: datetime) -> NewPassword:
        body = AddPasswordPostRequestBody(
            password_credential=PasswordCredential(display_name=display_name, end_date_time=end)
        )
        try:
            credential = (
                await self.clients.client(tenant_id)
                .applications.by_application_id(app_object_id)
                .add_password.post(body, request_configuration=no_sdk_retry())
            )
        except ODataError as error:
            # Chained like every other failure: only a 201 carries the secret's text, and a 201 raises nothing.
            status, code = error.response_status_code, error_code(error)
            if status == 404:
                raise NotReplicatedYet("the app registration", code) from error
            if status == 429:
                log_failure(error, "creating a client secret", tenant_id)
                raise Throttled("graph", retry_after(error), code) from error  # refused, so not minted
            if code == "CredentialTypeNotAllowedAsPerAppPolicy":
                raise SecretsForbiddenByPolicy(
                    "The tenant's app management policy does not allow client secrets.", tenantId=tenant_id,
                    upstream_request_ids=log_failure(error, "creating a client secret", tenant_id),
                ) from error  # fmt: skip
            if code == "CredentialInvalidLifetimeAsPerAppPolicy":
                raise SecretLifetimeExceedsPolicy(
                    "The tenant's app management policy refused the secret's lifetime; ask for fewer days.",
                    tenantId=tenant_id,
                    upstream_request_ids=log_failure(error, "creating a client secret", tenant_id),
                ) from error
            if status is not None and status >= 500:
                ids = log_failure(error, "creating a client secret", tenant_id)
                raise PasswordOutcomeUnknown(f"addPassword answered {status} ({request_ids_text(ids)})") from error
            raise translate(error, "creating a client secret", tenant_id) from error
        except httpx.HTTPError as error:
            # The exception names the transport's failure (its type and the protocol's complaint), never a body.
            ids = sent_ids(error)
            logger.info(
                "Graph did not answer while creating a client secret in tenant %s: %s (%s)",
                tenant_id, type(error).__name__, request_ids_text(ids),
            )  # fmt: skip
            raise PasswordOutcomeUnknown(f"{type(error).__name__} ({request_ids_text(ids)})") from error
        assert credential is not None and credential.secret_text and credential.key_id
        return NewPassword(password_info(credential), Secret(credential.secret_text))

    async def remove_password(self, tenant_id: str, app_object_id: str, key_id: str) -> bool:
        try:
            await (
                self.clients.client(tenant_id)
                .applications.by_application_id(app_object_id)
                .remove_password.post(RemovePasswordPostRequestBody(key_id=key_id))
            )
        except ODataError as error:
            if error.response_status_code in (400, 404):
                return False  # already gone (or the app is): removal is done either way
            raise translate(error, "removing a client secret", tenant_id) from error
        except httpx.HTTPError as error:
            raise no_answer(error, tenant_id) from error
        return True

    # --- certificates (keyCredentials) ---
    async def add_key(self, tenant_id: str, app_object_id: str, key: NewKey) -> KeyInfo:
        """PATCH the app's keyCredentials with this certificate added.

        Graph's PATCH replaces the whole collection, so the app's certificates are read first, with their
        key bytes (which Graph returns only for `$select=keyCredentials` on one object), and sent back
        whole. `addKey` cannot add an app's first certificate and needs a proof signed by one already on it
        (https://learn.microsoft.com/graph/api/application-addkey); an owner may PATCH any of them
        (https://learn.microsoft.com/graph/applications-how-to-add-certificate). The registration's lock
        keeps this read-modify-write to one writer."""
        current = await self._key_credentials(tenant_id, app_object_id)
        existing = next((k for k in current if str(k.get("keyId")) == key.key_id), None)
        if existing is not None:
            return key_info(existing)
        certificate = key.certificate
        wanted = {
            "keyId": key.key_id,
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "displayName": key.display_name,
            "key": base64.b64encode(certificate.der).decode(),
            "startDateTime": certificate.not_before.strftime(GRAPH_TIME),
            "endDateTime": certificate.not_after.strftime(GRAPH_TIME),
        }
        await self._patch_keys(tenant_id, app_object_id, [*current, wanted], "adding a certificate")
        return key_info(
            wanted | {"customKeyIdentifier": base64.b64encode(bytes.fromhex(certificate.thumbprint_sha1)).decode()}
        )

    async def remove_key(self, tenant_id: str, app_object_id: str, key_id: str) -> bool:
        current = await self._key_credentials(tenant_id, app_object_id)
        remaining = [k for k in current if str(k.get("keyId")) != key_id]
        if len(remaining) == len(current):
            return False
        await self._patch_keys(tenant_id, app_object_id, remaining, "removing a certificate")
        return True

    async def _key_credentials(self, tenant_id: str, app_object_id: str) -> list[dict[str, Any]]:
        info = RequestInformation(Method.GET, "{+baseurl}/applications/{id}{?%24select}")
        info.path_parameters = {"id": app_object_id}
        info.query_parameters = {"%24select": "keyCredentials"}
        app = await self.clients.read(tenant_id, info, "reading the app's certificates")
        if app is None:
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        keys: list[dict[str, Any]] = app.get("keyCredentials") or []
        return keys

    async def _patch_keys(self, tenant_id: str, app_object_id: str, keys: list[dict[str, Any]], doing: str) -> None:
        # Only the fields a client may write (Graph computes customKeyIdentifier from the certificate).
        writable = ("keyId", "type", "usage", "displayName", "key", "startDateTime", "endDateTime")
        body = {"keyCredentials": [{f: k[f] for f in writable if k.get(f) is not None} for k in keys]}
        info = RequestInformation(Method.PATCH, "{+baseurl}/applications/{id}")
        info.path_parameters = {"id": app_object_id}
        info.set_stream_content(json.dumps(body).encode(), "application/json")
        adapter = self.clients.client(tenant_id).request_adapter
        try:
            await adapter.send_no_response_content_async(info, {"XXX": ODataError})
        except ODataError as error:
            code = error_code(error)
            if error.response_status_code == 404:
                raise NotReplicatedYet("the app registration", code) from error
            if code in ("CredentialInvalidLifetimeAsPerAppPolicy", "CredentialTypeNotAllowedAsPerAppPolicy"):
                raise CertificatesRefusedByPolicy(
                    "The tenant's app management policy refused the certificate.", tenantId=tenant_id,
                    upstreamCode=code, upstream_request_ids=log_failure(error, doing, tenant_id),
                ) from error  # fmt: skip
            raise translate(error, doing, tenant_id) from error
        except httpx.HTTPError as error:
            raise no_answer(error, tenant_id) from error

    async def delete_application(self, tenant_id: str, app_object_id: str) -> bool:
        try:
            await self.clients.client(tenant_id).applications.by_application_id(app_object_id).delete()
        except ODataError as error:
            if error.response_status_code == 404:
                return False
            raise translate(error, "deleting the app registration", tenant_id) from error
        except httpx.HTTPError as error:
            raise no_answer(error, tenant_id) from error
        return True

    async def find_deleted_application(self, tenant_id: str, unique_name: str) -> str | None:
        """The deleted app holding `unique_name`, by a $filter on it, or by paging deleted items.

        Graph's application page does not list uniqueName among the properties $filter supports, so
        a 400 to the filter falls back to reading deleted applications ($select=id,uniqueName, 999 a
        page) and matching here. Deleted items hold an app for 30 days only, so the list stays short.
        """
        builder = self.clients.client(tenant_id).directory.deleted_items.graph_application
        quoted = unique_name.replace("'", "''")
        query = GraphApplicationRequestBuilder.GraphApplicationRequestBuilderGetQueryParameters(
            filter=f"uniqueName eq '{quoted}'", select=["id", "uniqueName"]
        )
        try:
            page = await self.clients.read(
                tenant_id,
                builder.to_get_request_information(RequestConfiguration(query_parameters=query)),
                "reading deleted items",
            )
        except UpstreamError as error:
            if error.upstream_status != 400:
                raise
            page = None
            listing = GraphApplicationRequestBuilder.GraphApplicationRequestBuilderGetQueryParameters(
                select=["id", "uniqueName"], top=999
            )
            info: RequestInformation | None = builder.to_get_request_information(
                RequestConfiguration(query_parameters=listing)
            )
            while info is not None:
                listed = await self.clients.read(tenant_id, info, "reading deleted items") or {}
                match = holding(listed.get("value") or [], unique_name)
                if match is not None:
                    return match
                next_link = listed.get("@odata.nextLink")
                info = builder.with_url(next_link).to_get_request_information() if next_link else None
            return None
        return holding((page or {}).get("value") or [], unique_name)

    async def purge_deleted_application(self, tenant_id: str, app_object_id: str) -> bool:
        try:
            await self.clients.client(tenant_id).directory.deleted_items.by_directory_object_id(app_object_id).delete()
        except ODataError as error:
            if error.response_status_code == 404:
                return False
            raise translate(error, "permanently deleting the app registration", tenant_id) from error
        except httpx.HTTPError as error:
            raise no_answer(error, tenant_id) from error
        return True

    async def close(self) -> None:
        await self.clients.close()
