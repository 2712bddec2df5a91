"""The registry's names: what it builds it parses back, and nothing else parses."""

from __future__ import annotations

import pytest

from shared.domain.model import SecretKind
from shared.domain.registry import Registry, SecretRef, Tag

TENANT = "abcdef01-2222-4333-8444-555555555555"  # letters, so upper-case differs
REGISTRY = Registry("tenant-onboarding")


@pytest.mark.parametrize("kind", list(SecretKind))
@pytest.mark.parametrize("integration", ["m365-defender", "sentinel", "abc", "a" * 32])
def test_every_name_it_builds_parses_back_to_its_parts(kind: SecretKind, integration: str) -> None:
    name = REGISTRY.secret_name(TENANT, integration, kind)
    assert REGISTRY.parse_secret_name(name) == SecretRef(TENANT, integration, kind)


@pytest.mark.parametrize(
    "name",
    [
        f"other-prefix-{TENANT}-sentinel-client-secret",  # another deployment's
        f"tenant-onboarding-{TENANT.upper()}-sentinel-client-secret",  # tenant ids are stored lower-case
        f"tenant-onboarding-{TENANT}-Sentinel-client-secret",  # integration ids are lower-case
        f"tenant-onboarding-{TENANT}-sentinel-client-key",  # no such kind
        f"tenant-onboarding-{TENANT}-sentinel-client-secret-2",
        f"tenant-onboarding-{TENANT}-s-client-secret",  # integration ids have at least 3 characters
        REGISTRY.probe_secret_name,
        REGISTRY.staging_secret_name(TENANT, "sentinel"),  # rotation's staging secret is no consumer's
        "",
    ],
)
def test_names_it_did_not_build_parse_to_nothing(name: str) -> None:
    assert REGISTRY.parse_secret_name(name) is None


def test_a_prefix_with_regex_characters_is_taken_literally() -> None:
    dotted = Registry("a.b")
    assert dotted.parse_secret_name(f"aXb-{TENANT}-sentinel-client-secret") is None


def test_the_sweep_lists_only_this_deployments_client_secrets_and_vendor_certificate_records() -> None:
    ours = REGISTRY.tags(TENANT, "sentinel", SecretKind.CLIENT_SECRET, "object", "client")
    assert REGISTRY.is_swept_secret(ours)
    assert REGISTRY.is_swept_secret(ours | {Tag.KIND: SecretKind.VENDOR_CERTIFICATE.value})
    assert not REGISTRY.is_swept_secret(ours | {Tag.MANAGED_BY: "another-deployment"})
    assert not REGISTRY.is_swept_secret(ours | {Tag.KIND: SecretKind.CLIENT_ID.value})
    assert not REGISTRY.is_swept_secret(ours | {Tag.KIND: Tag.STAGED_KIND})
    assert not REGISTRY.is_swept_secret({})
