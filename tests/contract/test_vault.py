"""The Vault contract: versions, tags, soft delete (and purge protection, which the deployed vault and the
stand-in both have), and the listing of this deployment's client secrets. Each case runs against the fake
and against KeyVault on the stand-in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.errors import InvalidRequest, UpstreamError
from shared.domain.model import Listing, Secret
from tests.contract.conftest import Ports


def later(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def client_secret_tags(ports: Ports, key_id: str, managed_by: str | None = None) -> dict[str, str]:
    return {
        "managed-by": managed_by or ports.prefix,
        "tenant-id": ports.tenant_id,
        "integration": "contract",
        "kind": "client-secret",
        "key-id": key_id,
    }


async def test_reading_a_name_never_written_is_none(ports: Ports) -> None:
    name = ports.unique("missing")

    assert await ports.vault.read(name) is None
    assert await ports.vault.read(name, with_value=True) is None
    assert await ports.vault.stored_key_ids(name) == set()


async def test_a_written_secret_reads_back_with_its_tags_expiry_and_value_only_when_asked(ports: Ports) -> None:
    name, expires = ports.unique("secret"), later(90)
    tags = client_secret_tags(ports, "key-1")

    written = await ports.vault.write(name, "value-one", "text/plain", tags, expires)

    assert (written.name, dict(written.tags), written.expires, written.value) == (name, tags, expires, None)
    assert written.uri.endswith(f"/secrets/{name}") and written.version
    plain = await ports.vault.read(name)
    assert plain is not None
    assert (plain.version, dict(plain.tags), plain.expires, plain.value) == (written.version, tags, expires, None)
    revealed = await ports.vault.read(name, with_value=True)
    assert revealed is not None and revealed.value == Secret("value-one")
    assert ports.vault.reference(name).endswith(f"/secrets/{name}/)")


async def test_expiry_is_kept_to_the_second(ports: Ports) -> None:
    """Key Vault's `exp` is a whole number of seconds: what was asked to the microsecond reads back without them."""
    name = ports.unique("secret")
    asked = later(30).replace(microsecond=654321)

    written = await ports.vault.write(name, "value", "text/plain", {}, asked)
    read = await ports.vault.read(name)

    assert written.expires == asked.replace(microsecond=0)
    assert read is not None and read.expires == asked.replace(microsecond=0)


async def test_a_second_write_is_a_new_version_and_every_versions_key_id_is_remembered(ports: Ports) -> None:
    name = ports.unique("secret")
    first = await ports.vault.write(name, "one", "text/plain", client_secret_tags(ports, "key-1"), later(30))
    second = await ports.vault.write(name, "two", "text/plain", client_secret_tags(ports, "key-2"), later(60))

    assert second.version != first.version
    latest = await ports.vault.read(name, with_value=True)
    assert latest is not None
    assert (latest.version, latest.tags["key-id"], latest.value) == (second.version, "key-2", Secret("two"))
    assert await ports.vault.stored_key_ids(name) == {"key-1", "key-2"}


async def test_update_tags_rewrites_one_versions_tags_and_an_unknown_version_is_a_404(ports: Ports) -> None:
    name = ports.unique("secret")
    first = await ports.vault.write(name, "one", "text/plain", client_secret_tags(ports, "key-1"), None)
    second = await ports.vault.write(name, "two", "text/plain", client_secret_tags(ports, "key-2"), None)

    await ports.vault.update_tags(name, second.version, client_secret_tags(ports, "key-2") | {"verified": "true"})
    await ports.vault.update_tags(name, first.version, {"note": "no key id any more"})

    latest = await ports.vault.read(name)
    assert latest is not None and latest.tags["verified"] == "true"
    assert await ports.vault.stored_key_ids(name) == {"key-2"}
    with pytest.raises(UpstreamError) as missing:
        await ports.vault.update_tags(name, uuid.uuid4().hex, {"x": "y"})
    assert (missing.value.service, missing.value.upstream_status) == ("keyvault", 404)


async def test_a_deleted_secret_reads_as_none_and_a_second_delete_finds_nothing(ports: Ports) -> None:
    name = ports.unique("secret")
    await ports.vault.write(name, "one", "text/plain", client_secret_tags(ports, "key-1"), None)

    assert await ports.vault.delete(name) is True
    assert await ports.vault.delete(name) is False
    assert await ports.vault.read(name) is None
    assert await ports.vault.stored_key_ids(name) == set()
    assert await ports.vault.delete(ports.unique("never")) is False


async def test_writing_a_soft_deleted_name_recovers_its_versions_first(ports: Ports) -> None:
    name = ports.unique("secret")
    await ports.vault.write(name, "one", "text/plain", client_secret_tags(ports, "key-1"), None)
    assert await ports.vault.delete(name) is True

    rewritten = await ports.vault.write(name, "two", "text/plain", client_secret_tags(ports, "key-2"), None)

    read = await ports.vault.read(name, with_value=True)
    assert read is not None and (read.version, read.value) == (rewritten.version, Secret("two"))
    assert await ports.vault.stored_key_ids(name) == {"key-1", "key-2"}


async def test_purge_protection_refuses_a_purge_and_purging_a_name_never_deleted_finds_nothing(ports: Ports) -> None:
    name = ports.unique("secret")
    await ports.vault.write(name, "one", "text/plain", {}, None)
    assert await ports.vault.purge(name) is False  # not deleted: nothing to purge
    assert await ports.vault.delete(name) is True

    with pytest.raises(UpstreamError) as refused:
        await ports.vault.purge(name)

    assert (refused.value.service, refused.value.upstream_status) == ("keyvault", 403)


async def test_client_secrets_lists_this_deployments_client_secrets_latest_version_only(ports: Ports) -> None:
    mine, rotated, gone = ports.unique("mine"), ports.unique("rotated"), ports.unique("gone")
    expires = later(45)
    await ports.vault.write(mine, "v", "text/plain", client_secret_tags(ports, "k-mine"), expires)
    await ports.vault.write(rotated, "v1", "text/plain", client_secret_tags(ports, "k-old"), later(5))
    await ports.vault.write(rotated, "v2", "text/plain", client_secret_tags(ports, "k-new"), None)
    await ports.vault.write(gone, "v", "text/plain", client_secret_tags(ports, "k-gone"), None)
    await ports.vault.delete(gone)
    # Not listed: another deployment's client secret, and this deployment's client id.
    await ports.vault.write(ports.unique("theirs"), "v", "text/plain", client_secret_tags(ports, "k", "other"), None)
    await ports.vault.write(
        ports.unique("id"), "v", "text/plain", client_secret_tags(ports, "k") | {"kind": "client-id"}, None
    )

    listed = {s.name: (s.tags["key-id"], s.expires) async for s in ports.vault.client_secrets()}

    assert listed == {mine: ("k-mine", expires), rotated: ("k-new", None)}


async def test_record_pages_hold_this_deployments_records_only_and_take_back_only_their_own_links(ports: Ports) -> None:
    mine = {ports.unique(f"r{n:02d}") for n in range(30)}  # more than one listing page (25) of this deployment's
    for name in mine:
        await ports.vault.write(name, "v", "text/plain", client_secret_tags(ports, "k") | {"kind": "client-id"}, None)
    await ports.vault.write(ports.unique("theirs"), "v", "text/plain", client_secret_tags(ports, "k", "other"), None)

    seen: list[str] = []
    link: str | None = None
    for _ in range(10_000):
        page = await ports.vault.record_page(Listing.SECRETS, link)
        seen += [record.name for record in page.records]
        assert all(record.tags["managed-by"] == ports.prefix for record in page.records)
        if (link := page.next_link) is None:
            break
    assert set(seen) == mine and len(seen) == len(mine), "each record once, nobody else's"
    for foreign in ("https://elsewhere.example/secrets", f"{ports.vault_url}/secrets/{next(iter(mine))}"):
        with pytest.raises(InvalidRequest):
            await ports.vault.record_page(Listing.SECRETS, foreign)
