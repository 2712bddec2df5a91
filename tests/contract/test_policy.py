"""The Directory contract under a tenant's app management policy: what `password_policy` reports, and
`add_password` refusing what the policy forbids with the project's named errors.

The stand-in's policy is seeded through its admin API as Graph's JSON; the fake's through its own
`set_policy`, as the `PasswordPolicy` the adapter reads from that JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.errors import SecretLifetimeExceedsPolicy, SecretsForbiddenByPolicy
from shared.domain.model import AppRegistration, PasswordPolicy
from tests.contract.conftest import Ports, in_days


def midnight(days_from_today: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days_from_today)


async def new_app(ports: Ports) -> AppRegistration:
    app, _ = await ports.directory.upsert_application(ports.tenant_id, ports.unique("app"), ports.spec("Policy"))
    return app


def restrictions(policy: PasswordPolicy) -> tuple[object, ...]:
    """What a policy says about new secrets (not which policy object says it)."""
    return (
        policy.additions_allowed,
        policy.max_lifetime_days,
        policy.additions_forbidden_for_apps_created_from,
        policy.lifetime_capped_for_apps_created_from,
    )


async def test_without_a_policy_nothing_is_restricted(ports: Ports) -> None:
    app = await new_app(ports)

    assert restrictions(await ports.directory.password_policy(ports.tenant_id)) == (True, None, None, None)
    end = in_days(3650)
    new = await ports.directory.add_password(ports.tenant_id, app.object_id, "unrestricted", end)
    assert new.info.end == end


async def test_a_policy_forbidding_passwords_refuses_add_password(ports: Ports) -> None:
    app = await new_app(ports)
    ports.set_policy(PasswordPolicy(additions_allowed=False))

    assert restrictions(await ports.directory.password_policy(ports.tenant_id)) == (False, None, None, None)
    with pytest.raises(SecretsForbiddenByPolicy) as refused:
        await ports.directory.add_password(ports.tenant_id, app.object_id, "forbidden", in_days(30))
    assert refused.value.status == 409
    found = await ports.directory.find_application(ports.tenant_id, app.unique_name)
    assert found is not None and found.passwords == ()


async def test_a_policy_capping_the_lifetime_refuses_a_longer_secret_and_allows_a_shorter_one(ports: Ports) -> None:
    app = await new_app(ports)
    ports.set_policy(PasswordPolicy(max_lifetime_days=30))

    assert restrictions(await ports.directory.password_policy(ports.tenant_id)) == (True, 30, None, None)
    with pytest.raises(SecretLifetimeExceedsPolicy):
        await ports.directory.add_password(ports.tenant_id, app.object_id, "too long", in_days(31))
    allowed = await ports.directory.add_password(ports.tenant_id, app.object_id, "short enough", in_days(29))
    assert allowed.info.display_name == "short enough"


async def test_a_restriction_for_apps_created_from_tomorrow_spares_an_app_created_today(ports: Ports) -> None:
    app = await new_app(ports)
    tomorrow = midnight(1)
    ports.set_policy(
        PasswordPolicy(
            additions_allowed=False,
            max_lifetime_days=1,
            additions_forbidden_for_apps_created_from=tomorrow,
            lifetime_capped_for_apps_created_from=tomorrow,
        )
    )

    assert restrictions(await ports.directory.password_policy(ports.tenant_id)) == (False, 1, tomorrow, tomorrow)
    spared = await ports.directory.add_password(ports.tenant_id, app.object_id, "spared", in_days(90))
    assert spared.info.display_name == "spared"


async def test_a_restriction_for_apps_created_since_yesterday_refuses_an_app_created_today(ports: Ports) -> None:
    app = await new_app(ports)
    ports.set_policy(PasswordPolicy(additions_allowed=False, additions_forbidden_for_apps_created_from=midnight(-1)))

    with pytest.raises(SecretsForbiddenByPolicy):
        await ports.directory.add_password(ports.tenant_id, app.object_id, "refused", in_days(30))
