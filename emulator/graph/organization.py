"""The tenant's organization object (GET /organization)."""

from __future__ import annotations

from .authorization import READ_ORG, require
from .calls import GraphCall, GraphResult
from .odata import CONTEXT


def organization(call: GraphCall) -> GraphResult:
    require(call, READ_ORG)
    tenant = call.tenant
    org = {
        "id": tenant.id,
        "displayName": tenant.display_name,
        "tenantType": "AAD",
        "verifiedDomains": [
            {
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": True,
                "isInitial": True,
                "name": tenant.default_domain,
                "type": "Managed",
            }
        ],
    }
    return GraphResult(200, {"@odata.context": f"{CONTEXT}#organization", "value": [org]})
