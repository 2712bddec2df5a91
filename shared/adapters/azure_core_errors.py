"""The request ids of a failed azure-core call (Key Vault, Storage, ARM): what a support ticket to Microsoft names.

Storage stamps every answer with `x-ms-request-id`, the id its own logs file it under, and echoes the
caller's `x-ms-client-request-id` (documented on each operation's response headers, e.g.
https://learn.microsoft.com/rest/api/storageservices/lease-blob). For Key Vault neither is documented
(https://learn.microsoft.com/azure/key-vault/general/common-parameters-and-headers), and the Azure SDK's
recorded sessions show no `x-ms-request-id` (azure-sdk-for-python, azure-keyvault-secrets
test_example_secret_crud_operations[7.3]): unknown, so both are read when present. azure-core's
RequestIdPolicy sends `x-ms-client-request-id` on every request, so when an answer does not echo it the
request the SDK sent still says it. Only these two headers (and, for ARM, its correlation id) are read: never
a body, never another header.
"""

from __future__ import annotations

from collections.abc import Mapping

from azure.core.exceptions import AzureError

REQUEST_ID = "x-ms-request-id"
CLIENT_REQUEST_ID = "x-ms-client-request-id"
# Azure Resource Manager files a request under the `x-ms-correlation-request-id` its front door adds (the
# caller's, if it sent one) besides the provider's `x-ms-request-id` (Azure/azure-resource-manager-rpc,
# v1.0/common-api-details.md): ARM's callers ask for it too.
CORRELATION_REQUEST_ID = "x-ms-correlation-request-id"


def request_ids(error: AzureError, also: tuple[str, ...] = ()) -> dict[str, str]:
    """`x-ms-request-id` and `x-ms-client-request-id` of the failed answer (and the headers `also` names), those
    that are known."""
    response = getattr(error, "response", None)  # None when no answer came (ServiceRequestError, ...)
    answered = getattr(response, "headers", None)
    sent = getattr(getattr(response, "request", None), "headers", None)
    ids = {
        REQUEST_ID: _header(answered, REQUEST_ID),
        CLIENT_REQUEST_ID: _header(answered, CLIENT_REQUEST_ID) or _header(sent, CLIENT_REQUEST_ID),
        **{name: _header(answered, name) for name in also},
    }
    return {name: value for name, value in ids.items() if value}


def _header(headers: object, name: str) -> str | None:
    """One header's value, whatever its case (azure-core's transports differ in how they keep headers)."""
    if not isinstance(headers, Mapping):
        return None
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    return None if value is None else str(value)
