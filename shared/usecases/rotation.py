"""Rotating client secrets before they expire, in two phases, with no gap in service (certificates:
shared/usecases/certificate_rotation.py, reached from here).

Per registration (serialized by the registration lock, so the timer, a Key Vault event and an
on-demand call never rotate the same one twice):

1. *Rotate* when the stored credential ends within the rotation window (or is gone or expired):
   journal the attempt on the current version (`pending` tag), mint, prove the new secret with
   a real token, and only then write it as the new latest version. Consumers keep using the old
   version, which still works, until the new one is proven.
2. *Retire* after the grace period (`retire-after` tag on the latest version): remove
   credentials this service issued (its display-name prefix, and a keyId that some stored
   version held, or an orphan older than the orphan grace) that the latest version does not
   hold. Never the latest's own credential; never one this service did not issue.

Every step is safe to repeat. A crash after minting leaves the `pending` journal, and the next
run removes that half-made credential before anything else. What is due across the fleet is the
sweep's to find (shared/usecases/sweep.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from shared.domain.audit import audit
from shared.domain.catalog import Catalog
from shared.domain.errors import (
    InvalidRequest,
    OnboardingError,
    RegistrationBusy,
    RegistrationNotFound,
    SecretsForbiddenByPolicy,
    TenantNotAllowed,
    UnknownIntegration,
    UpstreamTimeout,
    UpstreamUnavailable,
    VendorRotatesCertificate,
)
from shared.domain.model import (
    AppRegistration,
    CredentialType,
    IntegrationProfile,
    NewPassword,
    PasswordPolicy,
    SecretKind,
    StoredCertificate,
    StoredSecret,
)
from shared.domain.ports import Directory, Locks, TenantAccess, Vault
from shared.domain.registry import MAX_TAGS, PROBLEM_TAGS, ProblemRecord, Tag, iso, parse_iso
from shared.domain.retry import Clock
from shared.settings import Settings
from shared.usecases.certificate_rotation import CertificateRotation
from shared.usecases.certificates import Certificates
from shared.usecases.consent import Tally, converge, resolve, wanted_grants
from shared.usecases.credentials import Credentials, known_profile
from shared.usecases.ownership import require_ours
from shared.usecases.replication import StillReplicating, within_replication
from shared.usecases.superseded import Records, SupersededCredentials

logger = logging.getLogger(__name__)
# A rotation still pending this long after its first pending run is a failure, not Entra catching up:
# replication takes seconds to minutes, and the sweep runs every few hours (README, "Rotation").
PENDING_DEADLINE = timedelta(hours=24)
POLICY_CACHE = timedelta(minutes=1)
# The `staged-by` journal tag of a credential an on-demand rotation staged (the only kind one may reuse).
STAGED_ON_DEMAND = "on-demand"


class Action(StrEnum):
    ROTATED = "rotated"
    RETIRED = "retired"  # only retirement was due
    NOTHING_DUE = "nothing-due"
    WAITING = "waiting"  # previous credential kept until the grace period ends
    BUSY = "busy"  # another run holds the registration
    PENDING = "pending"  # Entra has not caught up; the next run continues
    APP_MISSING = "app-missing"  # deleted out of band
    FAILED = "failed"
    VENDOR_EXPIRING = "vendor-expiring"  # a vendor's certificate nears its end: only the vendor can replace it


@dataclass
class RotationResult:
    tenant_id: str
    integration: str
    action: Action
    detail: str = ""
    new_key_id: str | None = None
    retired_key_ids: list[str] = field(default_factory=list)
    was_expired: bool = False
    expires: str | None = None


# The outcomes that record a problem on the credential (the fleet view's `failing`), by the problem they record,
# and those after which a recorded one is shed.
FAILURES = {Action.FAILED: "rotation-stuck", Action.APP_MISSING: "app-missing"}
SETTLED = frozenset({Action.RETIRED, Action.NOTHING_DUE, Action.WAITING, Action.VENDOR_EXPIRING})
# What a caller got wrong, not what went wrong with the registration: answered to the caller, never recorded.
NOT_ROTATION_PROBLEMS = (
    RegistrationNotFound, VendorRotatesCertificate, InvalidRequest, UnknownIntegration, TenantNotAllowed,
)  # fmt: skip


def rotation_window(settings: Settings, lifetime: timedelta) -> timedelta:
    """Rotate within the configured window, but never for more than half a credential's life:
    a policy that caps secrets below the window would otherwise make every new one due at once."""
    return min(timedelta(days=settings.rotation_window_days), lifetime / 2)


class Rotation:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        directory: Directory,
        vault: Vault,
        credentials: Credentials,
        locks: Locks,
        clock: Clock,
        now: Callable[[], datetime],
        access: TenantAccess | None = None,
        certificates: Certificates | None = None,
    ) -> None:
        self.settings = settings
        self.registry = settings.registry
        self.catalog = catalog
        self.directory = directory
        self.vault = vault
        self.credentials = credentials
        self.locks = locks
        self.clock = clock
        self.now = now
        self.access = access
        self.superseded = SupersededCredentials(self.registry, directory, vault, now)
        self.certificate_rotation = CertificateRotation(
            self, certificates or Certificates(settings, directory, vault, clock, now)
        )
        self._policies: dict[str, tuple[datetime, asyncio.Future[PasswordPolicy]]] = {}

    # --- one registration ---
    async def rotate(
        self,
        tenant: str,
        integration: str,
        *,
        force: bool = False,
        retire_now: bool = False,
        wait_seconds: float | None = None,
    ) -> RotationResult:
        """Rotate if due (or forced), then retire what the grace period allows. Safe to repeat."""
        # Validate before taking anything: the lock is a blob, and a caller naming random tenants
        # must not leave one behind per guess.
        profile = await known_profile(self.catalog, self.vault, self.registry, tenant, integration)
        if force:
            # Only an on-demand call can name a federated registration (the sweep lists none): nothing to rotate.
            ids = await self.vault.read(self.registry.secret_name(tenant, integration, SecretKind.CLIENT_ID))
            if ids is not None and ids.tags.get(Tag.CREDENTIAL_TYPE) == CredentialType.FEDERATED.value:
                return RotationResult(
                    tenant, integration, Action.NOTHING_DUE, "a federated registration holds no credential to rotate"
                )
        wait = self.settings.lock_wait_seconds if wait_seconds is None else wait_seconds
        key = self.registry.registration_key(tenant, integration)
        try:
            if self.access is not None:
                try:
                    await self.access.ensure_reachable(tenant)  # consent revoked: reported, the sweep goes on
                except OnboardingError as error:
                    # Recorded under the lock like any other problem, but only for a registration that exists: a
                    # guessed or unconsented tenant leaves no lock blob behind. One someone holds is theirs to record.
                    if not isinstance(error, NOT_ROTATION_PROBLEMS) and await self._current_record(tenant, integration):
                        with contextlib.suppress(RegistrationBusy):
                            async with self.locks.hold(key, 0):
                                await self._problem(tenant, integration, error)
                    raise
            async with self.locks.hold(key, wait):
                try:
                    result = await self._rotate(tenant, profile, force, retire_now)
                except OnboardingError as error:
                    # Under the lock: nothing else changes the record between the read and the tag update.
                    await self._problem(tenant, integration, error)
                    raise
                if result.action in FAILURES:
                    await self._problem(tenant, integration, FAILURES[result.action], announce=result.action)
                return result
        except RegistrationBusy:
            return RotationResult(tenant, integration, Action.BUSY, "another operation holds this registration")

    async def _problem(
        self, tenant: str, integration: str, problem: OnboardingError | str, announce: Action | None = None
    ) -> None:
        """A rotation ended with `problem`: recorded on the registration's current credential record (read now, under
        the caller's lock) for the fleet view, and audited as `rotation.failed`, which the alert rules watch. A
        caller's mistake is neither (the caller was told), and a stuck rotation is audited as `rotation.stuck`
        already. Never the reason a rotation fails: the rotation's own answer stands."""
        if isinstance(problem, OnboardingError):
            if isinstance(problem, NOT_ROTATION_PROBLEMS):
                return
            problem.audited = True
        kind = problem.problem_type if isinstance(problem, OnboardingError) else problem
        current = await self._current_record(tenant, integration)
        failures = 1
        if current is not None:
            try:
                failures = await self._mark(current, kind)
            except OnboardingError as error:
                logger.warning("could not record the rotation problem of %s/%s: %s", tenant, integration, error)
        if announce is Action.FAILED:
            return  # rotation.stuck said it (one alert, one event)
        audit(
            "rotation.failed", {"tenantId": tenant, "integration": integration},
            outcome="failed", problemType=kind, failures=str(failures),
        )  # fmt: skip

    async def _current_record(self, tenant: str, integration: str) -> StoredSecret | StoredCertificate | None:
        """The registration's current credential record, read now (None: none, or none could be read)."""
        found = await asyncio.gather(
            self.vault.read(self.registry.secret_name(tenant, integration, SecretKind.VENDOR_CERTIFICATE)),
            self.vault.read_certificate(self.registry.certificate_name(tenant, integration)),
            self.vault.read(self.registry.secret_name(tenant, integration, SecretKind.CLIENT_SECRET)),
            return_exceptions=True,
        )
        for record in found:
            if isinstance(record, StoredSecret | StoredCertificate) and Records.current(record):
                return record
        return None

    async def _mark(self, record: StoredSecret | StoredCertificate, problem: str | None) -> int:
        """Set (or, with None, shed) the problem record on a credential record's current version; the failures in
        a row it now counts."""
        tags = {k: v for k, v in record.tags.items() if k not in PROBLEM_TAGS}
        failures = 0
        if problem is not None:
            before = ProblemRecord.parse(record.tags.get(Tag.LAST_PROBLEM))
            failures = before.failures + 1 if before is not None else 1
            tags[Tag.LAST_PROBLEM] = ProblemRecord(problem, self.now(), failures).tag()
            if len(tags) > MAX_TAGS:  # a rotation's journal at its fullest: the problem shows in the logs only
                logger.warning("no room for the problem tag on %s (%d tags)", record.name, len(tags))
                return failures
        elif tags == dict(record.tags):
            return failures
        if isinstance(record, StoredCertificate):
            await self.vault.update_certificate_tags(record.name, record.version, tags)
        else:
            await self.vault.update_tags(record.name, record.version, tags)
        return failures

    async def _rotate(self, tenant: str, profile: IntegrationProfile, force: bool, retire_now: bool) -> RotationResult:
        integration = profile.id
        context = {"tenantId": tenant, "integration": integration}
        name = self.registry.secret_name(tenant, integration, SecretKind.CLIENT_SECRET)
        # The reads at once: one round trip instead of three for every registration a sweep acts on.
        # The value is not read: rotation needs the version and its tags, never the secret itself.
        stored, certificate, vendor, app = await asyncio.gather(
            self.vault.read(name),
            self.vault.read_certificate(self.registry.certificate_name(tenant, integration)),
            self.vault.read(self.registry.secret_name(tenant, integration, SecretKind.VENDOR_CERTIFICATE)),
            self.directory.find_application(tenant, self.registry.unique_name(integration)),
        )
        if stored is None and certificate is None and vendor is None:
            raise RegistrationNotFound("No stored credential: onboard this integration first.", **context)
        result = await self._rotate_records(tenant, profile, force, retire_now, stored, certificate, vendor, app)
        # A rotation that ends well sheds the problem an earlier one recorded (a new version never inherits it).
        flagged = next(
            (r for r in (vendor, certificate, stored) if Records.current(r) and r and Tag.LAST_PROBLEM in r.tags), None
        )
        if flagged is not None and result.action in SETTLED:
            # Read again: the run may have changed this version's tags (retirement drops `retire-after`).
            fresh = (
                await self.vault.read_certificate(flagged.name)
                if isinstance(flagged, StoredCertificate)
                else await self.vault.read(flagged.name)
            )
            if fresh is not None and fresh.version == flagged.version:
                await self._mark(fresh, None)
        return result

    async def _rotate_records(
        self,
        tenant: str,
        profile: IntegrationProfile,
        force: bool,
        retire_now: bool,
        stored: StoredSecret | None,
        certificate: StoredCertificate | None,
        vendor: StoredSecret | None,
        app: AppRegistration | None,
    ) -> RotationResult:
        integration = profile.id
        context = {"tenantId": tenant, "integration": integration}
        if app is None:
            logger.error("app registration for %s/%s is gone (deleted out of band)", tenant, integration)
            return RotationResult(tenant, integration, Action.APP_MISSING, "the app registration no longer exists")
        # What a switch of credential type left behind goes once its grace period is over (superseded.py).
        records = Records(stored, certificate, vendor)
        retired = await self.superseded.retire(tenant, app, records, retire_now, context)
        if retired:
            app = replace(
                app,
                passwords=tuple(p for p in app.passwords if p.key_id not in retired),
                keys=tuple(k for k in app.keys if k.key_id not in retired),
            )
        if Records.current(vendor):
            assert vendor is not None
            result = await self.certificate_rotation.report_vendor(tenant, app, vendor, force, retire_now, context)
        elif Records.current(certificate) and not Records.current(stored):
            assert certificate is not None
            result = await self.certificate_rotation.rotate(
                tenant, app, certificate, profile, force, retire_now, context
            )
        elif stored is None or not Records.current(stored):
            return RotationResult(
                tenant, integration, Action.RETIRED if retired else Action.NOTHING_DUE, retired_key_ids=retired
            )
        else:
            return await self._rotate_secret_registration(
                tenant, profile, app, stored, force, retire_now, context, retired
            )
        result.retired_key_ids = [*retired, *result.retired_key_ids]
        if result.action is Action.NOTHING_DUE and retired:
            result.action = Action.RETIRED
        return result

    async def _rotate_secret_registration(
        self,
        tenant: str,
        profile: IntegrationProfile,
        app: AppRegistration,
        stored: StoredSecret,
        force: bool,
        retire_now: bool,
        context: dict[str, str],
        retired_before: list[str],
    ) -> RotationResult:
        integration = profile.id
        name = stored.name
        stored, app = await self._clear_journal(tenant, app, stored, context)

        current = next((p for p in app.passwords if p.key_id == stored.tags.get(Tag.KEY_ID)), None)
        now = self.now()
        expired = current is None or current.end <= now
        staged = bool(stored.tags.get(Tag.STAGED))  # a rotation an earlier run began: finish it
        due = (
            force
            or staged
            or expired
            or current is None
            or current.end - now <= self._window(current.end - current.start)
        )
        result = RotationResult(tenant, integration, Action.NOTHING_DUE, was_expired=expired)
        if expired:
            logger.error(
                "the stored credential of %s/%s is %s: rotating now", tenant, integration,
                "missing from the app" if current is None else f"expired since {iso(current.end)}",
            )  # fmt: skip
        if due:
            try:
                # The grants first: a permission revoked by hand (or added to the profile since) would fail
                # the new secret's proof on every run until the stored one expired.
                if profile.in_catalog:  # one that left it keeps its credential alive and its grants as they are
                    await self._converge_consent(tenant, app, stored, profile, context)
                stored = await self._rotate_secret(tenant, app, stored, profile, force, retire_now, context)
            except StillReplicating as pending:
                # The journal as this run left it (a staged credential), for the pending stamp to keep.
                stored = await self.vault.read(name) or stored
                return await self._still_pending(result, stored, pending, context)
            # No need to read the app again: retiring looks only at the credentials other than the new
            # one, and those are the ones just read (this run holds the registration's lock).
            result.action, result.new_key_id = Action.ROTATED, stored.tags.get(Tag.KEY_ID)
        retired, waiting = await self._retire(tenant, app, stored, retire_now, context)
        retired = [*retired_before, *retired]
        result.retired_key_ids = retired
        if result.action is Action.NOTHING_DUE and retired:
            result.action = Action.RETIRED
        elif result.action is Action.NOTHING_DUE and waiting:
            result.action = Action.WAITING
        result.expires = iso(stored.expires) if stored.expires else None
        return result

    async def _converge_consent(
        self, tenant: str, app: AppRegistration, stored: StoredSecret, profile: IntegrationProfile,
        context: dict[str, str],
    ) -> None:  # fmt: skip
        """Grant what the profile has and the app's principal lacks, revoke what it holds beyond the profile,
        on an app proven this service's alone (shared/usecases/ownership.py); a named error where it cannot."""
        stored_secrets: dict[SecretKind, StoredSecret | None] = {SecretKind.CLIENT_SECRET: stored}
        await require_ours(self.directory, tenant, app, stored_secrets, self.registry.credential_prefix, context)
        apis = await resolve(self.directory, tenant, profile)
        deadline = self.settings.replication_timeout_seconds
        sp_id, created = await within_replication(
            "service principal", lambda: self.directory.upsert_service_principal(tenant, app.app_id),
            deadline_seconds=deadline, clock=self.clock,
        )  # fmt: skip
        await converge(
            self.directory, tenant, sp_id, wanted_grants(profile, apis), context,
            principal_is_new=created, deadline_seconds=deadline, clock=self.clock, tally=Tally(),
        )  # fmt: skip

    async def _still_pending(
        self,
        result: RotationResult,
        stored: StoredSecret,
        pending: StillReplicating,
        context: dict[str, str],
        set_tags: Callable[[StoredSecret, dict[str, str]], Awaitable[None]] | None = None,
    ) -> RotationResult:
        """Pending once is Entra catching up; pending for longer than PENDING_DEADLINE is a failure.

        The first pending run stamps `pending-since` on the stored version; a run that finds the stamp
        older than the deadline reports FAILED (counted in the sweep's failures, logged, audited) and
        keeps trying on later runs. A successful rotation writes a new version without the stamp."""
        now = self.now()
        since = parse_iso(stored.tags.get(Tag.PENDING_SINCE))
        if since is None:
            with contextlib.suppress(OnboardingError):
                await (set_tags or self._set_tags)(stored, dict(stored.tags) | {Tag.PENDING_SINCE: iso(now)})
            since = now
        result.action, result.detail = Action.PENDING, pending.reason
        if now - since >= PENDING_DEADLINE:
            result.action = Action.FAILED
            result.detail = f"pending since {iso(since)}: {pending.reason}"
            logger.error(
                "rotation of %s/%s has been pending since %s: %s",
                result.tenant_id, result.integration, iso(since), pending.reason,
            )  # fmt: skip
            audit("rotation.stuck", context, pendingSince=iso(since), step=pending.step)
        return result

    def _requested_days(self, stored: StoredSecret) -> int:
        """The lifetime the onboarding caller asked for (the `lifetime-days` tag), within this deployment's
        bounds; the configured default for a registration onboarded before the tag existed."""
        raw = stored.tags.get(Tag.LIFETIME_DAYS, "")
        days = int(raw) if raw.isascii() and raw.isdigit() else self.settings.secret_lifetime_days
        return max(1, min(days, self.settings.max_secret_lifetime_days))

    async def _password_policy(self, tenant: str) -> PasswordPolicy:
        """The tenant's policy, read at most once a minute per tenant: a sweep rotating hundreds of
        registrations in one tenant would otherwise read the same policy before every one.

        A policy tightened within that minute is still enforced: addPassword refuses the secret
        (SecretsForbiddenByPolicy, SecretLifetimeExceedsPolicy), the journal is cleared on the next
        run, and that run reads the new policy."""
        now = self.now()
        cached = self._policies.get(tenant)
        if cached is not None and timedelta(0) <= now - cached[0] < POLICY_CACHE:
            return await cached[1]
        pending = asyncio.ensure_future(self.directory.password_policy(tenant))
        self._policies[tenant] = (now, pending)  # concurrent rotations share one read
        try:
            return await pending
        except BaseException:
            if tenant in self._policies and self._policies[tenant][1] is pending:
                del self._policies[tenant]  # never cache a failure
            raise

    def _window(self, lifetime: timedelta) -> timedelta:
        return rotation_window(self.settings, lifetime)

    async def _clear_journal(
        self, tenant: str, app: AppRegistration, stored: StoredSecret, context: dict[str, str]
    ) -> tuple[StoredSecret, AppRegistration]:
        """A `pending` tag means a previous run died between minting and storing: remove that secret.

        Returns the secret without the tag and the app without the removed credential."""
        pending = stored.tags.get(Tag.PENDING)
        if not pending:
            return stored, app
        removed = set()
        for password in app.passwords:
            if password.display_name == pending and password.key_id != stored.tags.get(Tag.KEY_ID):
                await self.directory.remove_password(tenant, app.object_id, password.key_id)
                removed.add(password.key_id)
                audit("secret.removed", context, appObjectId=app.object_id, keyId=password.key_id, reason="journal")
        tags = {k: v for k, v in stored.tags.items() if k != Tag.PENDING}
        await self.vault.update_tags(stored.name, stored.version, tags)
        remaining = tuple(p for p in app.passwords if p.key_id not in removed)
        return StoredSecret(stored.name, stored.version, stored.uri, tags, stored.expires, stored.value), replace(
            app, passwords=remaining
        )

    async def _rotate_secret(
        self,
        tenant: str,
        app: AppRegistration,
        stored: StoredSecret,
        profile: IntegrationProfile,
        force: bool,
        retire_now: bool,
        context: dict[str, str],
    ) -> StoredSecret:
        new, stored = await self._staged_or_new(tenant, app, stored, force, context)
        try:
            await self.credentials.prove(tenant, app.app_id, new.secret, profile)
        except (StillReplicating, UpstreamUnavailable, UpstreamTimeout):
            # Entra has not caught up with the new secret (minutes, in some tenants), or its token endpoint
            # did not answer: the secret stays staged, on the app and in the staging secret, and the next run
            # proves it again instead of minting another.
            raise
        except Exception:
            # Refused for good: never store an unproven secret as the latest version (consumers would switch
            # to it). Take it off the app and out of staging, and drop the journal.
            await self._discard_staged(tenant, app, stored, new.info.key_id, context)
            raise
        # Out of staging before it becomes the latest version, so no second copy of a live secret can outlive
        # the promotion. A failure here stops this run with the secret still staged; a crash after it leaves
        # a journal naming a credential with no staging secret, which the next run discards and replaces.
        if await self.vault.delete(self._staging_name(stored)):
            audit("secret.deleted", context, secretName=self._staging_name(stored), reason="promoted")
        now = self.now()
        grace = timedelta(0) if retire_now else timedelta(hours=self.settings.rotation_grace_hours)
        journal = (Tag.PENDING, Tag.STAGED, Tag.STAGED_BY, Tag.RETIRE_AFTER, Tag.PENDING_SINCE, *PROBLEM_TAGS)
        tags = {k: v for k, v in stored.tags.items() if k not in journal} | {
            Tag.KEY_ID: new.info.key_id,
            Tag.PREVIOUS_KEY_ID: str(stored.tags.get(Tag.KEY_ID, "")),
            Tag.VERIFIED: Tag.TRUE,
            Tag.ISSUED_AT: iso(now),
            Tag.ROTATED_AT: iso(now),
            Tag.RETIRE_AFTER: iso(now + grace),
        }
        # A write that did not land leaves the credential on the app and the journal in place (store() reads
        # back what landed); the next run finds no staging secret, discards it and rotates afresh.
        written = await self.credentials.store(tenant, app, stored.name, new, tags, context, remove_if_lost=False)
        # The journal has done its job: the credential it names is now the stored one.
        with contextlib.suppress(Exception):
            await self.vault.update_tags(
                stored.name,
                stored.version,
                {k: v for k, v in stored.tags.items() if k not in (Tag.PENDING, Tag.STAGED, Tag.STAGED_BY)},
            )
        audit(
            "secret.rotated",
            context,
            secretName=stored.name,
            version=written.version,
            end=iso(new.info.end),
            keyId=new.info.key_id,
            previousKeyId=tags[Tag.PREVIOUS_KEY_ID],
        )
        return written

    def _staging_name(self, stored: StoredSecret) -> str:
        return self.registry.staging_secret_name(stored.tags[Tag.TENANT_ID], stored.tags[Tag.INTEGRATION])

    async def _staged_or_new(
        self, tenant: str, app: AppRegistration, stored: StoredSecret, force: bool, context: dict[str, str]
    ) -> tuple[NewPassword, StoredSecret]:
        """The credential an earlier run staged, if it is still on the app and in staging; else a new one, minted
        and staged before anything else can fail. Returns it and the stored version with the journal as written.

        An on-demand rotation (after a suspected leak) reuses only a credential an on-demand rotation staged: one
        staged earlier by the sweep was minted before the request and may be what leaked."""
        key_id = stored.tags.get(Tag.STAGED)
        if key_id:
            on_app = next((p for p in app.passwords if p.key_id == key_id), None)
            staging = await self.vault.read(self._staging_name(stored), with_value=True)
            if (
                on_app is not None
                and on_app.end > self.now()
                and staging is not None
                and staging.value is not None
                and staging.tags.get(Tag.KEY_ID) == key_id
                and (not force or stored.tags.get(Tag.STAGED_BY) == STAGED_ON_DEMAND)
            ):
                return NewPassword(on_app, staging.value), stored
            # Lost (removed from the app, staging deleted, expired), or not fresh enough for this request.
            await self._discard_staged(tenant, app, stored, key_id, context)
            stored = replace(
                stored, tags={k: v for k, v in stored.tags.items() if k not in (Tag.STAGED, Tag.STAGED_BY)}
            )
        # Only a new secret needs the policy's leave: promoting a staged one adds nothing to the app.
        policy = (await self._password_policy(tenant)).for_app_created(app.created)
        if not policy.additions_allowed:
            raise SecretsForbiddenByPolicy(
                "The tenant's app management policy no longer allows client secrets.",
                policyId=policy.policy_id,
                **context,
            )
        days = float(self._requested_days(stored))
        if policy.max_lifetime_days is not None:
            days = min(days, policy.max_lifetime_days)  # a policy lowered since onboarding
        display_name = self.registry.new_credential_name()
        # Journal first: if this process dies after minting, the next run knows what to remove.
        await self.vault.update_tags(stored.name, stored.version, dict(stored.tags) | {Tag.PENDING: display_name})
        new = await self.credentials.mint(tenant, app, self.now() + timedelta(days=days), context, display_name)
        staging_tags = self.registry.tags(
            tenant, str(stored.tags.get(Tag.INTEGRATION)), SecretKind.CLIENT_SECRET, app.object_id, app.app_id
        ) | {Tag.KIND: Tag.STAGED_KIND, Tag.KEY_ID: new.info.key_id, Tag.ISSUED_AT: iso(self.now())}
        # Stored before it is proven, as onboarding stores first: a secret whose text exists only in this
        # process is the one thing a crash could lose. store() takes it off the app if it cannot be stored;
        # then the journal goes too. If store() could not tell (its read-back failed too), the credential may
        # still be on the app: the `pending` journal stays, and the next run removes it by its name.
        try:
            await self.credentials.store(tenant, app, self._staging_name(stored), new, staging_tags, context)
        except Exception:
            with contextlib.suppress(Exception):
                current = await self.directory.find_application(tenant, app.unique_name)
                if current is not None and all(p.key_id != new.info.key_id for p in current.passwords):
                    await self.vault.update_tags(stored.name, stored.version, dict(stored.tags))
            raise
        staged_by = {Tag.STAGED_BY: STAGED_ON_DEMAND} if force else {}
        journal = (
            {k: v for k, v in stored.tags.items() if k not in (Tag.PENDING, Tag.STAGED_BY)}
            | {Tag.STAGED: new.info.key_id}
            | staged_by
        )
        await self.vault.update_tags(stored.name, stored.version, journal)
        return new, replace(stored, tags=journal)

    async def _discard_staged(
        self, tenant: str, app: AppRegistration, stored: StoredSecret, key_id: str, context: dict[str, str]
    ) -> None:
        """Take a staged credential off the app and out of staging, and drop it from the journal."""
        if await self.directory.remove_password(tenant, app.object_id, key_id):
            audit("secret.removed", context, appObjectId=app.object_id, keyId=key_id, reason="unproven")
        if await self.vault.delete(self._staging_name(stored)):
            audit("secret.deleted", context, secretName=self._staging_name(stored), reason="unproven")
        await self.vault.update_tags(
            stored.name,
            stored.version,
            {k: v for k, v in stored.tags.items() if k not in (Tag.PENDING, Tag.STAGED, Tag.STAGED_BY)},
        )

    async def _retire(
        self, tenant: str, app: AppRegistration, latest: StoredSecret, retire_now: bool, context: dict[str, str]
    ) -> tuple[list[str], bool]:
        """Remove our superseded credentials once the grace period has passed; (removed, still waiting)."""
        keep = latest.tags.get(Tag.KEY_ID)
        ours = [p for p in app.passwords if self.registry.issued_here(p.display_name) and p.key_id != keep]
        if not ours:
            if Tag.RETIRE_AFTER in latest.tags:
                await self._set_tags(latest, {k: v for k, v in latest.tags.items() if k != Tag.RETIRE_AFTER})
            return [], False
        now = self.now()
        retire_after = parse_iso(latest.tags.get(Tag.RETIRE_AFTER))
        if retire_after is None:
            # Superseded credentials with no clock running (e.g. a rotation that crashed after storing):
            # start the grace period now rather than cut anyone off.
            await self._set_tags(
                latest,
                dict(latest.tags) | {Tag.RETIRE_AFTER: iso(now + timedelta(hours=self.settings.rotation_grace_hours))},
            )
            return [], True
        if now < retire_after and not retire_now:
            return [], True
        stored_ids = await self.vault.stored_key_ids(latest.name)
        orphan_cutoff = now - timedelta(minutes=self.settings.orphan_grace_minutes)
        removed: list[str] = []
        for password in ours:
            issued_here = password.key_id in stored_ids or password.start <= orphan_cutoff
            if not issued_here:
                continue  # too young to call an orphan: it may belong to a request in flight
            if await self.directory.remove_password(tenant, app.object_id, password.key_id):
                removed.append(password.key_id)
                audit("secret.retired", context, appObjectId=app.object_id, keyId=password.key_id)
        if len(removed) == len(ours):
            await self._set_tags(latest, {k: v for k, v in latest.tags.items() if k != Tag.RETIRE_AFTER})
        return removed, len(removed) != len(ours)

    async def _set_tags(self, stored: StoredSecret, tags: dict[str, str]) -> None:
        await self.vault.update_tags(stored.name, stored.version, tags)
