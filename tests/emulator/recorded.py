"""Real Key Vault and Microsoft Graph exchanges, as Microsoft's SDK and CLI live tests recorded them.

Each `Case` is one recorded request/response pair reduced to what the stand-in is held to: the
status, the keys of the response (and of nested objects), the error code, and a few values that
follow from the request or from the vault's settings. The recordings themselves are not copied:
only these facts, each with the repository, path and commit it was read from.

`shapes` maps a path in the response body to the keys found there; "" is the top level and
`value[0]` the first item of a collection. With `exact`, the recording proves the stand-in may
add no other key (Key Vault's bodies are small and fully enumerated: a deleted-secret listing
item has no `value`). Without it (Graph, whose entities grow new properties over the years), the
recorded keys must be present and more are allowed.

`values` and `patterns` (regular expressions) are checked at those paths after `{name}`-style
placeholders are filled in from the replay; a `header:` prefix names a response header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Source:
    repo: str
    path: str
    commit: str

    def __str__(self) -> str:
        return f"{self.repo}/{self.path}@{self.commit[:12]}"


@dataclass(frozen=True)
class Case:
    name: str
    source: Source
    method: str
    path: str  # as recorded, with the recorded names replaced by placeholders
    request: Any  # the recorded request body (shape; the replay sends its own values)
    status: int
    shapes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    exact: bool = False
    error: str | None = None  # error.code
    inner_error: str | None = None  # Key Vault's error.innererror.code
    values: Mapping[str, Any] = field(default_factory=dict)
    patterns: Mapping[str, str] = field(default_factory=dict)
    replay: str = ""  # the replayed exchange this case reads; defaults to its own name

    @property
    def exchange(self) -> str:
        return self.replay or self.name


def keys(*names: str) -> frozenset[str]:
    return frozenset(names)


# --- sources ---

PY_SECRETS = "sdk/keyvault/azure-keyvault-secrets/tests/recordings/test_samples_secrets.pyTestExamplesKeyVault"
PY_COMMIT = "5899cf6487af799e84fcab954af83e45c10a1dce"
PY_RECOVER = Source("Azure/azure-sdk-for-python", f"{PY_SECRETS}test_example_secrets_recover[7.3].json", PY_COMMIT)
PY_CRUD = Source("Azure/azure-sdk-for-python", f"{PY_SECRETS}test_example_secret_crud_operations[7.3].json", PY_COMMIT)
PY_LIST = Source("Azure/azure-sdk-for-python", f"{PY_SECRETS}test_example_secret_list_operations[7.3].json", PY_COMMIT)
JS_SECRETS = "sdk/keyvault/keyvault-secrets/recordings/node"
JS_PURGE_ALL = Source(
    "Azure/azure-sdk-for-js",
    f"{JS_SECRETS}/secret_client__list_secrets_in_various_ways/recording_can_purge_all_secrets.json",
    "8883e421bf1b1a30425e11d5005e09e808130409",
)
JS_DISABLED = Source(
    "Azure/azure-sdk-for-js",
    f"{JS_SECRETS}/secret_client__create_read_update_and_delete_operations/recording_cant_get_a_disabled_secret.json",
    "aae9f4a86e4a5e43d28389f9fe3cb64798e5bc99",
)
JS_DELETE_MISSING = Source(
    "Azure/azure-sdk-for-js",
    f"{JS_SECRETS}/secret_client__create_read_update_and_delete_operations/"
    "recording_can_delete_a_secret_non_existing.json",
    "1154fabd58a1db7b74b59622b434477eed09b758",
)
GO_VERSIONS = Source(
    "Azure/azure-sdk-for-go",
    "sdk/keyvault/azsecrets/testdata/recordings/TestListSecretVersions.json",
    "2bbacca7fd5d0dc2612083960f879d5ac735d455",
)
NET_VERSIONS_MISSING = Source(
    "Azure/azure-sdk-for-net",
    "sdk/keyvault/Azure.Security.KeyVault.Secrets/tests/SessionRecords/SecretClientLiveTests/"
    "GetSecretVersionsNonExisting.json",
    "20b60c86716a82be87e2d452c5fcd0e2b1207dc0",
)
CLI_ROLE = "src/azure-cli/azure/cli/command_modules/role/tests/latest/recordings"
CLI_CREDENTIAL = Source(
    "Azure/azure-cli", f"{CLI_ROLE}/test_app_credential.yaml", "fd3b3d8c19a107328a163d5d7a1c4a6c3f83cbcd"
)
# The same test re-recorded in 2025 by an account without directory permissions: one 403.
CLI_CREDENTIAL_DENIED = Source(
    "Azure/azure-cli", f"{CLI_ROLE}/test_app_credential.yaml", "775215750a65be45db0de815b1dc75c0f6fffe70"
)
CLI_SERVICE_PRINCIPAL = Source(
    "Azure/azure-cli", f"{CLI_ROLE}/test_service_principal_scenario.yaml", "11656feb155e8f7e710b25d04b0098c46732492b"
)
PS_APPLICATION = Source(
    "Azure/azure-powershell",
    "src/Resources/MSGraph.Autorest/test/Application.Recording.json",
    "1f9c3588d90907d25bb53a5697ae79c48d43b183",
)
PS_ORGANIZATION = Source(
    "Azure/azure-powershell",
    "src/Resources/MSGraph.Autorest/test/Get-AzADOrganization.Recording.json",
    "a9801a40a1d574bcaf9d805b55d64a3da04149a1",
)

# --- recorded shapes ---

# Every recorded vault had soft delete with 7 days' retention and no purge protection, which the
# replay's vault copies: these are the values that follow from that setting.
RECOVERY_LEVEL = "CustomizedRecoverable+Purgeable"
RECOVERABLE_DAYS = 7
KV_ATTRIBUTES = keys("enabled", "created", "updated", "recoveryLevel", "recoverableDays")
KV_ATTRIBUTES_EXP = KV_ATTRIBUTES | {"exp"}
KV_BUNDLE = keys("value", "id", "attributes")
KV_DELETED = keys("recoveryId", "deletedDate", "scheduledPurgeDate", "id", "attributes")
KV_PAGE = keys("value", "nextLink")
KV_ERROR = {"": keys("error"), "error": keys("code", "message")}
KV_SETTING = {"attributes.recoveryLevel": RECOVERY_LEVEL, "attributes.recoverableDays": RECOVERABLE_DAYS}
NOT_FOUND_MESSAGE = (
    "A secret with (name/id) {missing} was not found in this key vault. If you recently deleted this secret you may "
    "be able to recover it using the correct recovery command. For help resolving this issue, please see "
    "https://go.microsoft.com/fwlink/?linkid=2125182"
)

GRAPH_APPLICATION = keys(
    "id", "deletedDateTime", "appId", "applicationTemplateId", "disabledByMicrosoftStatus", "createdDateTime",
    "displayName", "description", "groupMembershipClaims", "identifierUris", "isDeviceOnlyAuthSupported",
    "isFallbackPublicClient", "notes", "publisherDomain", "serviceManagementReference", "signInAudience", "tags",
    "tokenEncryptionKeyId", "defaultRedirectUri", "certification", "optionalClaims", "addIns", "api", "appRoles",
    "info", "keyCredentials", "parentalControlSettings", "passwordCredentials", "publicClient",
    "requiredResourceAccess", "verifiedPublisher", "web", "spa",
)  # fmt: skip
GRAPH_APPLICATION_API = keys(
    "acceptMappedClaims", "knownClientApplications", "requestedAccessTokenVersion", "oauth2PermissionScopes",
    "preAuthorizedApplications",
)  # fmt: skip
GRAPH_PASSWORD = keys(
    "customKeyIdentifier", "displayName", "endDateTime", "hint", "keyId", "secretText", "startDateTime"
)
GRAPH_SERVICE_PRINCIPAL = keys(
    "id", "deletedDateTime", "accountEnabled", "alternativeNames", "appDisplayName", "appDescription", "appId",
    "applicationTemplateId", "appOwnerOrganizationId", "appRoleAssignmentRequired", "createdDateTime", "description",
    "disabledByMicrosoftStatus", "displayName", "homepage", "loginUrl", "logoutUrl", "notes",
    "notificationEmailAddresses", "preferredSingleSignOnMode", "preferredTokenSigningKeyThumbprint", "replyUrls",
    "servicePrincipalNames", "servicePrincipalType", "signInAudience", "tags", "tokenEncryptionKeyId",
    "samlSingleSignOnSettings", "verifiedPublisher", "addIns", "appRoles", "info", "keyCredentials",
    "oauth2PermissionScopes", "passwordCredentials", "resourceSpecificApplicationPermissions",
)  # fmt: skip
# The organization's keys up to provisionedPlans, and verifiedDomains, read from the recording (the
# tenant's own schema extension left out); its long plan arrays were not searched for further keys.
GRAPH_ORGANIZATION = keys(
    "id", "deletedDateTime", "businessPhones", "city", "country", "countryLetterCode", "createdDateTime",
    "displayName", "isMultipleDataLocationsForServicesEnabled", "marketingNotificationEmails",
    "onPremisesLastSyncDateTime", "onPremisesSyncEnabled", "partnerTenantType", "postalCode", "preferredLanguage",
    "securityComplianceNotificationMails", "securityComplianceNotificationPhones", "state", "street",
    "technicalNotificationMails", "tenantType", "directorySizeQuota", "assignedPlans", "privacyProfile",
    "provisionedPlans", "verifiedDomains",
)  # fmt: skip
GRAPH_COLLECTION = keys("@odata.context", "value")
GRAPH_ERROR = {
    "": keys("error"),
    "error": keys("code", "message", "innerError"),
    "error.innerError": keys("date", "request-id", "client-request-id"),
}
CONTEXT = "https://graph.microsoft.com/v1.0/$metadata"

# --- Key Vault (api-version 7.3, as recorded) ---

KEY_VAULT: tuple[Case, ...] = (
    Case(
        "kv-challenge", PY_RECOVER, "PUT", "/secrets/{name}", None, 401, KV_ERROR, exact=True, error="Unauthorized",
        values={"error.message": "AKV10000: Request is missing a Bearer or PoP token."},
        patterns={"header:WWW-Authenticate": r'^Bearer authorization="[^"]+/{tenant}", resource="https://vault\.azure\.net"$'},
    ),
    Case(
        "kv-set", PY_RECOVER, "PUT", "/secrets/{name}", {"value": "secret-value"}, 200,
        {"": KV_BUNDLE, "attributes": KV_ATTRIBUTES}, exact=True,
        values={"value": "secret-value", **KV_SETTING},
        patterns={"id": r"^{vault}/secrets/{name}/[0-9a-f]{{32}}$"},
    ),
    Case(
        "kv-delete", PY_RECOVER, "DELETE", "/secrets/{name}", None, 200,
        {"": KV_DELETED, "attributes": KV_ATTRIBUTES}, exact=True,
        values={"recoveryId": "{vault}/deletedsecrets/{name}", **KV_SETTING},
    ),
    Case(
        "kv-get-deleted", PY_RECOVER, "GET", "/deletedsecrets/{name}", None, 200,
        {"": KV_DELETED, "attributes": KV_ATTRIBUTES}, exact=True,
    ),
    Case(
        "kv-recover", PY_RECOVER, "POST", "/deletedsecrets/{name}/recover", None, 200,
        {"": keys("id", "attributes"), "attributes": KV_ATTRIBUTES}, exact=True,
    ),
    Case(
        "kv-get-missing", PY_RECOVER, "GET", "/secrets/{missing}/", None, 404, KV_ERROR, exact=True,
        error="SecretNotFound", values={"error.message": NOT_FOUND_MESSAGE},
    ),
    Case(
        "kv-get-deleted-missing", PY_RECOVER, "GET", "/deletedsecrets/{missing}", None, 404, KV_ERROR, exact=True,
        error="SecretNotFound", values={"error.message": "Deleted Secret not found: {missing}"},
    ),
    Case(
        "kv-delete-missing", JS_DELETE_MISSING, "DELETE", "/secrets/{missing}", None, 404, KV_ERROR, exact=True,
        error="SecretNotFound", values={"error.message": NOT_FOUND_MESSAGE},
    ),
    Case(
        "kv-set-with-expiry", PY_CRUD, "PUT", "/secrets/{name}", {"value": "secret-value", "attributes": {"exp": 2527401600}},
        200, {"": KV_BUNDLE, "attributes": KV_ATTRIBUTES_EXP}, exact=True, values={"attributes.exp": 2527401600},
    ),
    Case(
        "kv-get-latest", PY_CRUD, "GET", "/secrets/{name}/", None, 200,
        {"": KV_BUNDLE, "attributes": KV_ATTRIBUTES_EXP}, exact=True,
    ),
    Case(
        "kv-get-version", PY_CRUD, "GET", "/secrets/{name}/{version}", None, 200,
        {"": KV_BUNDLE, "attributes": KV_ATTRIBUTES_EXP}, exact=True, values={"id": "{vault}/secrets/{name}/{version}"},
    ),
    Case(
        "kv-update", PY_CRUD, "PATCH", "/secrets/{name}/", {"contentType": "text/plain", "tags": {"foo": "updated tag"}},
        200, {"": keys("contentType", "id", "attributes", "tags"), "attributes": KV_ATTRIBUTES_EXP}, exact=True,
        values={"contentType": "text/plain", "tags": {"foo": "updated tag"}},
    ),
    Case(
        "kv-list", PY_LIST, "GET", "/secrets", None, 200,
        {"": KV_PAGE, "value[0]": keys("id", "attributes"), "value[0].attributes": KV_ATTRIBUTES}, exact=True,
        values={"nextLink": None}, patterns={"value[0].id": r"^{vault}/secrets/[0-9A-Za-z-]+$"},
    ),
    Case(
        "kv-list-deleted", PY_LIST, "GET", "/deletedsecrets", None, 200,
        {
            "": KV_PAGE,
            "value[0]": keys("recoveryId", "deletedDate", "scheduledPurgeDate", "contentType", "id", "attributes", "tags"),
            "value[0].attributes": KV_ATTRIBUTES_EXP,
        },
        exact=True, values={"nextLink": None, "value[0].id": "{vault}/secrets/{name}"},
    ),
    Case(
        "kv-versions-missing", PY_LIST, "GET", "/secrets/{missing}/versions", None, 200, {"": KV_PAGE}, exact=True,
        values={"value": [], "nextLink": None},
    ),
    Case(
        "kv-versions-missing-net", NET_VERSIONS_MISSING, "GET", "/secrets/{missing}/versions", None, 200,
        {"": KV_PAGE}, exact=True, values={"value": [], "nextLink": None}, replay="kv-versions-missing",
    ),
    Case(
        "kv-versions", GO_VERSIONS, "GET", "/secrets/{name}/versions", None, 200,
        {"": KV_PAGE, "value[0]": keys("id", "attributes"), "value[0].attributes": KV_ATTRIBUTES}, exact=True,
        values={"nextLink": None}, patterns={"value[2].id": r"^{vault}/secrets/{name}/[0-9a-f]{{32}}$"},
    ),
    Case(
        "kv-set-empty-attributes", GO_VERSIONS, "PUT", "/secrets/{name}", {"attributes": {}, "value": "value0"}, 200,
        {"": KV_BUNDLE, "attributes": KV_ATTRIBUTES}, exact=True, values={"attributes.enabled": True},
    ),
    Case(
        "kv-purge", GO_VERSIONS, "DELETE", "/deletedsecrets/{name}", None, 204, values={"": None},
    ),
    Case(
        "kv-list-paged", JS_PURGE_ALL, "GET", "/secrets", None, 200, {"": KV_PAGE}, exact=True,
        patterns={"nextLink": r"^{vault}/secrets\?api-version=7\.3&\$skiptoken=[^&]+"},
    ),
    Case(
        "kv-list-paged-link", JS_PURGE_ALL, "GET", "/secrets", None, 200,
        patterns={"nextLink": r"^{vault}/secrets\?api-version=7\.3&\$skiptoken=[^&]+$"}, replay="kv-list-paged",
    ),
    # Recorded at api-version 7.4-preview.1, which the stand-in does not serve; replayed at 7.4.
    Case(
        "kv-get-disabled", JS_DISABLED, "GET", "/secrets/{name}/", None, 403,
        {"": keys("error"), "error": keys("code", "message", "innererror"), "error.innererror": keys("code")},
        exact=True, error="Forbidden", inner_error="SecretDisabled",
        values={"error.message": "Operation get is not allowed on a disabled secret."},
    ),
)  # fmt: skip

# --- Microsoft Graph v1.0 ---

GRAPH: tuple[Case, ...] = (
    Case(
        "graph-create-app", PS_APPLICATION, "POST", "/applications",
        {"displayName": "…", "signInAudience": "AzureADMultipleOrgs", "web": {"homePageUrl": "…", "redirectUris": ["…"]}},
        201, {"": GRAPH_APPLICATION | {"@odata.context"}, "api": GRAPH_APPLICATION_API},
        values={"@odata.context": f"{CONTEXT}#applications/$entity", "signInAudience": "AzureADMultipleOrgs"},
    ),
    Case(
        "graph-create-app-web", PS_APPLICATION, "POST", "/applications",
        {"displayName": "…", "signInAudience": "AzureADMultipleOrgs", "web": {"homePageUrl": "…", "redirectUris": ["…"]}},
        201,
        {
            "web": keys("homePageUrl", "logoutUrl", "redirectUris", "implicitGrantSettings"),
            "web.implicitGrantSettings": keys("enableAccessTokenIssuance", "enableIdTokenIssuance"),
        },
        exact=True, values={"web.logoutUrl": None}, replay="graph-create-app",
    ),
    Case(
        "graph-create-app-with-key-credentials", CLI_CREDENTIAL, "POST", "/applications",
        {"displayName": "…", "keyCredentials": []}, 201, {"": GRAPH_APPLICATION | {"@odata.context"}},
        values={"keyCredentials": []},
    ),
    Case(
        "graph-filter-startswith-none", CLI_CREDENTIAL, "GET", "/applications?$filter=startswith(displayName,'{prefix}')",
        None, 200, {"": GRAPH_COLLECTION}, exact=True, values={"@odata.context": f"{CONTEXT}#applications", "value": []},
    ),
    Case(
        "graph-add-password", CLI_CREDENTIAL, "POST", "/applications/{id}/addPassword",
        {"passwordCredential": {"displayName": "key1", "endDateTime": "…", "startDateTime": "…"}}, 200,
        {"": GRAPH_PASSWORD | {"@odata.context"}}, exact=True,
        values={
            "@odata.context": f"{CONTEXT}#microsoft.graph.passwordCredential", "displayName": "key1",
            "customKeyIdentifier": None, "startDateTime": "{start}", "endDateTime": "{end}",
        },
        patterns={"hint": r"^{secret_prefix}$"},
    ),
    Case(
        "graph-add-password-key-id", PS_APPLICATION, "POST", "/applications/{id}/addPassword",
        {"passwordCredential": {"keyId": "…", "startDateTime": "…"}}, 200, {"": GRAPH_PASSWORD | {"@odata.context"}},
        exact=True, values={"keyId": "{key_id}", "displayName": None},
    ),
    Case(
        "graph-get-app", CLI_CREDENTIAL, "GET", "/applications/{id}", None, 200,
        {"": GRAPH_APPLICATION | {"@odata.context"}, "api": GRAPH_APPLICATION_API},
        values={"@odata.context": f"{CONTEXT}#applications/$entity"},
    ),
    Case(
        "graph-get-app-password-credentials", CLI_CREDENTIAL, "GET", "/applications/{id}", None, 200,
        {"passwordCredentials[0]": GRAPH_PASSWORD}, exact=True,
        values={"passwordCredentials[0].secretText": None}, replay="graph-get-app",
    ),
    Case(
        "graph-filter-app-id", CLI_CREDENTIAL, "GET", "/applications?$filter=appId eq '{appId}'", None, 200,
        {"": GRAPH_COLLECTION, "value[0]": GRAPH_APPLICATION}, values={"@odata.context": f"{CONTEXT}#applications"},
    ),
    Case(
        "graph-select-id", PS_APPLICATION, "GET", "/applications/{id}?$select=Id", None, 200,
        {"": keys("@odata.context", "id")}, exact=True,
        values={"@odata.context": f"{CONTEXT}#applications(id)/$entity"},
    ),
    Case(
        "graph-patch-app", PS_APPLICATION, "PATCH", "/applications/{id}",
        {"signInAudience": "AzureADMyOrg", "web": {"homePageUrl": "…", "redirectUris": ["…"]}}, 204, values={"": None},
    ),
    Case(
        "graph-remove-password", CLI_CREDENTIAL, "POST", "/applications/{id}/removePassword", {"keyId": "…"}, 204,
        values={"": None},
    ),
    Case(
        "graph-create-sp", CLI_SERVICE_PRINCIPAL, "POST", "/servicePrincipals", {"appId": "…", "accountEnabled": True},
        201, {"": GRAPH_SERVICE_PRINCIPAL | {"@odata.context"}},
        values={"@odata.context": f"{CONTEXT}#servicePrincipals/$entity", "servicePrincipalType": "Application"},
    ),
    Case(
        "graph-filter-sp-names", CLI_SERVICE_PRINCIPAL, "GET",
        "/servicePrincipals?$filter=servicePrincipalNames/any(c:c eq '{appId}')", None, 200,
        {"": GRAPH_COLLECTION, "value[0]": GRAPH_SERVICE_PRINCIPAL},
        values={"@odata.context": f"{CONTEXT}#servicePrincipals"},
    ),
    Case(
        "graph-get-sp", CLI_SERVICE_PRINCIPAL, "GET", "/servicePrincipals/{sp}", None, 200,
        {"": GRAPH_SERVICE_PRINCIPAL | {"@odata.context"}},
    ),
    Case("graph-delete-app", CLI_CREDENTIAL, "DELETE", "/applications/{id}", None, 204, values={"": None}),
    Case(
        "graph-purge-deleted-app", CLI_CREDENTIAL, "DELETE", "/directory/deletedItems/{id}", None, 204,
        values={"": None},
    ),
    Case(
        "graph-denied", CLI_CREDENTIAL_DENIED, "GET", "/applications?$filter=startswith(displayName,'{prefix}')",
        None, 403, GRAPH_ERROR, exact=True, error="Authorization_RequestDenied",
        values={"error.message": "Insufficient privileges to complete the operation."},
        patterns={"error.innerError.date": r"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d$"},
    ),
    Case(
        "graph-organization", PS_ORGANIZATION, "GET", "/organization", None, 200,
        {"": GRAPH_COLLECTION, "value[0]": GRAPH_ORGANIZATION},
        values={"@odata.context": f"{CONTEXT}#organization", "value[0].tenantType": "AAD"},
    ),
    Case(
        "graph-organization-domains", PS_ORGANIZATION, "GET", "/organization", None, 200,
        {"value[0].verifiedDomains[0]": keys("capabilities", "isDefault", "isInitial", "name", "type")}, exact=True,
        replay="graph-organization",
    ),
)  # fmt: skip

CASES: tuple[Case, ...] = KEY_VAULT + GRAPH
