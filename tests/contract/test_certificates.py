"""The certificate parts of the ports: Key Vault certificates (create, read with and without the key, import,
tags, delete), an app's key credentials (`add_key`, `remove_key`), proving a certificate through the
CredentialChecker, and the tenant policy's `asymmetricKeyLifetime`. Each case runs against the fakes and
against KeyVault, GraphDirectory and TokenRoleChecker on the stand-in."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from shared.domain.errors import CertificatesRefusedByPolicy, UpstreamError
from shared.domain.model import AppRegistration, NewKey, PasswordPolicy, StoredCertificate
from shared.domain.ports import NotReplicatedYet
from shared.domain.registry import Registry
from tests.contract.conftest import GRAPH_SCOPE, ROLE_VALUES, Ports
from tests.contract.test_checker import granted_app

SUBJECT = "CN=contract.example"


async def created(ports: Ports, name: str | None = None, tags: dict[str, str] | None = None) -> StoredCertificate:
    """A one-month certificate Key Vault made, read back with its key."""
    name = name or ports.unique("cert")
    await ports.vault.create_certificate(name, SUBJECT, 1, tags if tags is not None else {"purpose": "contract"})
    with_key = await ports.vault.read_certificate(name, with_key=True)
    assert with_key is not None and with_key.key is not None
    return with_key


def new_key(certificate: StoredCertificate, display_name: str = "contract key") -> NewKey:
    return NewKey(
        key_id=Registry.key_credential_id(certificate.certificate.thumbprint_sha256),
        display_name=display_name,
        certificate=certificate.certificate,
    )


async def key_ids(ports: Ports, app: AppRegistration) -> list[str]:
    found = await ports.directory.find_application(ports.tenant_id, app.unique_name)
    assert found is not None
    return sorted(k.key_id for k in found.keys)


async def new_app(ports: Ports) -> AppRegistration:
    app, _ = await ports.directory.upsert_application(ports.tenant_id, ports.unique("app"), ports.spec("Keys"))
    return app


# --- Key Vault certificates ---


async def test_a_created_certificate_reads_back_with_its_key_only_when_asked(ports: Ports) -> None:
    name, tags = ports.unique("cert"), {"purpose": "contract", "kind": "client-certificate"}

    made = await ports.vault.create_certificate(name, SUBJECT, 1, tags)

    assert made.key is None and made.name == name and made.version and dict(made.tags) == tags
    assert made.uri.endswith(f"/secrets/{name}")  # the backing secret consumers reference
    assert made.certificate.subject == SUBJECT
    lifetime = made.certificate.not_after - made.certificate.not_before
    assert timedelta(days=28) <= lifetime <= timedelta(days=32), lifetime  # one month, Key Vault's unit
    plain = await ports.vault.read_certificate(name)
    assert plain is not None and plain.key is None
    assert (plain.version, dict(plain.tags), plain.certificate.thumbprint_sha256) == (
        made.version,
        tags,
        made.certificate.thumbprint_sha256,
    )
    with_key = await ports.vault.read_certificate(name, with_key=True)
    assert with_key is not None and with_key.key is not None and with_key.version == made.version
    assert with_key.key.certificate.thumbprint_sha256 == made.certificate.thumbprint_sha256
    assert "***" in repr(with_key.key)  # the key never shows in a repr


async def test_reading_a_certificate_never_created_is_none(ports: Ports) -> None:
    name = ports.unique("missing")

    assert await ports.vault.read_certificate(name) is None
    assert await ports.vault.read_certificate(name, with_key=True) is None


async def test_a_second_create_is_a_new_latest_version_with_a_new_key(ports: Ports) -> None:
    first = await created(ports)
    second = await created(ports, first.name)

    assert second.version != first.version
    assert second.certificate.thumbprint_sha256 != first.certificate.thumbprint_sha256
    latest = await ports.vault.read_certificate(first.name)
    assert latest is not None and latest.version == second.version


async def test_import_makes_a_new_latest_version_holding_the_imported_certificate_and_key(ports: Ports) -> None:
    staged = await created(ports, ports.unique("staged"))
    target = await created(ports, ports.unique("target"))
    assert staged.key is not None

    imported = await ports.vault.import_certificate(target.name, staged.key, {"verified": "true"})

    assert imported.version != target.version and dict(imported.tags) == {"verified": "true"}
    assert imported.certificate.thumbprint_sha256 == staged.certificate.thumbprint_sha256
    read = await ports.vault.read_certificate(target.name, with_key=True)
    assert read is not None and read.key is not None and read.version == imported.version
    assert read.key.certificate.thumbprint_sha256 == staged.certificate.thumbprint_sha256


async def test_update_certificate_tags_rewrites_one_versions_tags_and_an_unknown_version_is_a_404(
    ports: Ports,
) -> None:
    first = await created(ports, tags={"n": "1"})
    second = await created(ports, first.name, tags={"n": "2"})

    await ports.vault.update_certificate_tags(first.name, first.version, {"n": "1", "retired": "yes"})
    latest = await ports.vault.read_certificate(first.name)
    assert latest is not None and dict(latest.tags) == {"n": "2"}  # another version's tags: the latest's unchanged
    await ports.vault.update_certificate_tags(first.name, second.version, {"n": "2", "verified": "true"})
    latest = await ports.vault.read_certificate(first.name)
    assert latest is not None and dict(latest.tags) == {"n": "2", "verified": "true"}

    with pytest.raises(UpstreamError) as missing:
        await ports.vault.update_certificate_tags(first.name, uuid.uuid4().hex, {"x": "y"})
    assert (missing.value.service, missing.value.upstream_status) == ("keyvault", 404)


async def test_a_deleted_certificate_reads_as_none_is_kept_from_purge_and_its_name_is_recovered_on_create(
    ports: Ports,
) -> None:
    made = await created(ports)
    assert await ports.vault.purge_certificate(made.name) is False  # not deleted: nothing to purge

    assert await ports.vault.delete_certificate(made.name) is True
    assert await ports.vault.delete_certificate(made.name) is False
    assert await ports.vault.read_certificate(made.name) is None
    assert await ports.vault.read_certificate(made.name, with_key=True) is None
    assert await ports.vault.delete_certificate(ports.unique("never")) is False
    with pytest.raises(UpstreamError) as refused:  # purge protection, as on the deployed vault
        await ports.vault.purge_certificate(made.name)
    assert (refused.value.service, refused.value.upstream_status) == ("keyvault", 403)

    again = await created(ports, made.name)  # the adapter recovers the soft-deleted name first
    assert again.version != made.version
    assert again.certificate.thumbprint_sha256 != made.certificate.thumbprint_sha256


# --- key credentials on the app ---


async def test_add_key_twice_with_one_key_id_leaves_one_key(ports: Ports) -> None:
    app = await new_app(ports)
    certificate = await created(ports)
    key = new_key(certificate)

    first = await ports.directory.add_key(ports.tenant_id, app.object_id, key)
    again = await ports.directory.add_key(ports.tenant_id, app.object_id, key)

    assert first.key_id == again.key_id == key.key_id
    assert first.thumbprint == again.thumbprint == certificate.certificate.thumbprint_sha1
    assert first.end == certificate.certificate.not_after.replace(microsecond=0)
    assert await key_ids(ports, app) == [key.key_id]


async def test_add_key_keeps_the_apps_other_keys_and_remove_key_takes_only_one(ports: Ports) -> None:
    app = await new_app(ports)
    one, two = new_key(await created(ports)), new_key(await created(ports), "second")

    await ports.directory.add_key(ports.tenant_id, app.object_id, one)
    await ports.directory.add_key(ports.tenant_id, app.object_id, two)
    assert await key_ids(ports, app) == sorted([one.key_id, two.key_id])

    assert await ports.directory.remove_key(ports.tenant_id, app.object_id, one.key_id) is True
    assert await key_ids(ports, app) == [two.key_id]
    assert await ports.directory.remove_key(ports.tenant_id, app.object_id, one.key_id) is False
    assert await ports.directory.remove_key(ports.tenant_id, app.object_id, str(uuid.uuid4())) is False
    assert await key_ids(ports, app) == [two.key_id]


# --- proving a certificate ---


async def test_a_certificate_proves_the_app_only_while_its_key_is_on_the_app(ports: Ports) -> None:
    """Before the key is added and after it is removed, Entra answers AADSTS700027 ("the key was not found"),
    which is also what a key added moments ago gets: the port reports both as NotReplicatedYet."""
    app = await granted_app(ports, ROLE_VALUES)
    certificate = await created(ports)
    assert certificate.key is not None
    key = new_key(certificate)

    with pytest.raises(NotReplicatedYet) as before:
        await ports.checker.granted_roles(ports.tenant_id, app.app_id, certificate.key, GRAPH_SCOPE)
    assert before.value.code == "AADSTS700027"

    await ports.directory.add_key(ports.tenant_id, app.object_id, key)
    roles = await ports.checker.granted_roles(ports.tenant_id, app.app_id, certificate.key, GRAPH_SCOPE)
    assert roles == set(ROLE_VALUES)

    other = await created(ports)  # a certificate whose key is on no app
    assert other.key is not None
    with pytest.raises(NotReplicatedYet) as not_on_app:
        await ports.checker.granted_roles(ports.tenant_id, app.app_id, other.key, GRAPH_SCOPE)
    assert not_on_app.value.code == "AADSTS700027"

    assert await ports.directory.remove_key(ports.tenant_id, app.object_id, key.key_id)
    with pytest.raises(NotReplicatedYet) as removed:
        await ports.checker.granted_roles(ports.tenant_id, app.app_id, certificate.key, GRAPH_SCOPE)
    assert removed.value.code == "AADSTS700027"


# --- the tenant's policy on certificates ---


async def test_a_policy_capping_certificate_lifetime_is_read_and_refuses_a_longer_certificate(ports: Ports) -> None:
    app = await new_app(ports)
    month = await created(ports)  # one month, about 31 days
    ports.set_policy(PasswordPolicy(certificate_max_lifetime_days=20))

    policy = await ports.directory.password_policy(ports.tenant_id)
    assert (policy.certificate_max_lifetime_days, policy.certificate_lifetime_capped_for_apps_created_from) == (
        20,
        None,
    )
    assert (policy.additions_allowed, policy.max_lifetime_days) == (True, None)  # secrets untouched
    with pytest.raises(CertificatesRefusedByPolicy):
        await ports.directory.add_key(ports.tenant_id, app.object_id, new_key(month))
    assert await key_ids(ports, app) == []

    ports.set_policy(PasswordPolicy(certificate_max_lifetime_days=40))
    assert (await ports.directory.password_policy(ports.tenant_id)).certificate_max_lifetime_days == 40
    added = await ports.directory.add_key(ports.tenant_id, app.object_id, new_key(month))
    assert await key_ids(ports, app) == [added.key_id]
