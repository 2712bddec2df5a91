"""The operator CLI's local run (`python -m emulator.local_cli`): each command against a fresh in-memory stand-in."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from emulator import launcher
from shared.entrypoints import cli

PROGRAM = "python -m emulator.local_cli"
DESCRIPTION = """\
The operator CLI for development: each command runs against a fresh, in-memory local stand-in for
Entra ID, Graph and Key Vault, started for that one command and stopped afterwards; --tenant defaults
to its home tenant. Each run starts from the seed, so `onboard` is the demo and `status` finds nothing.
Against Azure, run the operator CLI itself (tenant-onboarding, or python -m shared.entrypoints.cli)."""
EPILOG = f"""\
{cli.EXIT_CODES}
examples:
  %(prog)s catalog
  %(prog)s onboard --integration m365-defender          (the demo)
  %(prog)s onboard --integration sentinel --json
"""


def _no_storage_warning(record: logging.LogRecord) -> bool:
    # The stand-in and its state live and die with this one process: there is no other process to
    # serialize with, so the composition root's warning about missing storage is only noise.
    return not record.getMessage().startswith("no Functions storage configured")


@contextlib.contextmanager
def stand_in_environment() -> Iterator[tuple[dict[str, str], str | None]]:
    """The app's settings pointed at a stand-in started for this command, and its home tenant; stops it after."""
    try:
        stand_in = launcher.start_stand_in(admin=False)
    except RuntimeError as error:
        raise cli.CannotStart(f"the local stand-in did not start: {error}") from error
    settings = stand_in.app_settings()
    # Into os.environ too: azure-identity reads IDENTITY_ENDPOINT/IDENTITY_HEADER from there, not from
    # Settings. Restored afterwards, so a caller in the same process (a test) gets its environment back.
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    bootstrap_logger = logging.getLogger("shared.bootstrap.composition")  # where the services are composed
    bootstrap_logger.addFilter(_no_storage_warning)
    try:
        yield dict(os.environ), stand_in.home_tenant_id
    finally:
        bootstrap_logger.removeFilter(_no_storage_warning)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        stand_in.stop()


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, environment=stand_in_environment, program=PROGRAM, description=DESCRIPTION, epilog=EPILOG)


if __name__ == "__main__":
    sys.exit(main())
