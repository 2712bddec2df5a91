"""The template as written passes every check (test_mutations.py shows each check catching its property)."""

from __future__ import annotations

import pytest

from shared.settings import SETTINGS

from .checks import CHECKS, NOT_DEPLOYED, check_app_settings
from .template import Template


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_template_passes(real_template: Template, check: str) -> None:
    assert CHECKS[check](real_template) == []


def test_every_bicep_file_is_parsed(real_template: Template) -> None:
    assert real_template.errors == {}
    assert {"main.bicep", "eventgrid.bicep", "app/graph.bicep", "app/function.bicep"} <= set(real_template.bicep)


def test_a_setting_the_code_starts_reading_fails_until_the_template_sets_it(real_template: Template) -> None:
    grown = {**SETTINGS, "NEW_SETTING": ("", "a setting added to the code only")}
    assert check_app_settings(real_template, grown) == [
        "app setting NEW_SETTING is read by the code but the template does not set it"
    ]


def test_a_setting_the_code_stops_reading_fails_until_the_template_drops_it(real_template: Template) -> None:
    shrunk = {name: value for name, value in SETTINGS.items() if name != "ROTATION_CONCURRENCY"}
    problems = check_app_settings(real_template, shrunk)
    assert any("ROTATION_CONCURRENCY is set but neither the code" in p for p in problems)


def test_an_excluded_setting_the_code_no_longer_has_is_reported(real_template: Template) -> None:
    shrunk = {name: value for name, value in SETTINGS.items() if name != "TLS_CA_BUNDLE"}
    assert "NOT_DEPLOYED names TLS_CA_BUNDLE, which shared/settings.py no longer reads" in check_app_settings(
        real_template, shrunk
    )
    assert "TLS_CA_BUNDLE" in NOT_DEPLOYED
