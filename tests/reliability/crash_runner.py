"""Runs one operation through the CLI in a process that SIGKILLs itself at a chosen point.

Usage: python -m tests.reliability.crash_runner OPERATION TENANT INTEGRATION (after-event N | after-ms MS | calibrate FILE)

The vendor-certificate operations read the public certificate the vendor hands over from the file that
CRASH_CERTIFICATE_FILE names (as `--certificate-file` does).

`after-event N` dies right after the Nth audit event (a change just made in Entra or Key Vault),
i.e. at a step boundary; `after-ms MS` dies MS milliseconds into the operation, anywhere.
`calibrate FILE` runs the operation through and writes to FILE how many audit events it made and how
many milliseconds it took, measured as the other two modes measure, so kill points can be chosen
inside it. Settings come from the environment, as in Azure.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any


def main() -> None:
    operation, tenant, integration, mode, value = sys.argv[1:6]
    from shared import usecases
    from shared.domain import audit as audit_module
    from shared.entrypoints.cli import main as cli

    for found in pkgutil.iter_modules(usecases.__path__):  # every use case, so each one's `audit` is replaced
        importlib.import_module(f"{usecases.__name__}.{found.name}")

    events = 0
    names: list[str] = []
    real_audit = audit_module.audit

    def audit_and_count(*args: Any, **kwargs: Any) -> None:
        nonlocal events
        real_audit(*args, **kwargs)
        events += 1
        names.append(str(args[0]) if args else "?")
        if mode == "after-event" and events == int(value):
            os.kill(os.getpid(), signal.SIGKILL)

    # Every module that imported `audit` holds its own reference: replace each one (grants are audited from
    # consent.py), so no change goes uncounted.
    for name, module in list(sys.modules.items()):
        if name.startswith("shared.") and getattr(module, "audit", None) is real_audit:
            module.audit = audit_and_count  # type: ignore[attr-defined]
    if mode == "after-ms":
        timer = threading.Timer(int(value) / 1000, lambda: os.kill(os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()
    args = {
        "onboard": ["onboard", "--tenant", tenant, "--integration", integration],
        "rotate": ["rotate", "--tenant", tenant, "--integration", integration, "--retire-immediately"],
        "offboard": ["offboard", "--tenant", tenant, "--integration", integration, "--purge-application"],
        # A certificate registration's flows (the rotation finds the stored type itself).
        "onboard-certificate": [
            "onboard", "--tenant", tenant, "--integration", integration, "--credential-type", "certificate",
        ],
        "rotate-certificate": ["rotate", "--tenant", tenant, "--integration", integration, "--retire-immediately"],
        # The secretless type: the connector app and its trusts (before the admin consents), or the proof and the
        # ids (after); the same command either way.
        "onboard-federated": [
            "onboard", "--tenant", tenant, "--integration", integration, "--credential-type", "federated",
        ],
        "prove-federated": [
            "onboard", "--tenant", tenant, "--integration", integration, "--credential-type", "federated",
        ],
        # A certificate the vendor issued: its first one, or the one that replaces it (the vendor's rotation).
        "onboard-vendor-certificate": [
            "onboard", "--tenant", tenant, "--integration", integration, "--credential-type", "certificate",
            "--certificate-file", os.environ.get("CRASH_CERTIFICATE_FILE", ""),
        ],
        # A Sentinel registration with the workspace CRASH_WORKSPACE names: its role assigned, proven, recorded.
        "onboard-workspace": [
            "onboard", "--tenant", tenant, "--integration", integration,
            "--workspace", os.environ.get("CRASH_WORKSPACE", ""),
        ],
        # The add-ons CRASH_ADD_ONS names (comma-separated; empty: none), converged on the registration's app.
        "change-add-ons": [
            "onboard", "--tenant", tenant, "--integration", integration, "--add-ons", os.environ.get("CRASH_ADD_ONS", ""),
        ],
        "replace-vendor-certificate": [
            "onboard", "--tenant", tenant, "--integration", integration, "--credential-type", "certificate",
            "--certificate-file", os.environ.get("CRASH_CERTIFICATE_FILE", ""),
        ],
    }[operation]  # fmt: skip
    started = time.monotonic()
    code = cli(args)
    if mode == "calibrate":
        took = round((time.monotonic() - started) * 1000)
        Path(value).write_text(json.dumps({"events": events, "ms": took, "exit": code, "names": names}))
    sys.exit(code)


if __name__ == "__main__":
    main()
