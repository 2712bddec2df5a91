"""Entra ID's token side: OpenID discovery, signing keys, the v2.0 token endpoint, managed identity.

The token endpoint implements the client-credentials grant with a client secret and with a
client assertion (workload identity federation). Error codes, statuses and `error` values
are Entra's; each is cited where it is not obvious. Roles in a token are the app role
assignments that Graph shows for the client's service principal in the target tenant, so a
token proves what consent really granted.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .clock import parse_iso
from .errors import ServiceError, entra_error
from .graph.key_credentials import certificates_of, find_by_thumbprint, verify_signature
from .state import JsonObject, Tenant, World, secret_matches
from .tokens import LEEWAY_SECONDS, TokenError, TokenService

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
IDENTITY_API_VERSION = "2019-08-01"


def granted_roles(world: World, tenant: Tenant, principal_id: str, resource_sp: JsonObject) -> list[str]:
    """App role values assigned to a principal on a resource, as Entra puts them in `roles`.

    Assignments still replicating are not yet in tokens: a fresh grant shows up a little later.
    """
    role_values = {r["id"]: r["value"] for r in resource_sp.get("appRoles", [])}
    return sorted(
        {
            role_values[a["appRoleId"]]
            for a in tenant.assignments_of(principal_id)
            if a["resourceId"] == resource_sp["id"]
            and a["appRoleId"] in role_values
            and world.replication.visible(a["id"])
        }
    )


def resource_of_scope(scope: str) -> str:
    return scope[: -len("/.default")].rstrip("/")


class EntraService:
    def __init__(self, world: World, tokens: TokenService, public_base: str, identity_header: str) -> None:
        self.world = world
        self.tokens = tokens
        self.public_base = public_base
        self.identity_header = identity_header

    def routes(self) -> list[Route]:
        return [
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration),
            Route("/{tenant}/discovery/v2.0/keys", self.signing_keys),
            Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"]),
        ]

    def identity_routes(self) -> list[Route]:
        return [Route("/msi/token", self.managed_identity_token)]

    # --- discovery ---
    def _tenant_or_error(self, tenant_ref: str) -> Tenant:
        tenant = self.world.tenant(tenant_ref)
        if tenant is None:
            raise entra_error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant_ref}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
        return tenant

    async def openid_configuration(self, request: Request) -> JSONResponse:
        tenant = self._tenant_or_error(request.path_params["tenant"])
        base = f"{self.public_base}/{tenant.id}"
        return JSONResponse(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": self.tokens.posture.v2_issuer_of(tenant.id),
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
                "cloud_instance_name": self.tokens.posture.cloud_instance_name,
            }
        )

    async def signing_keys(self, request: Request) -> JSONResponse:
        self._tenant_or_error(request.path_params["tenant"])
        return JSONResponse(self.tokens.jwks())

    # --- client credentials ---
    async def token(self, request: Request) -> JSONResponse:
        tenant = self._tenant_or_error(request.path_params["tenant"])
        params = await _form(request)
        grant_type = params.get("grant_type")
        if not grant_type:
            raise _missing_parameter("grant_type")
        if grant_type != "client_credentials":
            raise entra_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            )
        client_id = params.get("client_id", "")
        if not client_id:
            raise _missing_parameter("client_id")
        scope = params.get("scope", "")
        if not scope:
            raise _missing_parameter("scope")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            # Client credentials accept exactly one resource's /.default scope.
            raise entra_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have "
                "a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )

        application, home = self._find_application(client_id)
        client_sp = tenant.service_principal_by_app_id(client_id)
        if application is None or (client_sp is None and home is not tenant and not _multi_tenant(application)):
            raise entra_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.display_name}'. This can happen if the application has not been installed by "
                "the administrator of the tenant or consented to by any user in the tenant. You may have "
                "sent your authentication request to the wrong tenant.",
            )
        assert home is not None
        self._authenticate_client(params, application, home, self._token_endpoints(request, tenant))

        if client_sp is None or not self.world.replication.visible(client_sp["id"]):
            # The app is real but has no service principal here: nobody consented to it in this tenant.
            raise entra_error(
                401,
                "invalid_client",
                7000229,
                f"The client application {client_id} is missing service principal in the tenant "
                f"{tenant.id}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
            )
        resource = resource_of_scope(scopes[0])
        resource_sp = tenant.service_principal_for_resource(resource)
        if resource_sp is None:
            raise _resource_not_found(resource, tenant)
        roles = granted_roles(self.world, tenant, client_sp["id"], resource_sp)
        access_token, expires = self.tokens.issue(
            tenant_id=tenant.id,
            audience=resource,
            object_id=client_sp["id"],
            app_id=client_id,
            roles=roles,
            display_name=client_sp.get("displayName", ""),
            directory_roles=tenant.directory_roles.get(client_sp["id"]),
        )
        lifetime = expires - _now_s()
        return JSONResponse(
            {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access_token}
        )

    def _find_application(self, app_id: str) -> tuple[JsonObject | None, Tenant | None]:
        for tenant in self.world.tenants.values():
            application = tenant.application_by_app_id(app_id)
            if application is not None and self.world.replication.visible(application["id"]):
                return application, tenant
        return None, None

    def _token_endpoints(self, request: Request, tenant: Tenant) -> set[str]:
        """The `aud` values a certificate assertion may carry: this token endpoint, under the tenant id or the
        name the request used, at the stand-in's address or Entra's (certificate-credentials page: `aud` is
        https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/token)."""
        refs = {tenant.id, request.path_params["tenant"], tenant.default_domain}
        bases = {self.public_base.rstrip("/"), *self.tokens.posture.login_hosts}
        return {f"{base}/{ref}/oauth2/v2.0/token" for base in bases for ref in refs}

    def _authenticate_client(
        self, params: dict[str, str], application: JsonObject, home: Tenant, token_endpoints: set[str]
    ) -> None:
        secret = params.get("client_secret")
        assertion = params.get("client_assertion")
        if secret and assertion:
            raise entra_error(
                401,
                "invalid_request",
                90014,
                "Only one of client_secret or client_assertion may be presented.",
            )
        if secret:
            self._check_secret(secret, application, home)
        elif assertion:
            if params.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
                raise _missing_parameter("client_assertion_type")
            self._check_assertion(assertion, application, home, token_endpoints)
        else:
            raise entra_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )

    def _check_secret(self, secret: str, application: JsonObject, home: Tenant) -> None:
        app_id = application["appId"]
        now = self.world.clock.now()
        for credential in application.get("passwordCredentials", []):
            stored = home.password_hashes.get(credential["keyId"])
            if stored is None or not secret_matches(secret, stored):
                continue
            if not self.world.replication.visible(credential["keyId"]):
                break  # not replicated to the token service yet: Entra says "invalid", not "wait"
            if parse_iso(credential["endDateTime"]) <= now:
                raise entra_error(
                    401,
                    "invalid_client",
                    7000222,
                    f"The provided client secret keys for app '{app_id}' are expired. Visit the Azure portal "
                    f"to create new keys for your app: https://aka.ms/NewClientSecret, or consider using "
                    f"certificate credentials for added security: https://aka.ms/certCreds.",
                )
            if parse_iso(credential["startDateTime"]) > now:
                break
            return
        raise entra_error(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client "
            f"secret value, not the client secret ID, for a secret added to app '{app_id}'.",
        )

    def _check_assertion(
        self, assertion: str, application: JsonObject, home: Tenant, token_endpoints: set[str]
    ) -> None:
        """Tell the two kinds of client assertion apart as Entra does, by who issued them.

        A certificate assertion is issued by the app itself (`iss` = `sub` = the client id, a certificate
        thumbprint in its header: certificate-credentials page); a federated one by an identity provider
        whose issuer URL a federated identity credential names (workload identity federation)."""
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise _malformed_assertion() from exc
        issuer = str(unverified.get("iss") or "")
        if issuer.startswith(("https://", "http://")):
            self._check_federated_assertion(assertion, application, home)
        else:
            self._check_certificate_assertion(assertion, header, unverified, application, home, token_endpoints)

    def _check_certificate_assertion(
        self,
        assertion: str,
        header: dict[str, Any],
        unverified: dict[str, Any],
        application: JsonObject,
        home: Tenant,
        token_endpoints: set[str],
    ) -> None:
        """A JWT the application signed with one of its certificates (emulator/FIDELITY.md, E-C rows)."""
        app_id = application["appId"]
        if unverified.get("iss") != unverified.get("sub"):
            raise entra_error(400, "invalid_request", 50048, "Subject mismatches Issuer claim in the client assertion.")
        if unverified.get("iss") != app_id:
            raise entra_error(
                400,
                "invalid_request",
                50027,
                f"JWT token is invalid: unexpected issuer '{unverified.get('iss')}'; expected the client id.",
            )
        thumbprint = header.get("x5t#S256") or header.get("x5t")
        shown = _thumbprint_hex(header)
        certificate = find_by_thumbprint(certificates_of(home, application), header) if thumbprint else None
        if certificate is None or not self.world.replication.visible(certificate.key_id):
            # A key not on the app, removed, or not yet replicated to the token service.
            raise entra_error(
                401,
                "invalid_client",
                700027,
                "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of "
                f"key used by client: '{shown}', Please visit the Azure Portal, Graph Explorer or directly use MS "
                f"Graph to see configured keys for app Id '{app_id}'.]",
            )
        now = self.world.clock.now()
        start = parse_iso(certificate.credential["startDateTime"])
        end = parse_iso(certificate.credential["endDateTime"])
        if not start <= now < end:
            reason = "The key used is expired." if now >= end else "The key used is not yet valid."
            raise entra_error(
                401,
                "invalid_client",
                700027,
                f"Client assertion contains an invalid signature. [Reason - {reason} Thumbprint of key used by "
                f"client: '{shown}', Found key 'Start={_entra_date(start)}, End={_entra_date(end)}']",
            )
        try:
            claims = verify_signature(assertion, certificate.certificate, ["RS256", "PS256"])
        except jwt.PyJWTError as exc:
            raise entra_error(401, "invalid_client", 700027, "Client assertion failed signature validation.") from exc
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if not any(a in token_endpoints for a in audiences):
            raise entra_error(
                400,
                "invalid_request",
                50027,
                f"JWT token is invalid: unexpected audience '{claims.get('aud')}'; expected the token endpoint.",
            )
        moment = time.time()  # the client dates its assertion by the real clock (emulator/clock.py)
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if not isinstance(exp, int | float):
            raise _malformed_assertion()
        if exp + LEEWAY_SECONDS <= moment or (isinstance(nbf, int | float) and nbf - LEEWAY_SECONDS > moment):
            raise entra_error(
                401,
                "invalid_client",
                700024,
                f"Client assertion is not within its valid time range. Current time: {_entra_time(moment)}, "
                f"assertion valid from {_entra_time(nbf)}, expiry time of assertion {_entra_time(exp)}.",
            )
        if not claims.get("jti"):
            raise entra_error(400, "invalid_request", 50027, "JWT token is invalid: it doesn't contain the jti claim.")

    def _check_federated_assertion(self, assertion: str, application: JsonObject, home: Tenant) -> None:
        try:
            claims = self.tokens.decode_unverified_assertion(assertion)
        except jwt.ExpiredSignatureError as exc:
            raise entra_error(
                401,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            ) from exc
        except jwt.PyJWTError as exc:
            raise _malformed_assertion() from exc
        entra_tenant = _entra_issuer_tenant(claims["iss"])
        if entra_tenant is not None and entra_tenant != home.id:
            # "Both the Microsoft Entra app and managed identity must belong to the same tenant"
            # (workload-identity-federation-config-app-trust-managed-identity); Entra's answer, recorded by
            # third parties, is AADSTS700236. Status 401 invalid_client is assumed (emulator/FIDELITY.md E-C8).
            raise entra_error(
                401,
                "invalid_client",
                700236,
                f"Entra ID tokens issued by issuer '{claims['iss']}' may not be used for federated identity "
                "credential flows for applications or managed identities registered in this tenant.",
            )
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        for credential in home.federated_credentials.get(application["id"], {}).values():
            if (
                credential["issuer"] == claims["iss"]
                and credential["subject"] == claims["sub"]
                and any(a in credential.get("audiences", []) for a in audiences)
            ):
                return
        # 400 invalid_request, as captured in Azure/azure-workload-identity#616.
        raise entra_error(
            400,
            "invalid_request",
            70021,
            f"No matching federated identity record found for presented assertion. Assertion Issuer: "
            f"'{claims['iss']}'. Assertion Subject: '{claims['sub']}'. Assertion Audience: "
            f"'{','.join(audiences)}'. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
        )

    # --- managed identity (App Service protocol) ---
    async def managed_identity_token(self, request: Request) -> JSONResponse:
        header = request.headers.get("x-identity-header")
        if header != self.identity_header:
            # App Service answers a missing or wrong X-IDENTITY-HEADER with 401 and no token.
            return _identity_failure(401, "Unauthorized request: invalid or missing X-IDENTITY-HEADER.")
        query = request.query_params
        if query.get("api-version") != IDENTITY_API_VERSION:
            return _identity_failure(400, f"api-version must be {IDENTITY_API_VERSION}.")
        resource = (query.get("resource") or "").removesuffix("/.default").rstrip("/")
        if not resource:
            return _identity_failure(400, "The resource parameter is required.")
        client_id = query.get("client_id") or self.world.default_managed_identity
        if client_id is None or client_id not in self.world.managed_identities:
            return _identity_failure(400, "No MSI found for specified ClientId/ResourceId.")
        tenant_id, object_id = self.world.managed_identities[client_id]
        tenant = self.world.tenants[tenant_id]
        roles: list[str] = []
        if resource != self.tokens.posture.federation_audience:
            resource_sp = tenant.service_principal_for_resource(resource)
            if resource_sp is None:
                return _identity_failure(400, f"The resource principal named {resource} was not found in the tenant.")
            roles = granted_roles(self.world, tenant, object_id, resource_sp)
        identity_sp = tenant.service_principals[object_id]
        access_token, expires = self.tokens.issue(
            tenant_id=tenant_id,
            audience=resource,
            object_id=object_id,
            app_id=client_id,
            roles=roles,
            display_name=identity_sp.get("displayName", ""),
        )
        return JSONResponse(
            {
                "access_token": access_token,
                "expires_on": str(expires),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id,
            }
        )


async def _form(request: Request) -> dict[str, str]:
    """The token request's application/x-www-form-urlencoded body (OAuth 2.0 says nothing else)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise entra_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        )
    try:
        return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True, strict_parsing=False))
    except (UnicodeDecodeError, ValueError) as exc:
        raise entra_error(400, "invalid_request", 90014, "The request body is malformed.") from exc


def _identity_failure(status: int, message: str) -> JSONResponse:
    body = {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}
    return JSONResponse(body, status_code=status)


def _multi_tenant(application: JsonObject) -> bool:
    return application.get("signInAudience") in ("AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount")


def _missing_parameter(name: str) -> ServiceError:
    return entra_error(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def _resource_not_found(resource: str, tenant: Tenant) -> ServiceError:
    return entra_error(
        400,
        "invalid_resource",
        500011,
        f"The resource principal named {resource} was not found in the tenant named {tenant.display_name}. "
        "This can happen if the application has not been installed by the administrator of the tenant or "
        "consented to by any user in the tenant. You might have sent your authentication request to the "
        "wrong tenant.",
    )


def _malformed_assertion() -> ServiceError:
    return entra_error(400, "invalid_request", 50027, "JWT token is invalid or malformed.")


ENTRA_ISSUER = re.compile(
    r"^https://(?:login\.microsoftonline\.com/(?P<v2>[0-9a-fA-F-]{36})/v2\.0|sts\.windows\.net/(?P<v1>[0-9a-fA-F-]{36})/)$"
)


def _entra_issuer_tenant(issuer: str) -> str | None:
    """The tenant an Entra-issued token comes from (v1 or v2 issuer), or None for any other issuer."""
    m = ENTRA_ISSUER.match(issuer)
    return (m.group("v2") or m.group("v1")).lower() if m else None


def _thumbprint_hex(header: dict[str, Any]) -> str:
    """The thumbprint as Entra prints it: uppercase hex of the header's x5t#S256 or x5t."""
    value = header.get("x5t#S256") or header.get("x5t") or ""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex().upper()
    except ValueError:
        return str(value)


def _entra_date(moment: datetime) -> str:
    """The key dates in Entra's 700027 text: 'Start=06/29/2021 21:13:15' (Azure Stack HCI troubleshooting docs)."""
    return moment.astimezone(UTC).strftime("%m/%d/%Y %H:%M:%S")


def _entra_time(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "unknown"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _now_s() -> int:
    return int(time.time())


def summarize_token_error(error: TokenError) -> dict[str, Any]:
    return {"reason": error.reason, "kind": error.kind}
