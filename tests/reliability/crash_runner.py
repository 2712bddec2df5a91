"""Runs one operation through the CLI in a process that SIGKILLs itself at a chosen point.

Usage: python -m tests.reliability.crash_runner OPERATION TENANT INTEGRATION (after-event N | after-ms MS)

`after-event N` dies right after the Nth audit event (a change just made in Entra or Key Vault),
i.e. at a step boundary; `after-ms MS` dies MS milliseconds into the operation, anywhere.
Settings come from the environment, as in Azure.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any


def main() -> None:
    operation, tenant, integration, mode, value = sys.argv[1:6]
    from shared import credentials, offboarding, onboarding, rotation
    from shared.cli import main as cli

    if mode == "after-event":
        limit = int(value)
        seen = 0
        real_audit = credentials.audit

        def audit_then_die(*args: Any, **kwargs: Any) -> None:
            nonlocal seen
            real_audit(*args, **kwargs)
            seen += 1
            if seen == limit:
                os.kill(os.getpid(), signal.SIGKILL)

        for module in (credentials, onboarding, rotation, offboarding):
            module.audit = audit_then_die  # type: ignore[attr-defined]
    else:
        timer = threading.Timer(int(value) / 1000, lambda: os.kill(os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()
    args = {
        "onboard": ["onboard", "--tenant", tenant, "--integration", integration],
        "rotate": ["rotate", "--tenant", tenant, "--integration", integration, "--retire-immediately"],
        "offboard": ["offboard", "--tenant", tenant, "--integration", integration, "--purge-application"],
    }[operation]
    sys.exit(cli(args))


if __name__ == "__main__":
    main()
