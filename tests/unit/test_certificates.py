"""Certificate credentials through the fakes: onboarding, idempotence, crash recovery, policy, the switch from a
client secret, status and drift, offboarding, ownership; and the fakes' own certificate behaviour."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from shared.adapters.x509 import certificate_key, public_certificate
from shared.domain.catalog import Catalog
from shared.domain.errors import CertificatesRefusedByPolicy, InvalidRequest, NotOwned, UpstreamError
from shared.domain.model import (
    CertificateKey,
    CredentialType,
    KeyInfo,
    NewKey,
    PasswordPolicy,
    PublicCertificate,
    Secret,
    SecretKind,
)
from shared.domain.ports import NotReplicatedYet
from shared.domain.registry import iso
from shared.entrypoints.presenters import registration_json
from shared.usecases.offboarding import Offboarding
from shared.usecases.onboarding import OnboardRequest, Outcome
from tests.fakes import (
    SERVICE_OBJECT_ID,
    START,
    TENANT,
    FakeApp,
    FakeKey,
    Harness,
    make_onboarding,
    resource_object_id,
    role_id,
    self_signed,
)

M365 = "m365-defender"
CERTIFICATE = OnboardRequest(TENANT, M365, credential_type=CredentialType.CERTIFICATE)
SECRET = OnboardRequest(TENANT, M365)


class Crash(RuntimeError):
    """The process died at this point: an exception nothing in the use case handles."""


# --- helpers ----------------------------------------------------------------------------------


def certificate_name(h: Harness) -> str:
    return h.onboarding.registry.certificate_name(TENANT, M365)


def secret_name(h: Harness, kind: SecretKind) -> str:
    return h.onboarding.registry.secret_name(TENANT, M365, kind)


def the_app(h: Harness) -> FakeApp:
    app = h.directory.app(TENANT, h.onboarding.registry.unique_name(M365))
    assert app is not None
    assert len(h.directory.apps(TENANT)) == 1
    return app


def stored_certificate(h: Harness) -> PublicCertificate:
    latest = h.vault.latest_certificate(certificate_name(h))
    assert latest is not None
    return public_certificate(latest.der)


def wanted_grants(h: Harness) -> set[tuple[str, str]]:
    profile = h.onboarding.catalog.require(M365)
    return {
        (resource_object_id(TENANT, p.resource_app_id), role_id(p.resource_app_id, role))
        for p in profile.permissions
        for role in p.roles
    }


def assert_converged_on_certificate(h: Harness) -> FakeApp:
    """One app with the profile's grants, one Key Vault certificate (one version, verified), exactly one key
    credential on the app (the stored certificate's, under its derived keyId), no client secret anywhere, and
    Client ID and Tenant ID stored tagged with the credential type."""
    app = the_app(h)
    principal = h.directory.service_principal_of(TENANT, app.app_id)
    assert principal is not None and h.directory.granted(TENANT, principal) == wanted_grants(h)
    name = certificate_name(h)
    assert list(h.vault.certificates) == [name] and h.vault.certificate_version_count(name) == 1
    latest = h.vault.latest_certificate(name)
    assert latest is not None and latest.tags["verified"] == "true"
    certificate = public_certificate(latest.der)
    key_id = h.onboarding.registry.key_credential_id(certificate.thumbprint_sha256)
    assert list(app.keys) == [key_id]
    assert app.keys[key_id].der == latest.der
    assert app.passwords == {} and h.directory.calls["add_password"] == 0
    assert h.vault.latest(secret_name(h, SecretKind.CLIENT_SECRET)) is None
    for kind, value in ((SecretKind.CLIENT_ID, app.app_id), (SecretKind.TENANT_ID, TENANT)):
        stored = h.vault.latest(secret_name(h, kind))
        assert stored is not None and stored.value == value
        assert stored.tags["credential-type"] == "certificate"
    return app


def key_id_of(h: Harness, certificate: PublicCertificate) -> str:
    return h.onboarding.registry.key_credential_id(certificate.thumbprint_sha256)


# --- first and repeated PUT -------------------------------------------------------------------


async def test_a_certificate_onboarding_creates_one_certificate_puts_one_key_on_the_app_and_proves_it() -> None:
    h = make_onboarding()

    result = await h.onboarding.onboard(CERTIFICATE)

    assert result.outcome is Outcome.CREATED
    app = assert_converged_on_certificate(h)
    assert h.vault.calls["create_certificate"] == 1 and h.directory.calls["add_key"] == 1
    name = certificate_name(h)
    create = h.vault.calls_of("create_certificate")[0]
    assert create["name"] == name and create["subject"] == f"CN={M365}.{TENANT}" and create["validity_months"] == 12
    certificate = stored_certificate(h)
    assert certificate.not_before == START and certificate.not_after == START.replace(year=2026)
    key = app.keys[key_id_of(h, certificate)].info
    assert key.thumbprint == certificate.thumbprint_sha1  # Graph's customKeyIdentifier: the SHA-1, upper hex
    assert h.onboarding.registry.issued_here(key.display_name)
    assert (key.start, key.end) == (certificate.not_before, certificate.not_after)
    # Proven: a token signed with the new key, for each resource API of the profile, held every granted role.
    profile = h.onboarding.catalog.require(M365)
    assert h.checker.calls["granted_roles"] == len(profile.permissions) and h.checker.rejected == 0
    latest = h.vault.latest_certificate(name)
    assert latest is not None
    assert latest.tags == {
        "managed-by": h.onboarding.settings.name_prefix,
        "tenant-id": TENANT,
        "integration": M365,
        "kind": "client-certificate",
        "app-object-id": app.object_id,
        "client-id": app.app_id,
        "verified": "true",
        "issued-at": iso(START),
    }
    # What downstream services read through the reference: the backing secret, PKCS#12 of this very certificate.
    backing = await h.vault.read(name, with_value=True)
    assert backing is not None and backing.value is not None
    assert certificate_key(backing.value.reveal()).certificate == certificate

    registration = result.registration
    assert registration.credential.type is CredentialType.CERTIFICATE
    assert registration.credential.thumbprint == certificate.thumbprint_sha256
    assert registration.credential.key_id == key_id_of(h, certificate) and registration.credential.verified
    assert registration.references.client_certificate == h.vault.reference(name)
    assert registration.references.client_secret is None
    assert registration.drift == []
    assert result.changes == [
        "application created",
        "service principal created",
        f"{len(wanted_grants(h))} permissions granted",
        "client certificate created",
        "client certificate added to the application",
        "client and tenant ids stored",
    ]


async def test_a_repeated_certificate_put_changes_nothing() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(CERTIFICATE)
    versions, certificates = h.vault.version_counts(), dict(h.vault.certificates)
    writes = {op: h.vault.calls[op] for op in ("write", "create_certificate", "update_certificate_tags")}

    again = await h.onboarding.onboard(CERTIFICATE)

    assert again.outcome is Outcome.COMPLETE and again.changes == []
    assert_converged_on_certificate(h)
    assert h.vault.version_counts() == versions and h.vault.certificates == certificates
    assert {op: h.vault.calls[op] for op in writes} == writes
    assert h.directory.calls["add_key"] == 1 and h.directory.calls["upsert_application"] == 1
    assert again.registration.credential.type is CredentialType.CERTIFICATE


# --- crashes and lost answers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fake", "kind", "operation"),
    [
        pytest.param("vault", "fail_after", "create_certificate", id="crash-after-the-certificate-is-created"),
        pytest.param("directory", "fail_next", "add_key", id="add-key-refused"),
        pytest.param("directory", "fail_after", "add_key", id="crash-after-add-key"),
        pytest.param("checker", "fail_next", "granted_roles", id="crash-before-the-proof"),
        pytest.param("vault", "fail_after", "update_certificate_tags", id="crash-after-marking-it-verified"),
        pytest.param("vault", "fail_next", "write", id="crash-before-the-ids-are-written"),
    ],
)
async def test_a_certificate_put_that_died_at_any_step_is_finished_by_the_next_put_with_one_key(
    fake: str, kind: str, operation: str
) -> None:
    h = make_onboarding()
    getattr(getattr(h, fake), kind)(operation, Crash(f"died at {operation}"))

    with pytest.raises(Crash):
        await h.onboarding.onboard(CERTIFICATE)
    result = await h.onboarding.onboard(CERTIFICATE)

    assert result.outcome in (Outcome.UPDATED, Outcome.COMPLETE)
    assert_converged_on_certificate(h)
    assert h.vault.calls["create_certificate"] == 1  # the certificate Key Vault made is the one that goes on
    assert result.registration.credential.verified and result.registration.drift == []


async def test_a_lost_add_key_answer_converges_on_one_key_credential() -> None:
    """Graph carried out the PATCH and the answer was lost: the retry finds the key under its derived keyId."""
    h = make_onboarding()
    h.directory.fail_after(
        "add_key", UpstreamError("Graph's answer was lost", "graph", 503, None), when=lambda call: True
    )

    with pytest.raises(UpstreamError):
        await h.onboarding.onboard(CERTIFICATE)
    app = the_app(h)
    assert len(app.keys) == 1  # it landed

    result = await h.onboarding.onboard(CERTIFICATE)

    assert result.outcome is Outcome.UPDATED
    assert_converged_on_certificate(h)
    assert h.directory.calls["add_key"] == 1  # found on the app: not sent again
    assert h.directory.unfired() == []


async def test_a_certificate_still_replicating_to_the_token_service_is_pending_and_the_next_put_proves_it() -> None:
    h = make_onboarding(VERIFY_TIMEOUT_SECONDS=20)
    h.checker.not_replicated_for(10**9)

    pending = await h.onboarding.onboard(CERTIFICATE)

    assert pending.outcome is Outcome.PENDING
    assert pending.pending_reason is not None and "new credential" in pending.pending_reason
    assert h.vault.latest(secret_name(h, SecretKind.CLIENT_ID)) is None  # ids only once proven
    h.checker.not_replicated_for(0)

    done = await h.onboarding.onboard(CERTIFICATE)

    assert done.outcome is Outcome.UPDATED
    assert_converged_on_certificate(h)
    assert h.vault.calls["create_certificate"] == 1 and h.directory.calls["add_key"] == 1


async def test_replication_of_the_new_key_within_the_timeout_is_waited_out() -> None:
    h = make_onboarding()
    h.checker.not_replicated_for(2)

    result = await h.onboarding.onboard(CERTIFICATE)

    assert result.outcome is Outcome.CREATED
    assert_converged_on_certificate(h)


# --- policy -----------------------------------------------------------------------------------


async def test_a_tenant_that_forbids_client_secrets_is_onboarded_with_a_certificate() -> None:
    h = make_onboarding()
    h.directory.set_policy(TENANT, PasswordPolicy(additions_allowed=False, policy_id="no-secrets"))

    result = await h.onboarding.onboard(CERTIFICATE)

    assert result.outcome is Outcome.CREATED
    assert_converged_on_certificate(h)


async def test_a_policy_capping_certificates_under_a_month_is_refused_by_name_before_anything_is_created() -> None:
    h = make_onboarding()
    h.directory.set_policy(TENANT, PasswordPolicy(certificate_max_lifetime_days=30, policy_id="short-keys"))

    with pytest.raises(CertificatesRefusedByPolicy) as refused:
        await h.onboarding.onboard(CERTIFICATE)

    assert refused.value.problem_type == "certificates-refused-by-policy" and refused.value.status == 409
    assert refused.value.extensions["policyId"] == "short-keys"
    assert h.directory.apps(TENANT) == [] and not h.vault.certificates and not h.vault.versions


async def test_a_policy_cap_of_some_months_shortens_the_certificate_to_fit() -> None:
    h = make_onboarding()
    h.directory.set_policy(TENANT, PasswordPolicy(certificate_max_lifetime_days=90))

    result = await h.onboarding.onboard(CERTIFICATE)

    assert result.outcome is Outcome.CREATED
    assert_converged_on_certificate(h)
    assert h.vault.calls_of("create_certificate")[0]["validity_months"] == 2  # 90 days hold two 31-day months
    certificate = stored_certificate(h)
    assert certificate.not_after - certificate.not_before <= timedelta(days=90)


async def test_the_fake_directory_refuses_a_certificate_longer_than_the_policy_allows() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(SECRET)
    app = the_app(h)
    h.directory.set_policy(TENANT, PasswordPolicy(certificate_max_lifetime_days=30))
    issued = self_signed("CN=too-long", START, START + timedelta(days=31))
    certificate = public_certificate(issued.der)
    new = NewKey(key_id_of(h, certificate), "tenant-onboarding-x", certificate)

    with pytest.raises(CertificatesRefusedByPolicy):
        await h.directory.add_key(TENANT, app.object_id, new)

    assert app.keys == {}


# --- what the caller may choose ---------------------------------------------------------------


async def test_a_credential_type_the_integration_does_not_offer_is_an_invalid_request() -> None:
    h = make_onboarding()
    catalog = h.onboarding.catalog
    secrets_only = {p.id: replace(p, credential_types=(CredentialType.SECRET,)) if p.id == M365 else p for p in catalog}
    h.onboarding.catalog = Catalog(secrets_only, catalog.allowed_permissions)

    with pytest.raises(InvalidRequest) as refused:
        await h.onboarding.onboard(CERTIFICATE)

    assert refused.value.field == "credentialType" and refused.value.status == 400
    assert h.directory.apps(TENANT) == [] and not h.vault.certificates and not h.vault.versions


async def test_without_a_credential_type_the_catalogs_default_is_used() -> None:
    h = make_onboarding()

    result = await h.onboarding.onboard(SECRET)

    assert result.registration.credential.type is CredentialType.SECRET
    assert not h.vault.certificates and the_app(h).keys == {}


# --- switching a secret registration to a certificate -----------------------------------------


async def test_switching_a_secret_registration_to_a_certificate_keeps_the_secret_through_the_grace_period() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(SECRET)
    secret = h.vault.latest(secret_name(h, SecretKind.CLIENT_SECRET))
    assert secret is not None
    h.clock.advance(minutes=5)

    switched = await h.onboarding.onboard(CERTIFICATE)

    assert switched.outcome is Outcome.UPDATED
    assert "1 previous credential(s) superseded (removed after the grace period)" in switched.changes
    app = the_app(h)
    # No gap: the secret consumers still read stays stored and keeps working until rotation retires it.
    kept = h.vault.latest(secret_name(h, SecretKind.CLIENT_SECRET))
    assert kept is not None and kept.version == secret.version and kept.value == secret.value
    grace = timedelta(hours=h.onboarding.settings.rotation_grace_hours)
    assert kept.tags == dict(secret.tags) | {
        "superseded-by": "certificate",
        "retire-after": iso(h.clock.now() + grace),
    }
    assert list(app.passwords) == [secret.tags["key-id"]]
    assert h.directory.is_current_password(TENANT, app.app_id, secret.value)
    certificate = stored_certificate(h)
    assert list(app.keys) == [key_id_of(h, certificate)]
    for kind in (SecretKind.CLIENT_ID, SecretKind.TENANT_ID):
        stored = h.vault.latest(secret_name(h, kind))
        assert stored is not None and stored.tags["credential-type"] == "certificate"
    registration = switched.registration
    assert registration.credential.type is CredentialType.CERTIFICATE
    assert registration.credential.other_credentials_on_app == 1  # the superseded secret, until retired

    again = await h.onboarding.onboard(CERTIFICATE)

    assert again.outcome is Outcome.COMPLETE
    still = h.vault.latest(secret_name(h, SecretKind.CLIENT_SECRET))
    assert still is not None and still.tags == kept.tags  # its grace period is not restarted


# --- status and drift -------------------------------------------------------------------------


async def test_status_of_a_certificate_registration_and_its_drift_when_the_key_is_removed_out_of_band() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(CERTIFICATE)
    certificate = stored_certificate(h)
    name = certificate_name(h)

    state = await h.status.status(TENANT, M365)

    assert state.credential.type is CredentialType.CERTIFICATE
    assert state.credential.thumbprint == certificate.thumbprint_sha256
    assert state.credential.expires == certificate.not_after and state.credential.verified
    assert state.references.client_certificate == h.vault.reference(name)
    assert state.references.client_secret is None
    assert state.drift == []
    body = registration_json(state)
    assert body["credential"]["type"] == "certificate"
    assert body["credential"]["thumbprint"] == certificate.thumbprint_sha256
    assert body["keyVaultReferences"]["clientCertificate"] == h.vault.reference(name)

    app = the_app(h)
    assert await h.directory.remove_key(TENANT, app.object_id, key_id_of(h, certificate))
    assert not await h.directory.remove_key(TENANT, app.object_id, key_id_of(h, certificate))

    drifted = await h.status.status(TENANT, M365)

    assert drifted.drift == ["stored client certificate matches no certificate on the app"]

    # The next PUT puts the stored certificate back on the app (it is proven already: the same certificate).
    healed = await h.onboarding.onboard(CERTIFICATE)

    assert healed.outcome is Outcome.UPDATED
    assert healed.changes == ["client certificate added to the application"]
    assert_converged_on_certificate(h)
    assert (await h.status.status(TENANT, M365)).drift == []


async def test_status_reports_an_expired_certificate() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(CERTIFICATE)
    h.clock.advance(days=366)

    state = await h.status.status(TENANT, M365)

    assert "client certificate expired" in state.drift


# --- offboarding ------------------------------------------------------------------------------


def offboarding(h: Harness) -> Offboarding:
    o = h.onboarding
    return Offboarding(o.settings, o.catalog, h.directory, h.vault, o.locks)


async def test_offboarding_deletes_the_certificate_with_its_backing_secret_and_reports_it() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(CERTIFICATE)
    name = certificate_name(h)

    gone = await offboarding(h).offboard(TENANT, M365)

    assert gone.application == "deleted" and gone.certificates == {name: "deleted"} and gone.changed
    assert h.vault.latest_certificate(name) is None and name in h.vault.deleted_certificates
    assert await h.vault.read(name) is None  # the backing secret went with it
    assert h.directory.apps(TENANT) == []

    again = await offboarding(h).offboard(TENANT, M365)

    assert again.certificates == {} and again.application == "absent" and not again.changed


async def test_a_certificate_registration_offboarded_can_be_onboarded_again() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(CERTIFICATE)
    first = stored_certificate(h)
    await offboarding(h).offboard(TENANT, M365)

    result = await h.onboarding.onboard(CERTIFICATE)

    assert result.outcome is Outcome.CREATED
    # Key Vault recovers the soft-deleted name and creates a new version: a new certificate, a new key.
    latest = stored_certificate(h)
    assert latest.thumbprint_sha256 != first.thumbprint_sha256
    assert list(the_app(h).keys) == [key_id_of(h, latest)]
    assert result.registration.credential.verified and result.registration.drift == []


# --- ownership --------------------------------------------------------------------------------


def foreign_key(display_name: str | None) -> FakeKey:
    issued = self_signed("CN=someone-else", START, START + timedelta(days=365))
    certificate = public_certificate(issued.der)
    info = KeyInfo(
        "0c0c0c0c-0000-4000-8000-000000000002", display_name, certificate.thumbprint_sha1,
        certificate.not_before, certificate.not_after,
    )  # fmt: skip
    return FakeKey(info, issued.der)


@pytest.mark.parametrize("display_name", ["backdoor", None], ids=["other-name", "no-name"])
async def test_a_certificate_not_named_by_this_service_makes_the_app_not_owned(display_name: str | None) -> None:
    h = make_onboarding()
    await h.onboarding.onboard(CERTIFICATE)
    app = the_app(h)
    planted = foreign_key(display_name)
    app.keys[planted.info.key_id] = planted
    grants, keys = h.directory.calls["grant"], dict(app.keys)

    with pytest.raises(NotOwned) as refused:
        await h.onboarding.onboard(CERTIFICATE)

    assert "1 certificate credential(s) this service did not add" in refused.value.extensions["reasons"]
    assert h.directory.calls["grant"] == grants and app.keys == keys
    state = await h.status.status(TENANT, M365)
    assert "application not provably this service's alone: 1 certificate credential(s) this service did not add" in (
        state.drift
    )


async def test_a_certificate_named_by_this_service_on_an_app_it_owns_alone_is_ours() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(CERTIFICATE)
    app = the_app(h)
    ours = foreign_key(f"{h.onboarding.registry.credential_prefix}0123456789ab")
    app.keys[ours.info.key_id] = ours
    assert app.owners == {SERVICE_OBJECT_ID}

    result = await h.onboarding.onboard(CERTIFICATE)

    assert result.outcome is Outcome.COMPLETE


# --- the fakes' certificates ------------------------------------------------------------------


async def test_fake_checker_accepts_only_a_key_on_the_app_that_signs_for_its_certificate() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(CERTIFICATE)
    app = the_app(h)
    stored = await h.vault.read_certificate(certificate_name(h), with_key=True)
    assert stored is not None and stored.key is not None
    scope = "https://graph.microsoft.com/.default"

    assert await h.checker.granted_roles(TENANT, app.app_id, stored.key, scope)

    async def refusal(key: CertificateKey, client_id: str = app.app_id) -> str | None:
        with pytest.raises(NotReplicatedYet) as refused:
            await h.checker.granted_roles(TENANT, client_id, key, scope)
        return refused.value.code

    # A certificate that is not on the app.
    other = self_signed("CN=other", START, START + timedelta(days=30))
    assert await refusal(certificate_key(other.pkcs12_base64)) == "AADSTS700027"
    # The app's certificate with a key that is not its own (a forged bundle).
    forged = CertificateKey(stored.certificate, Secret(other.pkcs12_base64))
    assert await refusal(forged) == "AADSTS700027"
    # An app Entra does not know.
    assert await refusal(stored.key, "c0c0c0c0-0000-4000-8000-000000000009") == "AADSTS700016"
    # Still replicating, whatever the key.
    h.checker.not_replicated_for(1)
    assert await refusal(stored.key) == "AADSTS700027"
    # Expired.
    h.clock.advance(days=366)
    assert await refusal(stored.key) == "AADSTS700027"


async def test_fake_vault_certificates_share_the_secrets_namespace() -> None:
    h = make_onboarding()
    vault = h.vault
    tags = {"managed-by": h.onboarding.settings.name_prefix, "kind": "client-certificate"}
    created = await vault.create_certificate("cert", "CN=cert", 1, tags)

    assert created.key is None and created.uri == f"{vault.url}/secrets/cert"
    with pytest.raises(UpstreamError) as refused:
        await vault.write("cert", "text", "text/plain", {}, None)
    assert refused.value.upstream_status == 403
    with pytest.raises(UpstreamError):
        await vault.delete("cert")
    await vault.write("plain", "text", "text/plain", {}, None)
    with pytest.raises(UpstreamError) as taken:
        await vault.create_certificate("plain", "CN=plain", 1, tags)
    assert taken.value.upstream_status == 409

    read = await vault.read_certificate("cert", with_key=True)
    assert read is not None and read.key is not None and read.version == created.version
    assert read.key.certificate == created.certificate == read.certificate
    assert [s.name async for s in vault.client_certificates()] == ["cert"]

    await vault.update_certificate_tags("cert", created.version, tags | {"verified": "true"})
    imported = await vault.import_certificate("cert", read.key, tags)
    assert imported.version != created.version and imported.certificate == created.certificate
    assert vault.certificate_version_count("cert") == 2

    assert await vault.delete_certificate("cert") and not await vault.delete_certificate("cert")
    assert await vault.read_certificate("cert") is None and await vault.read("cert") is None
    with pytest.raises(UpstreamError):  # purge protection, as the deployed vault has
        await vault.purge_certificate("cert")
    assert not await vault.purge_certificate("never-there")
    recreated = await vault.create_certificate("cert", "CN=cert", 1, tags)  # recovers the name, then creates
    assert vault.certificate_version_count("cert") == 3 and recreated.certificate != created.certificate


@pytest.mark.parametrize("request_", [CERTIFICATE, SECRET], ids=["certificate", "secret"])
async def test_a_certificate_named_like_ours_on_an_app_nobody_recorded_is_removed_before_anything_is_granted(
    request_: OnboardRequest,
) -> None:
    """Someone registers the app under the predictable unique name, puts a certificate of their own on it under
    a copied display name and leaves this service its only owner: ownership.py says such a certificate is lost
    (Key Vault would record the app had this service stored it) and is removed before anything is granted."""
    h = make_onboarding()
    unique = h.onboarding.registry.unique_name(M365)
    squatted = FakeApp(
        "a9a9a9a9-0000-4000-8000-000000000002", "c1c1c1c1-0000-4000-8000-000000000002", unique,
        "Contoso look-alike", (), "", frozenset(), created=START,
    )  # fmt: skip
    planted = foreign_key(f"{h.onboarding.registry.credential_prefix}0123456789ab")  # a copied name
    squatted.keys[planted.info.key_id] = planted
    h.directory.tenants[TENANT].apps[unique] = squatted

    await h.onboarding.onboard(request_)

    assert planted.info.key_id not in set(the_app(h).keys)
