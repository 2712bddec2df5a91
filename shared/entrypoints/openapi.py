"""The OpenAPI 3.1 description of the HTTP API; a test keeps it equal to the registered routes."""

from __future__ import annotations

from typing import Any

from shared.domain.errors import PROBLEM_BASE
from shared.domain.registry import INTEGRATION_ID

GUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
PROFILE_PATTERN = INTEGRATION_ID.pattern


RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before repeating the request.", "schema": {"type": "integer"}}
}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _json(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if headers:
        response["headers"] = headers
    return response


PATH_PARAMETERS = [
    {"name": "tenantId", "in": "path", "required": True, "description": "The customer's directory (tenant) id.",
     "schema": {"type": "string", "pattern": GUID_PATTERN}},
    {"name": "integration", "in": "path", "required": True, "description": "A catalog integration id.",
     "schema": {"type": "string", "pattern": PROFILE_PATTERN}},
]  # fmt: skip

# Every problem type the API answers with, listed by hand so a new one is a reviewed change to this document
# (tests/unit/test_openapi_problems.py compares it with the errors the code can raise).
PROBLEM_TYPES = (
    "certificates-refused-by-policy", "consent-required", "internal", "invalid-request", "not-in-this-cloud",
    "payload-too-large", "permission-not-offered", "private-key-supplied",
    "registration-busy", "registration-not-found", "registration-not-owned", "resource-api-missing",
    "secret-lifetime-exceeds-policy", "secrets-forbidden-by-policy", "tenant-not-allowed", "tenant-not-found",
    "unique-name-held-by-deleted-app", "unknown-integration", "unsupported-media-type", "upstream-error",
    "upstream-timeout", "upstream-unavailable", "vendor-rotates-certificate", "workspace-access-missing",
    "workspace-not-found",
)  # fmt: skip

COMMON_ERRORS = {
    "400": _problem(
        "Invalid input; `field` names it (`not-in-this-cloud`: the integration or add-on exists in other clouds "
        "only). Nothing was created."
    ),
    "401": {"description": "Missing or wrong function key (answered by the Functions host)."},
    "403": _problem("The tenant may not be onboarded, or has not consented."),
    "404": _problem("Unknown integration, or nothing registered (GET)."),
    "409": _problem(
        "The tenant cannot satisfy the integration (missing resource API, policy), a deleted app this service "
        "may not purge holds its unique name, or another operation on this registration is in progress "
        "(`registration-busy`, with Retry-After).",
        RETRY_AFTER,
    ),
    "502": _problem("An Azure service returned an error; `upstreamCode` says which."),
    "503": _problem("An Azure service is throttling or unavailable; honour Retry-After.", RETRY_AFTER),
    "504": _problem("An Azure service did not answer in time."),
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tenant onboarding",
            "version": "1.0.0",
            "description": "Registers, consents, verifies and stores Entra ID app credentials for customer tenants. "
            "Secrets never leave Key Vault: responses carry Key Vault references.",
        },
        "servers": [{"url": "/api"}],
        "security": [{"functionKey": []}],
        "paths": {
            "/tenants/{tenantId}/integrations/{integration}": {
                "parameters": PATH_PARAMETERS,
                "put": {
                    "operationId": "onboardIntegration",
                    "summary": "Create or converge the integration's app registration (idempotent).",
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OnboardRequest"}}},
                    },
                    "responses": {
                        "200": _json("Already complete, or converged.", "OnboardResult"),
                        "201": _json("Registered now.", "OnboardResult", {"Location": {"schema": {"type": "string"}}}),
                        "202": _json(
                            "Progress made; Entra is still replicating. Repeat the same request after Retry-After.",
                            "OnboardResult",
                            {"Retry-After": {"schema": {"type": "integer"}}},
                        ),
                        "413": _problem("Body too large."),
                        "415": _problem("Body is not application/json."),
                        **COMMON_ERRORS,
                    },
                },
                "delete": {
                    "operationId": "offboardIntegration",
                    "summary": "Remove the app registration and soft-delete its secrets (idempotent).",
                    "parameters": [
                        {
                            "name": "purgeApplication",
                            "in": "query",
                            "schema": {"enum": ["true", "false"]},
                            "description": "Also delete the app permanently from deleted items.",
                        },
                        {
                            "name": "purgeSecrets",
                            "in": "query",
                            "schema": {"enum": ["true", "false"]},
                            "description": "Also purge the soft-deleted secrets (refused where purge protection is on).",
                        },
                    ],
                    "responses": {
                        "200": _json("What was removed; a repeat reports everything absent.", "Offboarding"),
                        **COMMON_ERRORS,
                    },
                },
                "get": {
                    "operationId": "getIntegration",
                    "summary": "The live state from Entra and Key Vault, including drift.",
                    "responses": {"200": _json("The registration's state.", "Registration"), **COMMON_ERRORS},
                },
            },
            "/tenants/{tenantId}/integrations/{integration}/rotate": {
                "parameters": PATH_PARAMETERS,
                "post": {
                    "operationId": "rotateNow",
                    "summary": "Rotate the client secret now (e.g. after a suspected leak).",
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RotateRequest"}}},
                    },
                    "responses": {
                        "200": _json("Rotated (and retired, if asked and allowed).", "RotationResult"),
                        "202": _json("Entra has not caught up; repeat after Retry-After.", "RotationResult"),
                        **COMMON_ERRORS,
                        "409": _problem(
                            "Another operation on this registration is in progress (`registration-busy`, with "
                            "Retry-After), or the tenant's policy forbids secrets.",
                            RETRY_AFTER,
                        ),
                    },
                },
            },
            "/tenants/{tenantId}/consent": {
                "parameters": [PATH_PARAMETERS[0]],
                "get": {
                    "operationId": "getConsent",
                    "summary": "Whether the provisioner app is consented in the tenant; the admin-consent URL if not.",
                    "responses": {"200": _json("Consent status.", "Consent"), **COMMON_ERRORS},
                },
            },
            "/registrations": {
                "get": {
                    "operationId": "listRegistrations",
                    "summary": "Every registration this service manages, from Key Vault's records alone (no secret "
                    "is read), a page at a time. A page reads a bounded part of Key Vault's listing, so a filtered "
                    "page may be empty and still carry a continuationToken: follow it until it is null.",
                    "parameters": [
                        {
                            "name": "state",
                            "in": "query",
                            "required": False,
                            "description": "Comma-separated states.",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "tenantId",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "format": "uuid"},
                        },
                        {
                            "name": "expiringBefore",
                            "in": "query",
                            "required": False,
                            "description": "ISO 8601 with its zone: rows whose credential expires before it.",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                        {
                            "name": "continuationToken",
                            "in": "query",
                            "required": False,
                            "description": "The previous page's continuationToken.",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _json("One page of the fleet.", "Fleet"),
                        "400": COMMON_ERRORS["400"],
                        "401": COMMON_ERRORS["401"],
                    },
                }
            },
            "/integrations": {
                "get": {
                    "operationId": "listIntegrations",
                    "summary": "The catalog of integrations and their permissions.",
                    "responses": {"200": _json("The catalog.", "Catalog")},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document.",
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {
            "securitySchemes": {"functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}},
            "schemas": SCHEMAS,
        },
    }


STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
SCHEMAS: dict[str, Any] = {
    "OnboardRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "displayName": {"type": "string", "minLength": 1, "maxLength": 120},
            "secretLifetimeDays": {"type": "integer", "minimum": 1, "description": "Clamped to the tenant's policy."},
            "notes": {"type": "string", "minLength": 1, "maxLength": 500},
            "credentialType": {
                "enum": ["secret", "certificate", "federated"],
                "description": (
                    "What the app proves itself with; one the integration offers (GET /api/integrations, "
                    "credentialTypes), default its defaultCredentialType. secret: a client secret in Key Vault. "
                    "certificate: a certificate Key Vault creates and keeps (exportable RSA 2048); consumers read "
                    "its PKCS#12 through keyVaultReferences.clientCertificate and sign client assertions. "
                    "federated: nothing stored; the integration's multi-tenant connector app, consented by the "
                    "tenant's admin (consentUrl while pending), trusts the vendor backend's workload identity. "
                    "Switching a registration's type keeps the previous credential working for the rotation "
                    "grace period, then removes it. Omitted: the registration's current type, else the default."
                ),
            },
            "certificate": {
                "type": "string",
                "maxLength": 12288,
                "description": (
                    "A public certificate the vendor issued and holds the key of (PEM, or base64 DER): put on the "
                    "app instead of one Key Vault creates. RSA of at least 2048 bits or EC P-256/384/521, valid "
                    "now and within the tenant's certificate lifetime policy. Never send a private key: one is "
                    "refused with private-key-supplied and not stored or logged. Never rotated by this service; "
                    "its expiry is reported (credential drift, the sweep's vendor-expiring)."
                ),
            },
            "certificateProof": {
                "type": "string",
                "description": (
                    "Optional: a client assertion (compact JWT, x5t#S256 header, aud the tenant's token endpoint, "
                    "iss and sub the app's client id) signed with the certificate's key. With it the certificate "
                    "is proven by a real token request; without it the credential is reported verified: false."
                ),
            },
            "workspace": {
                "type": "object",
                "additionalProperties": False,
                "required": ["resourceId"],
                "properties": {
                    "resourceId": {
                        "type": "string",
                        "description": "/subscriptions/{id}/resourceGroups/{group}/providers/"
                        "Microsoft.OperationalInsights/workspaces/{name}",
                    },
                    "role": {"type": "string", "description": "A workspaceRoles id of the integration (default: its first)."},
                },
                "description": (
                    "sentinel only: the customer's Log Analytics workspace. Before anything is created this service "
                    "checks it may assign the Sentinel role there (else 403 workspace-access-missing with "
                    "grantCommand); then it gives the app the role, proves it with a query as the app (202 while "
                    "Azure RBAC propagates), and stores the workspace id and name beside the credentials. Omitted: "
                    "the registration's own workspace, if any."
                ),
            },
            "addOns": {
                "type": "array",
                "maxItems": 16,
                "uniqueItems": True,
                "items": {"type": "string", "pattern": "^[a-z][a-z0-9-]{1,30}[a-z0-9]$"},
                "description": (
                    "Opt-in parts of the connection on the same app (GET /api/integrations, addOns): their "
                    "permissions are granted beside the base ones. Adding or removing one later converges the app: "
                    "grants added and revoked. High-impact add-ons are never implied; each is granted only when "
                    "named here. Some take only some credential types (Exchange Online: a certificate). Omitted: "
                    "the registration's current add-ons (none for a new one); []: none. Not offered with federated."
                ),
            },
        },
    },
    "Permission": {
        "type": "object",
        "required": ["resource", "resourceAppId", "permission", "granted"],
        "properties": {
            "resource": STRING, "resourceAppId": STRING, "permission": STRING, "granted": {"type": "boolean"},
            "addOn": {**NULLABLE_STRING, "description": "The add-on that brings it; null: the base permissions."},
        },
    },
    "Registration": {
        "type": "object",
        "required": ["tenantId", "integration", "uniqueName", "application", "servicePrincipalId", "permissions",
                     "credential", "keyVaultReferences", "drift", "addOns", "remainingSteps"],
        "properties": {
            "tenantId": STRING,
            "integration": STRING,
            "uniqueName": STRING,
            "application": {
                "type": ["object", "null"],
                "properties": {"objectId": STRING, "clientId": STRING, "displayName": STRING},
            },
            "servicePrincipalId": NULLABLE_STRING,
            "permissions": {"type": "array", "items": {"$ref": "#/components/schemas/Permission"}},
            "credential": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["secret", "certificate", "federated"]},
                    "keyId": NULLABLE_STRING, "hint": NULLABLE_STRING, "expires": NULLABLE_STRING,
                    "thumbprint": {
                        "type": ["string", "null"],
                        "description": "A certificate's SHA-256 thumbprint (hex), the x5t#S256 of its assertions.",
                    },
                    "source": {"enum": ["vendor"], "description": "Present when the vendor supplied the certificate."},
                    "verified": {"type": "boolean"}, "otherCredentialsOnApp": {"type": "integer"},
                },
            },
            "keyVaultReferences": {
                "type": "object",
                "description": "App Service / Functions Key Vault references, versionless.",
                "properties": {
                    "clientId": NULLABLE_STRING, "tenantId": NULLABLE_STRING, "clientSecret": NULLABLE_STRING,
                    "clientCertificate": {
                        "type": ["string", "null"],
                        "description": "The certificate's backing secret: its PKCS#12 (certificate and key), base64.",
                    },
                    "vendorCertificate": {
                        "type": "string",
                        "description": "The vendor-supplied public certificate as stored (PEM); no key.",
                    },
                    "workspaceId": {"type": "string", "description": "sentinel: the workspace (customer) id."},
                    "workspaceName": {"type": "string", "description": "sentinel: the workspace's name."},
                },
            },
            "drift": {"type": "array", "items": STRING},
            "addOns": {"type": "array", "items": STRING, "description": "The add-ons this registration has."},
            "workspace": {
                "type": ["object", "null"],
                "description": "sentinel: the customer's Log Analytics workspace and the Sentinel role the app has "
                "there; proven: a query as the app was answered (a vendor certificate without certificateProof: "
                "not proven).",
                "properties": {
                    "resourceId": STRING, "name": NULLABLE_STRING, "workspaceId": NULLABLE_STRING, "role": STRING,
                    "roleAssignmentId": NULLABLE_STRING, "assigned": {"type": "boolean"}, "proven": {"type": "boolean"},
                },
            },
            "supersededBy": {
                "type": ["object", "null"],
                "description": "Set when the registration's integration is kept only for the registrations made "
                "with it: the integration and add-ons to onboard instead (then move consumers to its references "
                "and offboard this one).",
                "properties": {"integration": STRING, "addOns": {"type": "array", "items": STRING}},
            },
            "remainingSteps": {
                "type": "array",
                "items": STRING,
                "description": "What the customer's admin must still do that this service may not (an add-on's "
                "remaining step, such as an Exchange role for the app), with this registration's ids filled in. "
                "Listed until a PUT sees it done (the catalog's remainingStepDoneWith).",
            },
        },
    },
    "OnboardResult": {
        "allOf": [
            {"$ref": "#/components/schemas/Registration"},
            {
                "type": "object",
                "required": ["outcome", "changes"],
                "properties": {
                    "outcome": {"enum": ["created", "updated", "complete", "pending"]},
                    "changes": {"type": "array", "items": STRING},
                    "pendingReason": STRING,
                    "consentUrl": {
                        "type": "string",
                        "description": "federated, while pending: where the tenant's admin consents to the connector.",
                    },
                },
            },
        ]
    },
    "RotateRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "retirePrevious": {
                "enum": ["afterGracePeriod", "immediately"],
                "description": "immediately: remove the previous secret as soon as the new one is proven and stored.",
            }
        },
    },
    "RotationResult": {
        "type": "object",
        "required": ["tenantId", "integration", "action"],
        "properties": {
            "tenantId": STRING,
            "integration": STRING,
            "action": {
                "enum": [
                    "rotated", "retired", "nothing-due", "waiting", "busy", "pending", "app-missing", "failed",
                    "vendor-expiring",
                ]
            },
            "detail": STRING,
            "newKeyId": NULLABLE_STRING,
            "retiredKeyIds": {"type": "array", "items": STRING},
            "wasExpired": {"type": "boolean"},
            "expires": NULLABLE_STRING,
        },
    },
    "Offboarding": {
        "type": "object",
        "properties": {
            "tenantId": STRING, "integration": STRING,
            "application": {"enum": ["deleted", "purged", "absent"]},
            "secrets": {"type": "object", "additionalProperties": {"enum": ["deleted", "purged", "absent"]}},
            "certificates": {"type": "object", "additionalProperties": {"enum": ["deleted", "purged"]}},
            "customerAction": {
                "type": "string",
                "description": "federated: what only the customer's admin can do (remove the enterprise application).",
            },
            "workspaceRole": {
                "enum": ["removed", "absent"],
                "description": "sentinel with a workspace: the Sentinel role this service assigned there.",
            },
        },
    },
    "Fleet": {
        "type": "object",
        "required": ["registrations", "continuationToken", "listed"],
        "properties": {
            "registrations": {"type": "array", "items": {"$ref": "#/components/schemas/FleetRow"}},
            "continuationToken": NULLABLE_STRING,
            "listed": {"type": "integer", "description": "Key Vault records of this service the page read."},
        },
    },
    "FleetRow": {
        "type": "object",
        "description": "A registration's credential as Key Vault records it (a registration switching credential "
        "type shows its outgoing one too, superseded and in-grace).",
        "required": ["tenantId", "integration", "credentialType", "clientId", "expires", "lastRotated", "verified",
                     "state", "lastProblem", "superseded"],
        "properties": {
            "tenantId": STRING,
            "integration": STRING,
            "credentialType": {"enum": ["secret", "certificate", "vendor-certificate", "federated"]},
            "clientId": NULLABLE_STRING,
            "expires": {"type": ["string", "null"], "format": "date-time"},
            "lastRotated": {"type": ["string", "null"], "format": "date-time"},
            "verified": {"type": "boolean"},
            "state": {"enum": ["healthy", "due", "in-grace", "failing", "expired", "consent-revoked",
                               "unmanaged-leftover"]},
            "lastProblem": {
                "type": ["object", "null"],
                "description": "The problem the last rotation ended with; shed by the next one that ends well.",
                "required": ["type", "at", "failures"],
                "properties": {"type": STRING, "at": NULLABLE_STRING, "failures": {"type": "integer"}},
            },
            "superseded": {"type": "boolean"},
        },
    },
    "Consent": {
        "type": "object",
        "required": ["tenantId", "consented"],
        "properties": {
            "tenantId": STRING, "consented": {"type": "boolean"}, "via": NULLABLE_STRING,
            "missingRoles": {"type": "array", "items": STRING}, "consentUrl": NULLABLE_STRING,
        },
    },
    "Catalog": {
        "type": "object",
        "required": ["integrations"],
        "properties": {
            "integrations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "displayName", "description", "highImpact", "permissions"],
                    "properties": {
                        "id": STRING, "displayName": STRING, "description": STRING,
                        "highImpact": {
                            "type": ["object", "null"],
                            "description": "Set when the integration grants a high-impact role (one that writes, or "
                            "acts on devices, mail, identity or policy): why. Such an integration is never a "
                            "default; a caller asks for it by id.",
                            "required": ["reason"],
                            "properties": {"reason": STRING},
                        },
                        "permissions": {"type": "array", "items": {"$ref": "#/components/schemas/CatalogPermissions"}},
                        "workspaceRoles": {
                            "type": "array",
                            "description": "sentinel: the roles a PUT's workspace.role may name (the first is the "
                            "default; a high-impact one only when named).",
                            "items": {"type": "object", "properties": {
                                "id": STRING, "displayName": STRING, "roleDefinitionId": STRING,
                                "highImpact": {"type": ["object", "null"], "properties": {"reason": STRING}},
                            }},
                        },
                        "addOns": {
                            "type": "array",
                            "description": "Opt-in parts a caller names in the PUT's addOns.",
                            "items": {
                                "type": "object",
                                "required": ["id", "displayName", "description", "highImpact", "credentialTypes",
                                             "remainingStep", "remainingStepDoneWith", "permissions"],
                                "properties": {
                                    "id": STRING, "displayName": STRING, "description": STRING,
                                    "highImpact": {"type": ["object", "null"], "properties": {"reason": STRING}},
                                    "credentialTypes": {"type": "array", "items": STRING},
                                    "remainingStep": NULLABLE_STRING,
                                    "remainingStepDoneWith": {
                                        "type": "array",
                                        "description": "The Microsoft Entra roles that show the remaining step done "
                                        "once the app's own token carries one (its wids claim); checked at each PUT. "
                                        "Empty: this service cannot see the step done.",
                                        "items": {"type": "object", "required": ["templateId", "displayName"],
                                                  "properties": {"templateId": STRING, "displayName": STRING}},
                                    },
                                    "permissions": {
                                        "type": "array", "items": {"$ref": "#/components/schemas/CatalogPermissions"},
                                    },
                                },
                            },
                        },
                    },
                },
            }
        },
    },
    "CatalogPermissions": {
        "type": "object",
        "required": ["resource", "resourceAppId", "roles", "appRoles"],
        "properties": {
            "resource": STRING, "resourceAppId": STRING,
            "roles": {"type": "array", "items": STRING, "description": "The app role values, as appRoles lists them."},
            "appRoles": {"type": "array", "items": {
                "type": "object",
                "required": ["value", "id", "impact"],
                "properties": {
                    "value": STRING,
                    "id": {**NULLABLE_STRING, "description": "The reviewed app role id; a tenant whose resource "
                           "offers the value under another id is refused."},
                    "impact": {"enum": ["read", "high"]},
                    "reason": {**STRING, "description": "Why a high-impact role is granted."},
                },
            }},
        },
    },
    "Problem": {
        "type": "object",
        "description": f"RFC 9457 problem details; `type` is stable and starts with {PROBLEM_BASE}.",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "format": "uri", "enum": [PROBLEM_BASE + name for name in PROBLEM_TYPES]},
            "title": STRING, "status": {"type": "integer"},
            "detail": STRING, "instance": STRING, "field": STRING, "tenantId": STRING, "integration": STRING,
            "upstreamService": STRING, "upstreamStatus": {"type": ["integer", "null"]}, "upstreamCode": NULLABLE_STRING,
            "upstreamRequestIds": {
                "type": "object", "additionalProperties": STRING,
                "description": "The failed upstream answer's request ids, for a support ticket to Microsoft: Graph's "
                "`request-id`, `client-request-id` and `date`; Key Vault's and Storage's `x-ms-request-id` and "
                "`x-ms-client-request-id`; Entra's token endpoint's `trace_id`, `correlation_id` and `timestamp`.",
            },
        },
    },
}  # fmt: skip
