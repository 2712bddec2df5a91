"""Whether this service may manage apps in a tenant now, and where its admin consents if not."""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain.model import PROVISIONER_ROLES
from shared.domain.ports import TenantAccess
from shared.settings import Settings


@dataclass(frozen=True)
class ConsentStatus:
    tenant_id: str
    consented: bool
    via: str | None  # "managed identity" | "provisioner app" | None (this deployment cannot reach the tenant)
    missing_roles: list[str]
    consent_url: str | None  # set when consent is missing and a provisioner app can be consented to


class TenantConsent:
    def __init__(self, settings: Settings, access: TenantAccess) -> None:
        self.settings = settings
        self.access = access

    async def status(self, tenant_id: str) -> ConsentStatus:
        if tenant_id == self.settings.home_tenant_id:
            self.access.ensure_allowed(tenant_id)  # refuses the home tenant where it is not allowed
            return ConsentStatus(tenant_id, True, "managed identity", [], None)
        if self.settings.provisioner_client_id is None:
            return ConsentStatus(tenant_id, False, None, [], None)
        consented, roles = await self.access.consent(tenant_id)
        missing = sorted(PROVISIONER_ROLES - roles) if consented else sorted(PROVISIONER_ROLES)
        url = self.access.consent_url(tenant_id) if missing else None
        return ConsentStatus(tenant_id, consented and not missing, "provisioner app", missing, url)
