"""The warmup trigger: the host calls it when it adds an instance, before the instance gets traffic.

It builds the services and pays what a process pays once (shared/usecases/warm_up.py), so the
first request on a scaled-out instance costs what every later one does. The host does not call
it on a restart or a scale from zero, so nothing depends on it: everything it touches is built
lazily on first use anyway.
"""

from __future__ import annotations

import azure.functions as func

# azure-functions lists WarmUpContext in its __all__ but does not export it (1.26); the worker's
# converter checks the annotation against this class.
from azure.functions.warmup import WarmUpContext

from shared import bootstrap

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.warm_up_trigger(arg_name="context")
async def warmup(context: WarmUpContext) -> None:
    """Pay the process's one-time costs before the first request (the host names this function `warmup`)."""
    await bootstrap.warm_up()
