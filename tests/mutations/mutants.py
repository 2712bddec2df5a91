"""Named, small product bugs, each with the tests that must catch it (issue 21).

Like tests/infra/test_mutations.py does for the Bicep template: every mutant is one exact text
replacement in one file of a copy of the repository, and `guards` are the pytest node ids (or
files) that must fail against that copy. `old` must occur exactly once in its file, so a refactor
that moves the code makes the mutant fail loudly (tests/mutations/test_fast_slice.py checks it for
every mutant) instead of silently testing nothing.

Run them: `scripts/mutate` (all), `python -m tests.mutations.run --fast`, `--only NAME`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # relative to the project root
    old: str  # must occur exactly once in `file`
    new: str
    guards: tuple[str, ...]  # pytest node ids or files; at least one must fail
    fast: bool = False  # in the CI slice: guards are unit tests only, a few seconds each


UNIT_ONBOARDING = "tests/unit/test_onboarding.py"
UNIT_ROTATION = "tests/unit/test_rotation.py"
UNIT_CATALOG = "tests/unit/test_catalog_and_settings.py"
UNIT_AZURE_SETTINGS = "tests/unit/test_settings_in_azure.py"
FRAGMENTS = "tests/unit/test_secret_fragments.py"
VALIDATION = "tests/unit/test_validation_rules.py"
CRASH_POINTS = "tests/reliability/test_crash_points.py"
SWEEP_PASSES = "tests/unit/test_sweep_passes.py"

MINTED = "        done.minted = True\n        return written, new.secret, new.info\n"
PROVE_IN_ONBOARDING = "            await self.credentials.prove(tenant, app.app_id, secret, profile)\n"

MUTANTS: tuple[Mutant, ...] = (
    # --- the named bugs ---
    Mutant(
        "onboarding logs the secret text at DEBUG",
        "shared/usecases/onboarding.py",
        MINTED,
        '        logger.debug("minted a client secret: %s", new.secret.reveal())\n' + MINTED,
        (f"{UNIT_ONBOARDING}::test_no_secret_text_reaches_a_log_record_the_progress_or_the_result", FRAGMENTS),
        fast=True,
    ),
    Mutant(
        "onboarding logs all but the first 6 characters of the secret",
        "shared/usecases/onboarding.py",
        MINTED,
        '        logger.debug("minted a client secret ending %s", new.secret.reveal()[6:])\n' + MINTED,
        (FRAGMENTS,),
        fast=True,
    ),
    Mutant(
        "the proof step is removed (secret still tagged verified)",
        "shared/usecases/onboarding.py",
        PROVE_IN_ONBOARDING,
        "",
        (
            f"{UNIT_ONBOARDING}::test_verification_failing_past_its_timeout_is_pending_and_the_next_put_verifies_without_minting",
            f"{UNIT_ONBOARDING}::test_grants_still_replicating_past_the_timeout_answer_pending_and_are_finished_next_time",
            "tests/unit/test_proof_required.py",
        ),
        fast=True,
    ),
    Mutant(
        "the proof ignores the token's roles",
        "shared/usecases/credentials.py",
        "                if not wanted <= roles:\n",
        "                if not roles and False:\n",
        (
            f"{UNIT_ONBOARDING}::test_grants_still_replicating_past_the_timeout_answer_pending_and_are_finished_next_time",
            "tests/unit/test_proof_required.py",
        ),
        fast=True,
    ),
    Mutant(
        "rotation's grace period is 0",
        "shared/usecases/rotation.py",
        "grace = timedelta(0) if retire_now else timedelta(hours=self.settings.rotation_grace_hours)",
        "grace = timedelta(0)",
        (
            f"{UNIT_ROTATION}::test_the_superseded_credential_is_retired_only_after_the_grace_period_and_nothing_else_is",
            f"{UNIT_ROTATION}::test_a_secret_inside_the_window_is_rotated_tagged_and_the_old_one_kept",
        ),
        fast=True,
    ),
    Mutant(
        "one role dropped from the catalog's never-list",
        "shared/domain/catalog.py",
        '    "AppRoleAssignment.ReadWrite.All",  # grant any app role to anything, itself included\n',
        "",
        (f"{UNIT_CATALOG}::test_a_takeover_role_is_refused_even_when_allow_listed_as_high_impact",),
        fast=True,
    ),
    Mutant(
        "the catalog's allow-list check skips a role",
        "shared/domain/catalog.py",
        "    unlisted = [role for role in roles if (app_id, role) not in allowed]\n",
        "    unlisted = [role for role in roles[1:] if (app_id, role) not in allowed]\n",
        (f"{UNIT_CATALOG}::test_a_role_nobody_reviewed_is_refused",),
    ),
    Mutant(
        "the blob lease is a no-op",
        "shared/adapters/locks.py",
        "                await lease.acquire(lease_duration=LEASE_SECONDS)\n                return lease\n",
        "                return lease\n",
        (
            "tests/functions/test_concurrency.py::test_a_held_lease_turns_a_second_holder_away_until_released",
            "tests/functions/test_lock_contention.py::test_a_second_caller_on_a_held_registration_waits_then_is_busy",
        ),
    ),
    # --- onboarding ---
    Mutant(
        "onboarding and rotation skip the ownership check of an existing app",
        "shared/usecases/ownership.py",
        "    if not ownership.proven:\n",
        "    if False:\n",
        (
            f"{UNIT_ONBOARDING}::test_an_app_this_service_cannot_prove_its_own_alone_is_refused_and_nothing_is_granted",
            "tests/functions/test_adopted_apps.py",
        ),
    ),
    Mutant(
        "converging consent does not revoke grants beyond the profile",
        "shared/usecases/consent.py",
        "        revoked = await revoke_beyond(directory, tenant, principal_id, found, wanted, context)\n",
        "        revoked = []\n",
        (
            "tests/functions/test_catalog_changes.py::test_a_role_granted_by_hand_beyond_the_profile_is_revoked_by_the_next_put",
            "tests/unit/test_rotation.py::test_a_role_beyond_the_profile_is_revoked_by_the_next_rotation",
        ),
    ),
    Mutant(
        "onboarding removes orphans without the grace period",
        "shared/usecases/onboarding.py",
        "            if self.registry.issued_here(p.display_name) and p.key_id not in keep and p.start <= cutoff\n",
        "            if self.registry.issued_here(p.display_name) and p.key_id not in keep\n",
        (f"{UNIT_ONBOARDING}::test_an_orphan_is_kept_until_it_is_older_than_the_grace_period",),
    ),
    Mutant(
        "onboarding writes the client and tenant ids before the proof",
        "shared/usecases/onboarding.py",
        PROVE_IN_ONBOARDING,
        "            await self._write_ids(tenant, profile, app, context, stored, CredentialType.SECRET)\n"
        + PROVE_IN_ONBOARDING,
        (
            f"{UNIT_ONBOARDING}::test_verification_failing_past_its_timeout_is_pending_and_the_next_put_verifies_without_minting",
            "tests/unit/test_proof_required.py",
        ),
    ),
    Mutant(
        "onboarding mints a new secret on every PUT",
        "shared/usecases/onboarding.py",
        "            if on_app is not None and on_app.end > self.now():\n",
        "            if False:\n",
        (f"{UNIT_ONBOARDING}::test_second_identical_put_creates_nothing",),
    ),
    Mutant(
        "onboarding skips the tenant's consent check",
        "shared/usecases/onboarding.py",
        "        if isinstance(reachable, BaseException):\n            raise reachable\n",
        "        if isinstance(reachable, BaseException):\n            pass\n",
        (
            "tests/functions/test_customer_tenants.py::test_unconsented_tenant_gets_403_with_the_consent_url_and_nothing_is_created",
        ),
    ),
    # --- rotation ---
    Mutant(
        "rotation never clears the journal",
        "shared/usecases/rotation.py",
        "        pending = stored.tags.get(Tag.PENDING)\n        if not pending:\n",
        "        pending = None\n        if not pending:\n",
        (
            f"{UNIT_ROTATION}::test_a_rotation_that_died_between_minting_and_storing_is_cleaned_up_first_by_the_next_run",
        ),
        fast=True,
    ),
    Mutant(
        "rotation's pending deadline is never reached",
        "shared/usecases/rotation.py",
        "        if now - since >= PENDING_DEADLINE:\n",
        "        if now - since >= PENDING_DEADLINE * 1000:\n",
        (f"{UNIT_ROTATION}::test_a_rotation_pending_past_the_deadline_fails_the_sweep_loudly",),
    ),
    Mutant(
        "rotation does not converge consent",
        "shared/usecases/rotation.py",
        "                    await self._converge_consent(tenant, app, stored, profile, context)\n",
        "                    pass\n",
        (
            f"{UNIT_ROTATION}::test_a_permission_a_customer_admin_revoked_is_granted_again_before_the_next_secret_is_proven",
            f"{UNIT_ROTATION}::test_a_role_beyond_the_profile_is_revoked_by_the_next_rotation",
        ),
    ),
    Mutant(
        "rotation retires the latest credential",
        "shared/usecases/rotation.py",
        "        ours = [p for p in app.passwords if self.registry.issued_here(p.display_name) and p.key_id != keep]\n",
        "        ours = [p for p in app.passwords if self.registry.issued_here(p.display_name)]\n",
        (
            f"{UNIT_ROTATION}::test_the_superseded_credential_is_retired_only_after_the_grace_period_and_nothing_else_is",
            f"{UNIT_ROTATION}::test_a_forced_rotation_retiring_now_removes_the_previous_credential_once_the_new_one_is_stored",
        ),
    ),
    Mutant(
        "rotation stores the new secret without proving it",
        "shared/usecases/rotation.py",
        "            await self.credentials.prove(tenant, app.app_id, new.secret, profile)\n",
        "            pass\n",
        (f"{UNIT_ROTATION}::test_a_new_secret_that_fails_its_proof_is_removed_and_never_stored",),
    ),
    # --- offboarding ---
    Mutant(
        "offboarding does not delete the app",
        "shared/usecases/offboarding.py",
        "            if app is not None and await self.directory.delete_application(tenant, app.object_id):\n",
        "            if False:\n",
        ("tests/functions/test_customer_tenants.py::test_offboarding_leaves_nothing_and_a_second_delete_is_a_no_op",),
    ),
    Mutant(
        "offboarding leaves the secrets in Key Vault",
        "shared/usecases/offboarding.py",
        '        return await _remove(name, purge, context, self.vault.delete, self.vault.purge, "secret")\n',
        '        return "absent"\n',
        ("tests/functions/test_customer_tenants.py::test_offboarding_leaves_nothing_and_a_second_delete_is_a_no_op",),
    ),
    # --- locks ---
    Mutant(
        "the blob lease is never released",
        "shared/adapters/locks.py",
        "                await lease.release()\n",
        "                pass\n",
        ("tests/functions/test_concurrency.py::test_a_held_lease_turns_a_second_holder_away_until_released",),
    ),
    Mutant(
        "a held blob lease never makes the caller busy",
        "shared/adapters/locks.py",
        "            if loop.time() + delay > deadline:\n"
        '                raise RegistrationBusy("Another operation on this registration is in progress.", lock=key)\n',
        "            if loop.time() + delay > deadline:\n                return lease\n",
        (
            "tests/functions/test_concurrency.py::test_a_held_lease_turns_a_second_holder_away_until_released",
            "tests/functions/test_lock_contention.py::test_a_second_caller_on_a_held_registration_waits_then_is_busy",
        ),
    ),
    # --- catalog ---
    Mutant(
        "the catalog allows a high-impact role in a default profile",
        "shared/domain/catalog.py",
        "    if high and not high_impact_profile:\n",
        "    if high and not high_impact_profile and False:\n",
        (f"{UNIT_CATALOG}::test_a_high_impact_role_is_refused_in_a_profile_a_caller_gets_without_asking",),
        fast=True,
    ),
    Mutant(
        "the run-time role id check is skipped",
        "shared/usecases/consent.py",
        "        if unreviewed:\n",
        "        if False:\n",
        (f"{UNIT_ONBOARDING}::test_a_resource_that_offers_a_role_under_an_unreviewed_id_gets_nothing_granted",),
    ),
    Mutant(
        "the catalog takes a takeover role under a harmless name",
        "shared/domain/catalog.py",
        "    if app_id == GRAPH_APP_ID and role_id in TENANT_TAKEOVER_GRAPH_IDS and TENANT_TAKEOVER_GRAPH_IDS[role_id] != value:\n",
        "    if False:\n",
        (UNIT_CATALOG,),
    ),
    # --- settings ---
    Mutant(
        "settings skip the cloud endpoint checks under WEBSITE_SITE_NAME",
        "shared/settings.py",
        "    if in_azure(env):\n        _require_cloud_endpoints(settings)\n",
        "    if False:\n        _require_cloud_endpoints(settings)\n",
        (UNIT_AZURE_SETTINGS,),
    ),
    Mutant(
        "settings take the stand-in's switches under WEBSITE_SITE_NAME",
        "shared/settings.py",
        "    if in_azure(env):\n        _refuse_local_only(env)\n",
        "    if False:\n        _refuse_local_only(env)\n",
        (f"{UNIT_AZURE_SETTINGS}::test_the_local_stand_ins_switches_are_refused_in_azure",),
    ),
    Mutant(
        "settings compare the authority host by suffix",
        "shared/settings.py",
        "parts.netloc.lower() in hosts",
        "any(parts.netloc.lower().endswith(host) for host in hosts)",
        (UNIT_AZURE_SETTINGS,),
        fast=True,
    ),
    # --- validation ---
    Mutant(
        "the tenant id is not validated",
        "shared/domain/validation.py",
        "    try:\n        parsed = uuid.UUID(raw)\n",
        "    return raw\n    try:\n        parsed = uuid.UUID(raw)\n",
        (VALIDATION, "tests/functions/test_http_api.py::test_bad_input_is_a_named_4xx_and_creates_nothing"),
    ),
    Mutant(
        "the nil GUID is a tenant id",
        "shared/domain/validation.py",
        "    if len(raw) != 36 or parsed.int == 0:\n",
        "    if len(raw) != 36:\n",
        (VALIDATION,),
    ),
    Mutant(
        "the JSON nesting limit is removed",
        "shared/domain/validation.py",
        "        if depth > max_depth:\n",
        "        if False:\n",
        (
            VALIDATION,
            "tests/reliability/test_hostile_input.py::test_deeply_nested_json_is_a_400_and_not_a_recursion_error",
        ),
    ),
    # --- HTTP API ---
    Mutant(
        "the PUT's response carries the secret value",
        "shared/entrypoints/http_api.py",
        "    result = await services().onboarding.onboard(request)\n",
        "    result = await services().onboarding.onboard(request)\n"
        "    stored = await services().onboarding.vault.read(\n"
        '        f"{services().settings.name_prefix}-{tenant_id}-{integration}-client-secret", with_value=True\n'
        "    )\n"
        '    result.registration["clientSecret"] = stored.value.reveal() if stored and stored.value else None\n',
        ("tests/functions/test_http_api.py::test_no_secret_reaches_any_log_line_at_debug",),
    ),
    Mutant(
        "rotation discards a new secret Entra has not accepted yet",
        "shared/usecases/rotation.py",
        "        except (StillReplicating, UpstreamUnavailable, UpstreamTimeout):\n",
        "        except (UpstreamUnavailable, UpstreamTimeout):\n",
        (
            f"{UNIT_ROTATION}::test_a_new_secret_still_replicating_past_the_timeout_stays_staged_and_the_next_run_proves_it",
        ),
        fast=True,
    ),
    Mutant(
        "a PUT removes a staged secret as an orphan",
        "shared/usecases/onboarding.py",
        "    return {key for key in (stored.tags.get(Tag.KEY_ID), stored.tags.get(Tag.STAGED)) if key}\n",
        "    return {key for key in (stored.tags.get(Tag.KEY_ID),) if key}\n",
        (f"{UNIT_ROTATION}::test_a_staged_secret_survives_a_put_and_the_sweep_while_it_waits_for_entra",),
        fast=True,
    ),
    Mutant(
        "an on-demand rotation promotes a secret the sweep staged before the leak",
        "shared/usecases/rotation.py",
        "                and (not force or stored.tags.get(Tag.STAGED_BY) == STAGED_ON_DEMAND)\n",
        "",
        (f"{UNIT_ROTATION}::test_an_on_demand_rotation_after_a_leak_never_promotes_a_secret_the_sweep_staged_earlier",),
        fast=True,
    ),
    Mutant(
        "a PUT that mints leaves a staged secret nothing will finish",
        "shared/usecases/onboarding.py",
        "        staged = stored.tags.get(Tag.STAGED) if stored is not None else None\n",
        "        staged = None\n",
        (f"{UNIT_ROTATION}::test_a_put_that_mints_a_new_secret_removes_a_staged_one_nothing_would_finish",),
        fast=True,
    ),
    # --- the registry and the adapters' readings of Azure's answers ---
    Mutant(
        "the sweep lists another deployment's client secrets",
        "shared/domain/registry.py",
        "        return tags.get(Tag.MANAGED_BY) == self.prefix and tags.get(Tag.KIND) in (\n",
        "        return tags.get(Tag.KIND) in (\n",
        (
            "tests/unit/test_registry.py::test_the_sweep_lists_only_this_deployments_client_secrets_and_vendor_certificate_records",
        ),
        fast=True,
    ),
    Mutant(
        "a Key Vault event about a registration's client id rotates it",
        "shared/entrypoints/rotation_api.py",
        "        or secret.kind is not SecretKind.CLIENT_SECRET\n",
        "",
        ("tests/functions/test_rotation.py::test_near_expiry_event_rotates_only_our_secrets",),
    ),
    Mutant(
        "a rerun's service principal upsert during replication fails the PUT",
        "shared/adapters/graph.py",
        "            if error.response_status_code in PRINCIPAL_EXISTS_STATUSES and not app_is_new:\n",
        "            if False:\n",
        (
            "tests/contract/test_replication.py::test_upserting_a_service_principal_again_before_it_replicates_is_not_replicated_yet",
        ),
    ),
    # --- credential types (issue 15) ---
    Mutant(
        "a new client certificate is marked verified without its proof",
        "shared/usecases/onboarding.py",
        "            await self.credentials.prove(tenant, app.app_id, certificate.key, profile)\n",
        "",
        (
            "tests/unit/test_certificates.py",
            "tests/functions/test_certificates.py::test_a_certificate_registration_is_proven_stored_and_usable_through_its_reference",
        ),
    ),
    Mutant(
        "certificate rotation promotes a certificate it never proved",
        "shared/usecases/certificate_rotation.py",
        "            await self.rotation.credentials.prove(tenant, app.app_id, staged.key, profile)\n",
        "            pass\n",
        (
            "tests/functions/test_certificates.py::test_a_new_certificate_entra_takes_minutes_to_accept_stays_staged_and_is_promoted_only_once_proven",
        ),
    ),
    Mutant(
        "a superseded credential is retired before its grace period ends",
        "shared/usecases/superseded.py",
        "        return retire_now or retire_after is None or retire_after <= self.now()\n",
        "        return True\n",
        (
            "tests/functions/test_certificates.py::test_switching_from_a_secret_to_a_certificate_leaves_no_gap_and_no_stale_secret",
        ),
    ),
    Mutant(
        "the connector keeps a federated credential someone else added",
        "shared/usecases/connector.py",
        "            if not any(trust.same_trust(w) and trust.name == w.name for w in wanted) and trust.id:\n",
        "            if False:\n",
        (
            "tests/functions/test_federated.py::test_a_federated_credential_someone_else_adds_to_the_connector_is_removed",
        ),
    ),
    Mutant(
        "tenants onboarding one integration at once converge its connector without its lock",
        "shared/usecases/connector.py",
        "        if self.locks is None:\n",
        "        if True:\n",
        (
            "tests/functions/test_federated.py::test_two_tenants_onboarding_at_once_share_one_connector_with_one_set_of_trusts",
        ),
    ),
    Mutant(
        "a vendor certificate sent with its private key is accepted",
        "shared/adapters/x509.py",
        "        if any(armour in text for armour in PRIVATE_KEY_ARMOUR) or _is_pkcs12(text):\n",
        "        if False:\n",
        (
            "tests/functions/test_certificates.py::test_a_vendor_certificate_with_a_private_key_is_refused_and_the_key_goes_nowhere",
        ),
    ),
    Mutant(
        "a vendor's replacement certificate forgets the key it replaces",
        "shared/usecases/onboarding.py",
        "tags |= {Tag.PREVIOUS_KEY_ID: str(record.tags[Tag.KEY_ID]), Tag.RETIRE_AFTER: iso(retire_after)}",
        "tags |= {Tag.RETIRE_AFTER: iso(retire_after)}",
        (
            f"{CRASH_POINTS}::test_a_killed_vendor_certificate_onboarding_converges_when_run_again"
            "[replace-vendor-certificate-after-event-1]",
        ),
    ),
    Mutant(
        "a federated registration stores its ids before the admin has consented",
        "shared/usecases/connector.py",
        "        if missing_consent:\n",
        "        if False:\n",
        (
            "tests/functions/test_federated.py::test_a_tenant_onboards_with_nothing_stored_but_ids_once_its_admin_consents",
        ),
    ),
    Mutant(
        "connectors are managed through the door callers' registrations use (refused at home)",
        "shared/bootstrap/composition.py",
        "    connectors = Connectors(settings, catalog, connector_directory, vault,",
        "    connectors = Connectors(settings, catalog, directory, vault,",
        (
            "tests/functions/test_federated.py::"
            "test_a_deployment_that_onboards_customers_keeps_its_connectors_at_home_and_refuses_callers_there",
        ),
    ),
    Mutant(
        "a caller may onboard the home tenant federated where it is refused",
        "shared/usecases/onboarding.py",
        "        if request.tenant_id == self.settings.home_tenant_id and self.settings.home_tenant_refused:\n",
        "        if False:\n",
        (
            "tests/functions/test_federated.py::"
            "test_a_deployment_that_onboards_customers_keeps_its_connectors_at_home_and_refuses_callers_there",
        ),
    ),
    Mutant(
        "onboarding logs the vendor's signed assertion at DEBUG",
        "shared/usecases/onboarding.py",
        "        if proof is not None and not verified:\n",
        '        logger.debug("vendor proof %s", proof)\n        if proof is not None and not verified:\n',
        (
            "tests/reliability/test_secret_hygiene.py::"
            "test_vendor_certificate_and_federated_flows_leak_no_key_or_proof_at_debug",
        ),
    ),
    Mutant(
        "every add-on a connection offers is granted, named or not",
        "shared/domain/model.py",
        "        chosen = tuple(a for a in self.add_ons if a.id in wanted)\n",
        "        chosen = self.add_ons\n",
        ("tests/functions/test_add_ons.py::test_high_impact_add_ons_are_never_implied",),
    ),
    Mutant(
        "the add-ons a registration has are not recorded (a plain PUT drops them)",
        "shared/usecases/onboarding.py",
        '                tags[Tag.ADD_ONS] = ",".join(profile.chosen)\n',
        "                pass\n",
        (
            "tests/functions/test_add_ons.py::"
            "test_add_ons_are_granted_on_the_same_app_kept_by_a_plain_put_and_removed_by_naming_fewer",
        ),
    ),
    Mutant(
        "a superseded profile takes new registrations",
        "shared/usecases/onboarding.py",
        "        if profile.superseded_by is not None and ids is None:\n",
        "        if False:\n",
        (
            "tests/functions/test_add_ons.py::"
            "test_a_superseded_profile_keeps_its_registrations_and_sends_new_ones_to_its_successor",
        ),
    ),
    Mutant(
        "a Sentinel onboarding does not check it may assign the role before creating the app",
        "shared/usecases/workspace_access.py",
        "            if await self.workspaces.may_assign_roles(tenant, resource_id):\n",
        "            if True:\n",
        (
            "tests/functions/test_sentinel_workspace.py::"
            "test_without_the_customers_grant_nothing_is_created_and_the_problem_says_what_to_grant",
        ),
    ),
    Mutant(
        "offboarding leaves the Sentinel role on the workspace",
        "shared/usecases/offboarding.py",
        "                role_removed = await workspace.remove(tenant, workspace_records, context)\n",
        "                role_removed = False\n",
        (
            "tests/functions/test_sentinel_workspace.py::"
            "test_a_sentinel_onboarding_ends_with_a_proven_query_and_offboarding_removes_the_role",
        ),
    ),
    Mutant(
        "a remaining step is never seen done",
        "shared/usecases/remaining_steps.py",
        "        if seen:\n",
        "        if False:\n",
        (
            "tests/functions/test_add_ons.py::"
            "test_exchanges_step_is_reported_until_the_apps_own_token_carries_an_exchange_role",
        ),
    ),
    Mutant(
        "a remaining step once seen done stays done",
        "shared/usecases/onboarding.py",
        "        if steps_done != recorded:\n",
        "        if steps_done - recorded:\n",
        (
            "tests/functions/test_add_ons.py::"
            "test_exchanges_step_is_reported_until_the_apps_own_token_carries_an_exchange_role",
        ),
    ),
    Mutant(
        "a condition that leaves out the chosen role is left to ARM",
        "shared/usecases/workspace_access.py",
        "                excluded = await self._condition_excludes(tenant, resource_id, role)\n",
        "                excluded = False\n",
        (
            "tests/functions/test_sentinel_workspace.py::"
            "test_a_condition_that_leaves_out_the_chosen_role_is_refused_before_anything_is_created",
        ),
    ),
    Mutant(
        "a failed rotation records no problem for the fleet view",
        "shared/usecases/rotation.py",
        "                    # Under the lock: nothing else changes the record between the read and the tag update.\n"
        "                    await self._problem(tenant, integration, error)\n",
        "                    pass\n",
        (
            "tests/functions/test_fleet.py::test_the_fleet_agrees_with_key_vault_through_rotation_failure_and_offboarding",
        ),
    ),
    Mutant(
        "a rotation that ends well keeps the problem an earlier one recorded",
        "shared/usecases/rotation.py",
        "        if flagged is not None and result.action in SETTLED:\n",
        "        if False:\n",
        (
            "tests/unit/test_rotation.py::test_a_failed_retirement_records_its_problem_and_the_run_that_retires_sheds_it",
        ),
    ),
    Mutant(
        "the fleet view reads a revoked consent as any failure",
        "shared/usecases/fleet.py",
        "            return FleetState.CONSENT_REVOKED if problem.type in CONSENT_PROBLEMS else FleetState.FAILING\n",
        "            return FleetState.FAILING\n",
        ("tests/unit/test_fleet.py::test_each_state_comes_from_the_records_alone",),
    ),
    Mutant(
        "the sweep no longer says a credential expired",
        "shared/usecases/sweep.py",
        '                        "credential.expired", {"tenantId": item.tenant_id, "integration": item.integration},\n',
        '                        "credential.found", {"tenantId": item.tenant_id, "integration": item.integration},\n',
        (
            "tests/unit/test_alerts.py::"
            "test_each_rules_query_reads_events_the_product_emits_when_its_situation_happens[credential-expired]",
        ),
    ),
    Mutant(
        "events Event Grid did not take are dropped instead of kept",
        "shared/usecases/events.py",
        "                await self._keep(batch)\n",
        "                pass\n",
        (
            "tests/functions/test_events.py::"
            "test_a_change_made_while_event_grid_is_down_succeeds_and_its_event_arrives_later_with_the_same_id",
        ),
    ),
    Mutant(
        "a publish that succeeds leaves the outbox for the timer alone",
        "shared/usecases/events.py",
        "            await self.drain(batches=1)  # the topic answers: send some of what an outage left, the timer the rest\n",
        "            pass\n",
        (
            "tests/functions/test_events.py::"
            "test_a_change_made_while_event_grid_is_down_succeeds_and_its_event_arrives_later_with_the_same_id",
        ),
    ),
    Mutant(
        "a sweep invocation does not say it ran",
        "shared/usecases/sweep_pass.py",
        '                "sweep.ran", {}, dueEntries=str(report.due_entries),',
        '                "sweep.done", {}, dueEntries=str(report.due_entries),',
        (
            "tests/unit/test_alerts.py::"
            "test_each_rules_query_reads_events_the_product_emits_when_its_situation_happens[sweep-missing]",
        ),
    ),
    # --- the bounded sweep (issue 18) ---
    Mutant(
        "the full pass saves its checkpoint only where it stops, not every SWEEP_CHECKPOINT_PAGES pages",
        "shared/usecases/sweep_pass.py",
        "            if unsaved >= self.settings.sweep_checkpoint_pages:\n"
        "                etag = await self.store.save_checkpoint(checkpoint, etag)\n"
        "                unsaved = 0\n",
        "",
        (SWEEP_PASSES, "tests/reliability/test_sweep_resume.py"),
    ),
    Mutant(
        "a failed rotation is retried at every invocation, its backoff ignored",
        "shared/usecases/sweep.py",
        "        act = at <= now\n",
        "        act = True\n",
        (SWEEP_PASSES,),
        fast=True,
    ),
    Mutant(
        "a record with two index entries due is queued twice",
        "shared/usecases/sweep_pass.py",
        "one work item\n                fanned_out.add(item.name)\n",
        "one work item\n",
        (SWEEP_PASSES,),
    ),
    Mutant(
        "a change to a credential record is not filed in the due index",
        "shared/usecases/due_index.py",
        "        await self._file(Listing.SECRETS, name, next_action_at(self.settings, tags, expires), tags)\n",
        "",
        (SWEEP_PASSES,),
    ),
    Mutant(
        "the full pass files nothing in the due index",
        "shared/usecases/sweep_pass.py",
        "        await self.store.schedule(entries)\n        full.enqueued += len(work)\n",
        "        full.enqueued += len(work)\n",
        (SWEEP_PASSES,),
    ),
    Mutant(
        "a missed registration is not reported overdue",
        "shared/usecases/sweep_pass.py",
        '            "rotation.overdue",\n',
        '            "rotation.late",\n',
        ("tests/unit/test_alerts.py", SWEEP_PASSES),
    ),
    # --- clouds (issue 19) ---
    Mutant(
        "a mix of clouds is accepted",
        "shared/settings.py",
        "        if clouds and settings.cloud.name not in clouds:\n",
        "        if False:\n",
        ("tests/unit/test_clouds.py::test_a_mix_of_clouds_is_refused_locally_and_in_azure",),
        fast=True,
    ),
    Mutant(
        "every integration is offered in every cloud",
        "shared/domain/catalog.py",
        "        here = {k: p for k, p in profiles.items() if _exists_in(p.clouds, cloud)}\n",
        "        here = dict(profiles)\n",
        ("tests/unit/test_clouds.py",),
    ),
    Mutant(
        "connectors trust the public cloud's exchange audience in every cloud",
        "shared/usecases/connector.py",
        "        audience = (self.settings.cloud.federation_audience,)",
        '        audience = ("api://AzureADTokenExchange",)',
        ("tests/functions/test_clouds.py::test_a_federated_registration_trusts_the_clouds_issuer_and_audience",),
    ),
    # --- cold start (issue 20) ---
    Mutant(
        "importing the app loads every adapter and SDK",
        "shared/bootstrap/__init__.py",
        "if TYPE_CHECKING:  # the adapters' types only: importing them would load their SDKs\n",
        "if True:\n",
        (
            "tests/functions/test_cold_start.py::test_importing_the_app_loads_no_sdk_but_azure_functions_and_composing_it_loads_them",
        ),
    ),
    Mutant(
        "the audit exporter's pipeline is built at import",
        "shared/adapters/telemetry.py",
        "    _configured.append(handler)\n",
        "    _configured.append(handler)\n    handler.start()\n",
        (
            "tests/functions/test_cold_start.py::test_importing_the_app_loads_no_sdk_but_azure_functions_and_composing_it_loads_them",
        ),
    ),
    # --- the stand-in's authorization ---
    Mutant(
        "the stand-in grants without GRANT_READS",
        "emulator/graph/app_role_assignments.py",
        "    require(call, GRANT_READS)\n",
        "",
        (
            "tests/emulator/test_graph_first_contact.py::test_granting_needs_application_read_all_beside_app_role_assignment",
        ),
    ),
    Mutant(
        "the stand-in lets OwnedBy change apps it does not own",
        "emulator/graph/authorization.py",
        "    if OWNED_APPS in roles and call.caller.object_id in call.tenant.owners.get(owned_object_id, []):\n",
        "    if OWNED_APPS in roles:\n",
        ("tests/emulator/test_graph.py::test_owned_by_cannot_change_an_app_it_does_not_own",),
    ),
)

FAST = tuple(m for m in MUTANTS if m.fast)
