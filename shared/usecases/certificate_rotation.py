"""Rotating a client certificate before it expires: the same two phases as a client secret, with no gap.

1. *Rotate* when the stored certificate ends within the rotation window (or is expired or off the
   app): Key Vault creates a new certificate under the registration's staging name, its public part
   goes on the app, a token signed with it must hold every granted role, and only then is it
   imported as the new latest version of the registration's certificate. Consumers keep the old
   version, which still works, until the new one is proven; the versionless reference is unchanged.
2. *Retire* after the grace period (`retire-after` on the latest version): certificates this service
   put on the app that the latest version does not hold come off it.

The staging certificate is the journal: Key Vault holds its key before the app knows it, so a crash
at any step leaves nothing a later run cannot finish (install is idempotent; the keyId is derived
from the certificate) or throw away (a staged certificate that cannot be proven is removed from the
app and from Key Vault). The registration's lock keeps the timer, a Key Vault event and an
on-demand call from rotating it twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.domain.audit import audit
from shared.domain.errors import OnboardingError, UpstreamTimeout, UpstreamUnavailable, VendorRotatesCertificate
from shared.domain.model import AppRegistration, IntegrationProfile, StoredCertificate, StoredSecret
from shared.domain.registry import PROBLEM_TAGS, Tag, iso, parse_iso
from shared.usecases.certificates import Certificates, validity_months
from shared.usecases.replication import StillReplicating

if TYPE_CHECKING:
    from shared.usecases.rotation import Rotation, RotationResult

logger = logging.getLogger(__name__)
# The journal and bookkeeping tags a promoted version must not inherit from the one it replaces.
JOURNAL = (
    Tag.PENDING, Tag.STAGED, Tag.STAGED_BY, Tag.RETIRE_AFTER, Tag.PENDING_SINCE, Tag.PREVIOUS_KEY_ID, *PROBLEM_TAGS,
)  # fmt: skip


class CertificateRotation:
    def __init__(self, rotation: Rotation, certificates: Certificates) -> None:
        self.rotation = rotation
        self.certificates = certificates
        self.settings = rotation.settings
        self.registry = rotation.registry
        self.directory = rotation.directory
        self.vault = rotation.vault
        self.now = rotation.now

    async def rotate(
        self,
        tenant: str,
        app: AppRegistration,
        latest: StoredCertificate,
        profile: IntegrationProfile,
        force: bool,
        retire_now: bool,
        context: dict[str, str],
    ) -> RotationResult:
        from shared.usecases.rotation import Action, RotationResult

        now = self.now()
        on_app = self.certificates.key_on_app(app, latest)
        expired = on_app is None or latest.expires <= now
        staging_name = self.registry.staging_certificate_name(tenant, profile.id)
        staged = await self.vault.read_certificate(staging_name, with_key=True)
        lifetime = latest.expires - latest.certificate.not_before
        due = force or expired or staged is not None or latest.expires - now <= self.rotation._window(lifetime)
        result = RotationResult(tenant, profile.id, Action.NOTHING_DUE, was_expired=expired)
        if due:
            try:
                if profile.in_catalog:
                    await self.rotation._converge_consent(tenant, app, _as_record(latest), profile, context)
                latest, app = await self._rotate(tenant, app, latest, staged, profile, force, retire_now, context)
            except StillReplicating as pending:
                record = _as_record(await self.vault.read_certificate(latest.name) or latest)
                return await self.rotation._still_pending(result, record, pending, context, self._set_tags(latest))
            result.action = Action.ROTATED
            result.new_key_id = self.registry.key_credential_id(latest.certificate.thumbprint_sha256)
        retired, waiting = await self._retire(tenant, app, latest, retire_now, context)
        result.retired_key_ids = retired
        if result.action is Action.NOTHING_DUE and retired:
            result.action = Action.RETIRED
        elif result.action is Action.NOTHING_DUE and waiting:
            result.action = Action.WAITING
        result.expires = iso(latest.expires)
        return result

    async def report_vendor(
        self,
        tenant: str,
        app: AppRegistration,
        record: StoredSecret,
        force: bool,
        retire_now: bool,
        context: dict[str, str],
    ) -> RotationResult:
        """A vendor's certificate is never rotated here (this service holds no key for it): its expiry is
        reported from the rotation window on (logged, audited, counted by the sweep), and the certificate it
        replaced comes off the app after the grace period."""
        from shared.usecases.rotation import Action, RotationResult

        integration = context["integration"]
        if force:
            raise VendorRotatesCertificate(
                "This registration's certificate was supplied by the vendor, who holds its key: send a new "
                "certificate with PUT instead.",
                **context,
            )
        now = self.now()
        end = record.expires
        expired = end is not None and end <= now
        result = RotationResult(tenant, integration, Action.NOTHING_DUE, was_expired=expired)
        result.expires = iso(end) if end else None
        issued = parse_iso(record.tags.get(Tag.ISSUED_AT))
        lifetime = (end - issued) if end and issued else timedelta(days=self.settings.rotation_window_days * 2)
        if end is not None and (expired or end - now <= self.rotation._window(lifetime)):
            result.action = Action.VENDOR_EXPIRING
            result.detail = f"the vendor's certificate {'expired' if expired else 'expires'} {iso(end)}"
            logger.warning("%s/%s: %s; the vendor must send a new one", tenant, integration, result.detail)
            audit("certificate.expiring", context, thumbprint=str(record.tags.get(Tag.THUMBPRINT, "")), end=iso(end),
                  source="vendor")  # fmt: skip
        previous = record.tags.get(Tag.PREVIOUS_KEY_ID)
        retire_after = parse_iso(record.tags.get(Tag.RETIRE_AFTER))
        if previous and (retire_now or retire_after is None or retire_after <= now):
            if await self.directory.remove_key(tenant, app.object_id, previous):
                result.retired_key_ids.append(previous)
                audit("certificate.retired", context, appObjectId=app.object_id, keyId=previous, source="vendor")
            tags = {k: v for k, v in record.tags.items() if k not in (Tag.PREVIOUS_KEY_ID, Tag.RETIRE_AFTER)}
            await self.vault.update_tags(record.name, record.version, tags)
            if result.action is Action.NOTHING_DUE:
                result.action = Action.RETIRED
        elif previous and result.action is Action.NOTHING_DUE:
            result.action = Action.WAITING
        return result

    async def _rotate(
        self,
        tenant: str,
        app: AppRegistration,
        latest: StoredCertificate,
        staged: StoredCertificate | None,
        profile: IntegrationProfile,
        force: bool,
        retire_now: bool,
        context: dict[str, str],
    ) -> tuple[StoredCertificate, AppRegistration]:
        staging_name = self.registry.staging_certificate_name(tenant, profile.id)
        if staged is not None and staged.certificate.thumbprint_sha256 == latest.certificate.thumbprint_sha256:
            # An earlier run promoted it and stopped before clearing staging: finish that, then look again.
            await self._delete_staging(staging_name, context, reason="promoted")
            staged = None
            if not force:
                return latest, app
        # An on-demand rotation (after a suspected leak) reuses only a certificate an on-demand rotation staged.
        fresh_enough = staged is not None and (not force or staged.tags.get(Tag.STAGED_BY) == "on-demand")
        if staged is not None and (not fresh_enough or not self.certificates.usable(app, staged)):
            await self._discard(tenant, app, staged, context)
            staged = None
        if staged is None:
            policy = (await self.rotation._password_policy(tenant)).for_app_created(app.created)
            months = validity_months(self.settings, policy, context)
            tags = self.certificates.tags(tenant, profile.id, app, Tag.STAGED_CERTIFICATE_KIND)
            if force:
                tags[Tag.STAGED_BY] = "on-demand"
            staged = await self.certificates.create(staging_name, tenant, profile.id, months, tags, context)
        key, _ = await self.certificates.install(tenant, app, staged, context)
        try:
            assert staged.key is not None
            await self.rotation.credentials.prove(tenant, app.app_id, staged.key, profile)
        except (StillReplicating, UpstreamUnavailable, UpstreamTimeout):
            raise  # staged and on the app: the next run proves it again instead of creating another
        except Exception:
            # Refused for good: never promote an unproven certificate (consumers would switch to it).
            await self._discard(tenant, app, staged, context)
            raise
        now = self.now()
        grace = timedelta(0) if retire_now else timedelta(hours=self.settings.rotation_grace_hours)
        tags = {k: v for k, v in latest.tags.items() if k not in JOURNAL} | {
            Tag.VERIFIED: Tag.TRUE,
            Tag.ISSUED_AT: iso(now),
            Tag.ROTATED_AT: iso(now),
            Tag.PREVIOUS_KEY_ID: self.registry.key_credential_id(latest.certificate.thumbprint_sha256),
            Tag.RETIRE_AFTER: iso(now + grace),
        }
        assert staged.key is not None
        promoted = await self.vault.import_certificate(latest.name, staged.key, tags)
        audit(
            "certificate.rotated",
            context,
            certificateName=latest.name,
            version=promoted.version,
            end=iso(promoted.expires),
            keyId=key.key_id,
            previousKeyId=tags[Tag.PREVIOUS_KEY_ID],
        )
        # After the promotion, never before: a crash in between leaves staging holding the latest's certificate,
        # which the next run recognises and clears.
        await self._delete_staging(staging_name, context, reason="promoted")
        if all(k.key_id != key.key_id for k in app.keys):
            app = replace(app, keys=(*app.keys, key))
        return promoted, app

    async def _discard(
        self, tenant: str, app: AppRegistration, staged: StoredCertificate, context: dict[str, str]
    ) -> None:
        """Take a staged certificate off the app and out of Key Vault."""
        key_id = self.registry.key_credential_id(staged.certificate.thumbprint_sha256)
        if await self.directory.remove_key(tenant, app.object_id, key_id):
            audit("certificate.removed", context, appObjectId=app.object_id, keyId=key_id, reason="unproven")
        await self._delete_staging(staged.name, context, reason="unproven")

    async def _delete_staging(self, name: str, context: dict[str, str], reason: str) -> None:
        """Delete and purge: a staging certificate holds a private key no consumer references, and a soft-deleted
        one would hold its name against the next rotation's."""
        if await self.vault.delete_certificate(name):
            audit("certificate.deleted", context, certificateName=name, reason=reason)
        with contextlib.suppress(OnboardingError):
            await self.vault.purge_certificate(name)

    async def _retire(
        self, tenant: str, app: AppRegistration, latest: StoredCertificate, retire_now: bool, context: dict[str, str]
    ) -> tuple[list[str], bool]:
        """Remove our superseded certificates from the app once the grace period has passed; (removed, waiting)."""
        keep = self.registry.key_credential_id(latest.certificate.thumbprint_sha256)
        staging = self.registry.staging_certificate_name(
            str(latest.tags.get(Tag.TENANT_ID)), str(latest.tags.get(Tag.INTEGRATION))
        )
        staged = await self.vault.read_certificate(staging)
        spare = {keep} | ({self.registry.key_credential_id(staged.certificate.thumbprint_sha256)} if staged else set())
        ours = [k for k in app.keys if self.registry.issued_here(k.display_name) and k.key_id not in spare]
        retire_after = parse_iso(latest.tags.get(Tag.RETIRE_AFTER))
        if not ours:
            if retire_after is not None:
                await self.vault.update_certificate_tags(
                    latest.name, latest.version, {k: v for k, v in latest.tags.items() if k != Tag.RETIRE_AFTER}
                )
            return [], False
        now = self.now()
        if retire_after is None:
            await self.vault.update_certificate_tags(
                latest.name,
                latest.version,
                dict(latest.tags) | {Tag.RETIRE_AFTER: iso(now + timedelta(hours=self.settings.rotation_grace_hours))},
            )
            return [], True
        if now < retire_after and not retire_now:
            return [], True
        removed = []
        for key in ours:
            if await self.directory.remove_key(tenant, app.object_id, key.key_id):
                removed.append(key.key_id)
                audit("certificate.retired", context, appObjectId=app.object_id, keyId=key.key_id)
        await self.vault.update_certificate_tags(
            latest.name, latest.version, {k: v for k, v in latest.tags.items() if k != Tag.RETIRE_AFTER}
        )
        return removed, False

    def _set_tags(self, latest: StoredCertificate) -> Callable[[StoredSecret, dict[str, str]], Awaitable[None]]:
        async def set_tags(record: StoredSecret, tags: dict[str, str]) -> None:
            await self.vault.update_certificate_tags(latest.name, record.version, tags)

        return set_tags


def _as_record(certificate: StoredCertificate) -> StoredSecret:
    """The certificate's Key Vault record as the checks shared with secrets read it (name, version, tags)."""
    return StoredSecret(certificate.name, certificate.version, certificate.uri, certificate.tags, certificate.expires)
