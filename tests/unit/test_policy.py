"""Password credentials and the tenant's restrictions on them, read the way Graph documents them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.adapters.graph_models import NO_END, NO_START, registration
from shared.domain.model import PasswordPolicy

SINCE = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_dated_restriction_applies_to_apps_created_on_or_after_its_date_only() -> None:
    policy = PasswordPolicy(
        additions_allowed=False,
        max_lifetime_days=90,
        additions_forbidden_for_apps_created_from=SINCE,
        lifetime_capped_for_apps_created_from=SINCE,
    )
    before = policy.for_app_created(SINCE - timedelta(seconds=1))
    assert before.additions_allowed and before.max_lifetime_days is None
    on = policy.for_app_created(SINCE)
    assert not on.additions_allowed and on.max_lifetime_days == 90


def test_an_undated_restriction_applies_to_every_app_and_an_unknown_creation_date_counts_as_covered() -> None:
    undated = PasswordPolicy(additions_allowed=False, max_lifetime_days=30)
    assert not undated.for_app_created(datetime(2000, 1, 1, tzinfo=UTC)).additions_allowed
    dated = PasswordPolicy(additions_allowed=False, additions_forbidden_for_apps_created_from=SINCE)
    assert not dated.for_app_created(None).additions_allowed


def test_restrictions_are_independent() -> None:
    policy = PasswordPolicy(max_lifetime_days=30, lifetime_capped_for_apps_created_from=SINCE)
    old_app = policy.for_app_created(SINCE - timedelta(days=1))
    assert old_app.additions_allowed and old_app.max_lifetime_days is None


def test_a_password_credential_without_dates_is_never_due_and_never_young() -> None:
    """passwordCredential documents startDateTime and endDateTime as optional; such a credential must not
    break reading the whole app."""
    app = registration(
        {
            "id": "object",
            "appId": "client",
            "passwordCredentials": [{"keyId": "k1", "displayName": "made elsewhere"}],
        }
    )
    (password,) = app.passwords
    assert password.start == NO_START and password.end == NO_END
