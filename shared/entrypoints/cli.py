"""The operator CLI: the HTTP API's use cases (catalog, onboard, status) in a terminal, with the app's settings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.adapters.telemetry import configure_audit_export
from shared.domain import validation
from shared.domain.catalog import Catalog, CatalogError, load_catalog
from shared.domain.clouds import CLOUDS, PUBLIC
from shared.domain.errors import OnboardingError
from shared.domain.model import CredentialType
from shared.domain.registry import INTEGRATION_ID
from shared.entrypoints.presenters import (
    offboard_json,
    onboard_json,
    registration_json,
    rotation_json,
    sweep_json,
)
from shared.entrypoints.report import report_csv, report_json, report_text
from shared.settings import Settings, SettingsError, load_settings
from shared.usecases.fleet import FleetQuery, FleetState
from shared.usecases.onboarding import OnboardRequest, OnboardResult, Outcome
from shared.usecases.workspace_access import WorkspaceRequest

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1  # the use case refused or an Azure service failed
EXIT_USAGE = 2  # bad arguments or settings: nothing was attempted (argparse uses 2 as well)
EXIT_PENDING = 3  # progress made, Entra has not caught up: run the same command again
EXIT_INTERRUPTED = 130

# The HTTP API's input limits (shared/entrypoints/http_api.py). The use case trusts its caller to enforce them,
# so the CLI, as a second caller, applies the same ones.
DISPLAY_NAME_MAX = 120
NOTES_MAX = 500

STEP_WIDTH = len("service principal")
VALUE_COLUMN = 2 + STEP_WIDTH + 2  # summary values line up under the progress lines' details
MARKERS = {"pending": "…", "policy": "!"}  # every other step is something done or found

DESCRIPTION = "Onboard integrations into Entra ID tenants: the same use cases the HTTP API runs."
EXIT_CODES = """\
exit codes: 0 done, 1 failed (the message names the problem type), 2 bad arguments or settings,
3 pending (Entra is still replicating: run the same command again).
"""
EPILOG = f"""\
{EXIT_CODES}
Settings come from the environment exactly as in Azure (KEY_VAULT_URL, HOME_TENANT_ID, ...
see shared/settings.py), and the credential is the managed identity.

examples:
  %(prog)s catalog
  %(prog)s onboard --tenant <GUID> --integration sentinel --json
  %(prog)s status --tenant <GUID> --integration sentinel
"""

# What a development entry point passes to main() in place of the process environment: entered once per
# command (never for catalog, --help or rejected arguments), it yields the settings to load and the home
# tenant that --tenant then defaults to, and cleans up on exit. It raises CannotStart if it cannot begin.
Environment = Callable[[], AbstractContextManager[tuple[dict[str, str], str | None]]]


# --- arguments ---


def _tenant(raw: str) -> str:
    try:
        return validation.tenant_id(raw)
    except validation.InvalidValue as problem:
        raise argparse.ArgumentTypeError(f"{raw!r} {problem}") from None


def _integration(catalog: Catalog) -> Any:
    def check(raw: str) -> str:
        if not INTEGRATION_ID.match(raw) or catalog.get(raw) is None:
            known = ", ".join(p.id for p in catalog)
            raise argparse.ArgumentTypeError(f"no integration {raw!r} in the catalog; choose one of: {known}")
        return raw

    return check


def _text(max_length: int) -> Any:
    def check(raw: str) -> str:
        try:
            return validation.text(raw, max_length)
        except validation.InvalidValue as problem:
            raise argparse.ArgumentTypeError(str(problem)) from None

    return check


def _states(raw: str) -> frozenset[FleetState]:
    try:
        return frozenset(FleetState(part) for part in raw.split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"states are {', '.join(s.value for s in FleetState)}") from None


def _days(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of days") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 day")
    return value  # the upper bound is a setting, checked once settings are loaded


def _global_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    # Defined on the main parser and on each subcommand so they work before or after it; the
    # subcommands' copies default to SUPPRESS so they cannot reset a flag given before the subcommand.
    parser.add_argument("--json", action="store_true", default=default, help="machine-readable output on stdout")
    parser.add_argument("--verbose", action="store_true", default=default, help="DEBUG logging to stderr")


def build_parser(
    catalog: Catalog,
    *,
    program: str | None = None,
    description: str = DESCRIPTION,
    epilog: str = EPILOG,
    tenant_defaults_to_home: bool = False,
) -> argparse.ArgumentParser:
    if program is None:
        script = Path(sys.argv[0]).name
        program = "python -m shared.entrypoints.cli" if script in ("cli.py", "__main__.py") else "tenant-onboarding"
    parser = argparse.ArgumentParser(
        prog=program,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_flags(parser, default=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common, *parents], help=summary, description=summary)
        # Kept so checks made after parsing can fail with this subcommand's usage, as argparse's own do.
        sub.set_defaults(command_parser=sub, needs_tenant=bool(parents))
        return sub

    command("catalog", "List the integrations and the permissions each gets.")

    target = argparse.ArgumentParser(add_help=False)
    tenant_help = "the tenant's directory id" + (" (default: the home tenant)" if tenant_defaults_to_home else "")
    target.add_argument("--tenant", type=_tenant, metavar="GUID", help=tenant_help)
    target.add_argument(
        "--integration", required=True, type=_integration(catalog), metavar="ID", help="a catalog id (see `catalog`)"
    )

    onboard = command(
        "onboard",
        "Register, consent, mint, store and prove one integration's app in one tenant. Idempotent: "
        "running it again converges drift and finishes anything left pending.",
        target,
    )
    onboard.add_argument("--display-name", type=_text(DISPLAY_NAME_MAX), metavar="TEXT", help="the app's display name")
    onboard.add_argument(
        "--secret-lifetime-days", type=_days, metavar="N", help="lifetime of a new client secret (default: setting)"
    )
    onboard.add_argument("--notes", type=_text(NOTES_MAX), metavar="TEXT", help="appended to the app's notes")
    onboard.add_argument(
        "--credential-type",
        choices=[t.value for t in CredentialType],
        help="secret, certificate or federated (default: the registration's own, else the integration's, see `catalog`)",
    )
    onboard.add_argument(
        "--certificate-file",
        type=_certificate_file,
        metavar="PATH",
        help="a public certificate the vendor holds the key of (PEM or base64 DER), instead of one Key Vault creates",
    )
    onboard.add_argument(
        "--add-ons",
        type=_add_ons,
        metavar="IDS",
        help="comma-separated add-ons of the integration on the same app (see `catalog`); '' for none "
        "(default: the registration's own, none for a new one)",
    )
    onboard.add_argument(
        "--workspace",
        type=_workspace_id,
        metavar="RESOURCE_ID",
        help="sentinel: the customer's Log Analytics workspace (its Azure resource id); the app gets a Sentinel role",
    )
    onboard.add_argument(
        "--workspace-role", type=_catalog_id, metavar="ID", help="sentinel: a workspace role id (default: the first)"
    )
    command("status", "The live state in Entra ID and Key Vault, including drift.", target)

    offboard = command(
        "offboard",
        "Remove the integration's app registration and soft-delete its secrets. Idempotent.",
        target,
    )
    offboard.add_argument("--purge-application", action="store_true", help="also delete it from deleted items")
    offboard.add_argument("--purge-secrets", action="store_true", help="also purge the soft-deleted secrets")

    rotate = command(
        "rotate",
        "Rotate one registration now (--tenant, --integration), or sweep every managed registration as the "
        "timer does (--all; --dry-run prints the plan and changes nothing).",
    )
    rotate.add_argument("--tenant", type=_tenant, metavar="GUID", help=tenant_help)
    rotate.add_argument("--integration", type=_integration(catalog), metavar="ID", help="a catalog id")
    rotate.add_argument("--retire-immediately", action="store_true", help="remove the previous secret at once")
    rotate.add_argument("--all", action="store_true", help="sweep: what is due, and what may be retired")
    rotate.add_argument("--dry-run", action="store_true", help="with --all: print the plan only")

    report = command(
        "report",
        "Every managed registration from Key Vault's records: a table grouped by state with the soonest expiries "
        "first, and expiries by week for the next 90 days (--json, --csv for machines).",
    )
    report.add_argument("--csv", action="store_true", help="CSV on stdout (one row per registration)")
    report.add_argument(
        "--state", type=_states, metavar="STATES", help="comma-separated states to keep (default: every state)"
    )
    report.add_argument("--tenant", type=_tenant, metavar="GUID", help="only this tenant's registrations")
    return parser


# --- output ---


def _out(line: str = "") -> None:
    print(line, file=sys.stdout, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _progress_line(step: str, detail: str) -> str:
    return f"{MARKERS.get(step, '✓')} {step:<{STEP_WIDTH}}  {detail}"


def _workspace_id(raw: str) -> str:
    try:
        return validation.workspace_resource_id(raw)
    except validation.InvalidValue as problem:
        raise argparse.ArgumentTypeError(str(problem)) from None


def _catalog_id(raw: str) -> str:
    try:
        return validation.catalog_id(raw)
    except validation.InvalidValue as problem:
        raise argparse.ArgumentTypeError(str(problem)) from None


def _add_ons(raw: str) -> tuple[str, ...]:
    try:
        return validation.add_on_ids([v.strip() for v in raw.split(",") if v.strip()])
    except validation.InvalidValue as problem:
        raise argparse.ArgumentTypeError(str(problem)) from None


def _certificate_file(path: str) -> str:
    """The file's text as the PUT's `certificate`; what it holds is checked by onboarding (never printed)."""
    try:
        with open(path, encoding="ascii") as handle:
            return validation.certificate_text(handle.read(validation.MAX_CERTIFICATE_CHARS + 1))
    except (OSError, UnicodeDecodeError) as error:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {type(error).__name__}") from None
    except validation.InvalidValue as problem:
        raise argparse.ArgumentTypeError(f"{path}: {problem}") from None


def _row(label: str, value: Any, indent: int = 2) -> str:
    return f"{' ' * indent}{label:<{VALUE_COLUMN - indent}}{'-' if value is None else value}"


def _print_catalog(catalog: Catalog) -> None:
    for index, profile in enumerate(catalog):
        if index:
            _out()
        _out(f"{profile.id}  {profile.display_name}")
        for resource in profile.permissions:
            _out(f"  {resource.resource_name} ({len(resource.roles)}): {', '.join(resource.roles)}")
        for add_on in profile.add_ons:
            marks = [f"high impact: {add_on.high_impact_reason}"] if add_on.high_impact_reason else []
            marks += [f"credential: {', '.join(map(str, add_on.credential_types))}"] if add_on.credential_types else []
            _out(f"  add-on {add_on.id}: {add_on.display_name}" + (f" ({'; '.join(marks)})" if marks else ""))
            for resource in add_on.permissions:
                _out(f"    {resource.resource_name}: {', '.join(resource.roles)}")


def _registration_lines(state: Mapping[str, Any], *, every_permission: bool) -> list[str]:
    """The registration as `describe` reads it back; ids and Key Vault references only, never a value."""
    app = state.get("application") or {}
    permissions = state.get("permissions") or []
    granted = sum(1 for p in permissions if p["granted"])
    credential = state.get("credential") or {}
    references = state.get("keyVaultReferences") or {}
    lines = [
        _row("client id", app.get("clientId")),
        _row("tenant id", state.get("tenantId")),
        _row("application", app.get("displayName") and f"{app['displayName']} (object id {app['objectId']})"),
        _row("service principal", state.get("servicePrincipalId")),
        _row("permissions", f"{granted} of {len(permissions)} granted"),
    ]
    add_ons = state.get("addOns") or []
    lines.append(_row("add-ons", ", ".join(add_ons) or "none"))
    if every_permission:
        lines += [
            f"    {'✓' if p['granted'] else '✗'} {p['resource']}: {p['permission']}"
            + (f"  (add-on {p['addOn']})" if p.get("addOn") else "")
            for p in permissions
        ]
    lines += [
        _row(
            "credential", credential.get("keyId") and f"{credential.get('type', 'secret')}, keyId {credential['keyId']}"
        ),
        *([_row("thumbprint", credential["thumbprint"], indent=4)] if credential.get("thumbprint") else []),
        _row("hint", credential.get("hint"), indent=4),
        _row("expires", credential.get("expires"), indent=4),
        _row("verified", "yes" if credential.get("verified") else "no", indent=4),
        _row("others on app", credential.get("otherCredentialsOnApp"), indent=4),
        *([_row("supplied by", "the vendor (never rotated here)", indent=4)] if credential.get("source") else []),
        "  Key Vault references (for app settings; the secret itself stays in Key Vault)",
        _row("client id", references.get("clientId"), indent=4),
        _row("tenant id", references.get("tenantId"), indent=4),
        _row("client secret", references.get("clientSecret"), indent=4),
        *(
            [_row("client certificate", references["clientCertificate"], indent=4)]
            if references.get("clientCertificate")
            else []
        ),
        *(
            [_row("vendor certificate", references["vendorCertificate"], indent=4)]
            if references.get("vendorCertificate")
            else []
        ),
        _row("drift", "; ".join(state.get("drift") or []) or "none"),
        *[_row("remaining step", step) for step in state.get("remainingSteps") or []],
    ]
    workspace = state.get("workspace")
    if workspace:
        proven = "proven by a query as the app" if workspace["proven"] else "not proven"
        lines.insert(-1, _row("workspace", f"{workspace['name']} ({workspace['workspaceId']}): {workspace['role']}, "
                                          f"{'assigned' if workspace['assigned'] else 'NOT assigned'}, {proven}"))  # fmt: skip
    return lines


def _print_result(result: OnboardResult, integration: str) -> None:
    _out()
    _out(f"{result.outcome.value}: {integration} in tenant {result.registration.tenant_id}")
    if result.consent_url:
        _out(_row("consent at", result.consent_url))
    for line in _registration_lines(registration_json(result.registration), every_permission=False):
        _out(line)
    _out(_row("changes", ", ".join(result.changes) or "none"))


def _print_status(state: Mapping[str, Any]) -> None:
    _out(f"{state['integration']} in tenant {state['tenantId']} (unique name {state['uniqueName']})")
    for line in _registration_lines(state, every_permission=True):
        _out(line)


def _report_error(error: OnboardingError, as_json: bool) -> None:
    context = ", ".join(f"{key}={value}" for key, value in error.extensions.items())
    _err(f"error [{error.problem_type}]: {error.detail}" + (f" ({context})" if context else ""))
    if as_json:
        # The problem+json body the HTTP API would answer, for scripts that read stdout only.
        _out(
            json.dumps(
                {
                    "type": error.type_uri,
                    "title": error.title,
                    "status": error.status,
                    "detail": error.detail,
                    **error.extensions,
                }
            )
        )


# --- running ---


def _configure_logging(verbose: bool) -> None:
    # stdout carries results only; logs (the audit trail included, at INFO) go to stderr.
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


class CannotStart(Exception):
    """Something the command needs before it can begin is missing; the message says what (exit 1)."""


@contextlib.contextmanager
def _process_environment() -> Iterator[tuple[dict[str, str], str | None]]:
    """As in Azure: the settings are the process environment's, and there is no default tenant."""
    yield dict(os.environ), None


async def _run(args: argparse.Namespace, settings: Settings, tenant: str) -> int:
    # Imported here, not at the top: the SDKs cost most of a second, which catalog, --help and a
    # rejected argument should not pay.
    from shared.bootstrap import build

    services = build(settings)
    try:
        async with services.events.delivering():  # an operator's changes are published like the app's
            return await _command(args, services, tenant)
    finally:
        await services.close()


async def _command(args: argparse.Namespace, services: Any, tenant: str) -> int:
    try:
        if args.command == "rotate":
            return await _rotate(args, services, tenant)
        if args.command == "report":
            query = FleetQuery(args.state or frozenset(), args.tenant)
            rows = [row async for row in services.fleet.every(query)]
            now = datetime.now(UTC)
            if args.json:
                _out(json.dumps(report_json(rows, now), indent=2))
            elif args.csv:
                sys.stdout.write(report_csv(rows))
            else:
                for line in report_text(rows, now):
                    _out(line)
            return EXIT_OK
        if args.command == "offboard":
            gone = await services.offboarding.offboard(
                tenant, args.integration, purge_application=args.purge_application, purge_secrets=args.purge_secrets
            )
            if args.json:
                _out(json.dumps(offboard_json(gone), indent=2))
            else:
                _out(f"application  {gone.application}")
                for name, outcome in gone.secrets.items():
                    _out(f"secret       {outcome:<8} {name}")
                for name, outcome in gone.certificates.items():
                    _out(f"certificate  {outcome:<8} {name}")
                if gone.customer_action:
                    _out(f"customer     {gone.customer_action}")
            return EXIT_OK
        if args.command == "status":
            state = registration_json(await services.status.status(tenant, args.integration))
            if args.json:
                _out(json.dumps(state, indent=2))
            else:
                _print_status(state)
            return EXIT_OK

        def progress(step: str, detail: str) -> None:
            # As it happens, so a slow step shows where it is; in --json mode on stderr, stdout is the result.
            (_err if args.json else _out)(_progress_line(step, detail))

        request = OnboardRequest(
            tenant_id=tenant,
            integration=args.integration,
            display_name=args.display_name,
            secret_lifetime_days=args.secret_lifetime_days,
            notes=args.notes,
            credential_type=CredentialType(args.credential_type) if args.credential_type else None,
            certificate=args.certificate_file,
            add_ons=args.add_ons,
            workspace=WorkspaceRequest(args.workspace, args.workspace_role) if args.workspace else None,
        )
        result = await services.onboarding.onboard(request, progress)
        if args.json:
            _out(json.dumps(onboard_json(result), indent=2))
        else:
            _print_result(result, args.integration)
        if result.outcome is Outcome.PENDING:
            _err(
                f"pending: {result.pending_reason} Run the same command again in about {result.retry_after} s; "
                "it continues where this one stopped."
            )
            return EXIT_PENDING
        return EXIT_OK
    except OnboardingError as error:
        _report_error(error, args.json)
        return EXIT_FAILED


async def _rotate(args: argparse.Namespace, services: Any, tenant: str) -> int:
    if args.all:

        def show(item: Any) -> None:
            if not args.json and (item.needs_action or args.dry_run):
                expires = item.expires.strftime("%Y-%m-%dT%H:%M:%SZ") if item.expires else "-"
                _out(f"{item.reason:<9} {item.tenant_id}/{item.integration:<20} expires {expires}")

        summary = await services.sweep.run(dry_run=args.dry_run, on_item=show)
        if args.json:
            _out(json.dumps(sweep_json(summary), indent=2))
        else:
            _out(f"{summary.scanned} scanned; planned {dict(summary.planned)}; outcomes {dict(summary.outcomes)}")
        return EXIT_FAILED if summary.failures_by_tenant else EXIT_OK
    result = await services.rotation.rotate(tenant, args.integration, force=True, retire_now=args.retire_immediately)
    if args.json:
        _out(json.dumps(rotation_json(result), indent=2))
    else:
        _out(f"{result.action.value}: {args.integration} in tenant {tenant}")
        if result.new_key_id:
            _out(_row("new keyId", result.new_key_id))
        if result.retired_key_ids:
            _out(_row("retired", ", ".join(result.retired_key_ids)))
        if result.detail:
            _out(_row("detail", result.detail))
    return (
        EXIT_PENDING
        if result.action.value == "pending"
        else (EXIT_FAILED if result.action.value in ("busy", "failed", "app-missing") else EXIT_OK)
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    environment: Environment | None = None,
    program: str | None = None,
    description: str = DESCRIPTION,
    epilog: str = EPILOG,
) -> int:
    """Run one command. In Azure (no `environment`), settings come from the process environment and --tenant
    is required; a development entry point passes `environment` (and its own name and help) instead."""
    for stream in (sys.stdout, sys.stderr):
        # A terminal without UTF-8 shows "?" for a check mark rather than failing half-way through a step.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    try:
        # The cloud's catalog; a misspelt AZURE_CLOUD is the settings' to report, with the variable's name.
        cloud = os.environ.get("AZURE_CLOUD", "").strip()
        catalog = load_catalog(cloud=cloud if cloud in CLOUDS else PUBLIC.name)
    except CatalogError as error:
        _err(f"error: the catalog shipped with the app is invalid: {error}")
        return EXIT_FAILED
    defaults_tenant = environment is not None
    parser = build_parser(
        catalog, program=program, description=description, epilog=epilog, tenant_defaults_to_home=defaults_tenant
    )
    try:
        args = parser.parse_args(argv)
        if args.needs_tenant and args.tenant is None and not defaults_tenant:
            args.command_parser.error("--tenant is required")
        if args.command == "rotate" and not args.all:
            if args.integration is None or (args.tenant is None and not defaults_tenant):
                args.command_parser.error("name --tenant and --integration, or sweep with --all")
            if args.dry_run:
                args.command_parser.error("--dry-run goes with --all")
        if args.command == "report" and args.csv and args.json:
            args.command_parser.error("--csv and --json are two formats: name one")
        if args.command == "onboard" and args.workspace_role and not args.workspace:
            args.command_parser.error("--workspace-role goes with --workspace")
    except SystemExit as stop:  # argparse's way out (usage errors, --help); a return code for callers of main()
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    _configure_logging(args.verbose)
    # An operator's changes are audited like the app's: to Application Insights when it is configured.
    configure_audit_export(os.environ)

    if args.command == "catalog":
        # The catalog ships with the code: no settings or credentials needed.
        if args.json:
            _out(json.dumps(catalog.to_json(), indent=2))
        else:
            _print_catalog(catalog)
        return EXIT_OK

    try:
        with (environment or _process_environment)() as (env, home_tenant):
            try:
                settings = load_settings(env)
            except SettingsError as error:
                _err(f"error: {error} (set it in the environment as in Azure)")
                return EXIT_USAGE
            lifetime = getattr(args, "secret_lifetime_days", None)
            if lifetime is not None and lifetime > settings.max_secret_lifetime_days:
                limit = settings.max_secret_lifetime_days
                _err(f"error: --secret-lifetime-days may be at most {limit} (the MAX_SECRET_LIFETIME_DAYS setting)")
                return EXIT_USAGE
            # Checked after parsing: only an environment with a home tenant may omit it; a sweep (--all) needs none.
            tenant = args.tenant or home_tenant or ""
            return asyncio.run(_run(args, settings, tenant))
    except CannotStart as error:
        _err(f"error: {error}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _err("interrupted; rerunning the same command finishes what this one started")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Whoever read stdout went away (`| head`): nothing left to tell, and Python must not complain at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as error:
        # Only the type: an unexpected exception's message was never vetted for secret material.
        logger.debug("unexpected error", exc_info=error)
        _err(f"error [internal]: unexpected {type(error).__name__}; rerun with --verbose for the traceback")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
