"""A client certificate's life, shared by onboarding and rotation: created in Key Vault, put on the app, proven.

The order is the reverse of a client secret's, and that is what makes it simpler to make safe:
Key Vault creates the key pair first, so the private key exists nowhere but in Key Vault and no
lost answer can leave a credential on the app whose key nobody holds. Putting the public part on
the app is idempotent (its keyId is derived from the certificate, shared/domain/registry.py), so a
retry after a lost answer converges on one key credential. Proving signs a client assertion with
the key and asks Entra for a token whose `roles` hold every granted permission.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.domain.audit import audit
from shared.domain.errors import CertificatesRefusedByPolicy, InvalidRequest, UpstreamError
from shared.domain.model import AppRegistration, KeyInfo, NewKey, PasswordPolicy, PublicCertificate, StoredCertificate
from shared.domain.ports import Directory, Vault
from shared.domain.registry import Registry, Tag, iso
from shared.domain.retry import Clock
from shared.settings import Settings
from shared.usecases.replication import within_replication

# Key Vault's validity is a whole number of months (CertificatePolicy.validity_in_months); a month is counted
# as 31 days when fitting it under a policy's cap in days, so the certificate never exceeds the cap.
DAYS_PER_MONTH = 31


def validity_months(settings: Settings, policy: PasswordPolicy, context: dict[str, str]) -> int:
    """The configured validity, clamped to the tenant's `asymmetricKeyLifetime`; a cap under one month
    (Key Vault's shortest) is refused by name rather than sent to Entra to refuse."""
    months = settings.certificate_validity_months
    if policy.certificate_max_lifetime_days is not None:
        fitting = math.floor(policy.certificate_max_lifetime_days / DAYS_PER_MONTH)
        if fitting < 1:
            raise CertificatesRefusedByPolicy(
                f"The tenant's app management policy caps certificates at "
                f"{policy.certificate_max_lifetime_days:g} days, under Key Vault's shortest validity (one month).",
                policyId=policy.policy_id,
                **context,
            )
        months = min(months, fitting)
    return months


def check_vendor_certificate(
    certificate: PublicCertificate, now: datetime, policy: PasswordPolicy, context: dict[str, str]
) -> None:
    """A vendor's certificate must be valid now, and no longer-lived than the tenant's `asymmetricKeyLifetime`
    allows (Entra would refuse it on the app: better a named answer before anything is written)."""
    if not certificate.not_before <= now < certificate.not_after:
        raise InvalidRequest("certificate is not valid now (expired, or not yet valid).", field="certificate")
    cap = policy.certificate_max_lifetime_days
    if cap is not None and certificate.not_after - certificate.not_before > timedelta(days=cap):
        raise CertificatesRefusedByPolicy(
            f"The tenant's app management policy caps certificates at {cap:g} days; this one is valid for longer.",
            policyId=policy.policy_id,
            **context,
        )


def pem(certificate: PublicCertificate) -> str:
    """The certificate as PEM (RFC 7468): what a vendor certificate's Key Vault record holds."""
    body = base64.b64encode(certificate.der).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"


def subject(tenant: str, integration: str) -> str:
    """The certificate's subject names the integration and the tenant it proves an app in."""
    return f"CN={integration}.{tenant}"


class Certificates:
    def __init__(
        self,
        settings: Settings,
        directory: Directory,
        vault: Vault,
        clock: Clock,
        now: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.registry: Registry = settings.registry
        self.directory = directory
        self.vault = vault
        self.clock = clock
        self.now = now

    def key_on_app(self, app: AppRegistration, stored: StoredCertificate) -> KeyInfo | None:
        """The key credential on the app that holds this certificate, if any."""
        key_id = self.registry.key_credential_id(stored.certificate.thumbprint_sha256)
        return next((k for k in app.keys if k.key_id == key_id), None)

    def usable(self, app: AppRegistration, stored: StoredCertificate | None) -> bool:
        """Whether a stored certificate can go on (or stay on) the app: Key Vault holds its key, and it has
        more than a day left (a nearly expired one is replaced rather than installed)."""
        return (
            stored is not None
            and stored.key is not None
            and stored.certificate.not_after - self.now() > timedelta(days=1)
        )

    async def create(
        self, name: str, tenant: str, integration: str, months: int, tags: dict[str, str], context: dict[str, str]
    ) -> StoredCertificate:
        """A new version created by Key Vault, read back with its key (to prove it)."""
        created = await self.vault.create_certificate(name, subject(tenant, integration), months, tags)
        audit(
            "certificate.created",
            context,
            certificateName=name,
            version=created.version,
            thumbprint=created.certificate.thumbprint_sha256,
            end=iso(created.expires),
        )
        with_key = await self.vault.read_certificate(name, with_key=True)
        if with_key is None or with_key.version != created.version:
            # Only another writer could have made a newer version in between, and the registration's lock
            # keeps other writers out: say so rather than prove a certificate this call did not make.
            raise UpstreamError("Key Vault's certificate changed while it was being created", "keyvault", 200, None)
        return with_key

    async def install(
        self, tenant: str, app: AppRegistration, stored: StoredCertificate, context: dict[str, str]
    ) -> tuple[KeyInfo, bool]:
        """Put the certificate on the app unless it is there: (its key credential, added now)."""
        return await self.install_public(tenant, app, stored.certificate, context)

    async def install_public(
        self, tenant: str, app: AppRegistration, certificate: PublicCertificate, context: dict[str, str]
    ) -> tuple[KeyInfo, bool]:
        """Put a public certificate on the app unless it is there: (its key credential, added now)."""
        key_id = self.registry.key_credential_id(certificate.thumbprint_sha256)
        existing = next((k for k in app.keys if k.key_id == key_id), None)
        if existing is not None:
            return existing, False
        new = NewKey(key_id=key_id, display_name=self.registry.new_credential_name(), certificate=certificate)
        key = await within_replication(
            "certificate on the app",
            lambda: self.directory.add_key(tenant, app.object_id, new),
            deadline_seconds=self.settings.replication_timeout_seconds,
            clock=self.clock,
        )
        audit(
            "certificate.added",
            context,
            appObjectId=app.object_id,
            keyId=key.key_id,
            thumbprint=certificate.thumbprint_sha256,
        )
        return key, True

    def tags(self, tenant: str, integration: str, app: AppRegistration, kind: str) -> dict[str, str]:
        return self.registry.tags(tenant, integration, kind, app.object_id, app.app_id) | {
            Tag.VERIFIED: Tag.FALSE,
            Tag.ISSUED_AT: iso(self.now()),
        }
