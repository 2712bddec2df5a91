"""Runs sweep invocations in a process of its own (a function instance), for tests that SIGKILL it mid-pass.

Usage: python -m tests.reliability.sweep_runner REGISTRATIONS

Settings come from the environment, as in Azure; the catalog is the rotation benchmark's synthetic one (one
integration per bulk-seeded registration). Invocations run back to back until the full pass completes.
"""

from __future__ import annotations

import asyncio
import sys


async def main(registrations: int) -> None:
    from bench.rotation_sweep import synthetic_catalog
    from shared import bootstrap

    services = bootstrap.build(catalog=synthetic_catalog(registrations))
    assert services.sweep_passes is not None, "the sweep store needs AzureWebJobsStorage"
    try:
        while not (await services.sweep_passes.run()).completed:
            pass
    finally:
        await services.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
