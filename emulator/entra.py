"""Entra ID's token side: OpenID discovery, signing keys, the v2.0 token endpoint, managed identity.

The token endpoint implements the client-credentials grant with a client secret and with a
client assertion (workload identity federation). Error codes, statuses and `error` values
are Entra's; each is cited where it is not obvious. Roles in a token are the app role
assignments that Graph shows for the client's service principal in the target tenant, so a
token proves what consent really granted.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .clock import parse_iso
from .errors import ServiceError, entra_error
from .state import JsonObject, Tenant, World, secret_matches
from .tokens import TOKEN_EXCHANGE_AUDIENCE, TokenError, TokenService

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
                "issuer": f"https://login.microsoftonline.com/{tenant.id}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
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
        self._authenticate_client(params, application, home)

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

    def _authenticate_client(self, params: dict[str, str], application: JsonObject, home: Tenant) -> None:
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
            self._check_assertion(assertion, application, home)
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

    def _check_assertion(self, assertion: str, application: JsonObject, home: Tenant) -> None:
        try:
            claims = self.tokens.decode_unverified_assertion(assertion)
        except Exception as exc:
            import jwt

            if isinstance(exc, jwt.ExpiredSignatureError):
                raise entra_error(
                    401,
                    "invalid_client",
                    700024,
                    "Client assertion is not within its valid time range.",
                ) from exc
            raise entra_error(
                400,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed.",
            ) from exc
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
        if resource != TOKEN_EXCHANGE_AUDIENCE:
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


def _now_s() -> int:
    return int(time.time())


def summarize_token_error(error: TokenError) -> dict[str, Any]:
    return {"reason": error.reason, "kind": error.kind}
