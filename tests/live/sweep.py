"""Offboard what interrupted live runs left behind, by hand: the sweep every run starts with.

    LIVE_TARGET=in-process LIVE_TENANT_ID=... [app settings] python -m tests.live.sweep [--min-age-minutes 60] [--dry-run]
    LIVE_TARGET=http LIVE_FUNCTION_URL=... LIVE_FUNCTION_KEY=... LIVE_TENANT_ID=... python -m tests.live.sweep

Only registrations whose display name carries a live run id (`live-YYMMDDHHMM-xxxxxx`) are touched, and
only runs older than --min-age-minutes (60 by default, as at the start of a run), so a run still going
elsewhere is left alone; --min-age-minutes 0 takes those too. Exit code 0 when nothing is left to do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

from tests.live.target import LiveSetupError, RunId, make_target, world_from_environment


async def run(min_age: timedelta, dry_run: bool) -> int:
    try:
        world = world_from_environment(os.environ)
    except (LiveSetupError, ValueError) as problem:
        print(f"live sweep: {problem}", file=sys.stderr)
        return 2
    kind = "http" if world.function_url else "in-process"
    target = make_target(kind, world, RunId.new())
    try:
        if dry_run:
            found, problems = await target.leftovers()
            now = datetime.now(UTC)
            for leftover in sorted(set(found)):
                due = "would offboard" if leftover.run.age(now) >= min_age else "too young"
                print(f"{due:<14} {leftover.run} {leftover.tenant}/{leftover.integration} ({leftover.found_in})")
            for where in problems:
                print(f"could not look: {where}")
            return 1 if problems else 0
        report = await target.sweep(min_age)
        print(report)
        return 1 if report.failed or report.problems else 0
    finally:
        await target.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.live.sweep", description="Offboard what interrupted live runs left behind."
    )
    parser.add_argument("--min-age-minutes", type=float, default=60, help="leave runs younger than this (60)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be offboarded, change nothing")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(timedelta(minutes=args.min_age_minutes), args.dry_run)))


if __name__ == "__main__":
    main()
