"""The Functions entry point: builds the app and registers each area's blueprint, nothing else."""

import os

import azure.functions as func

from shared.adapters.telemetry import configure_audit_export
from shared.entrypoints.http_api import bp as http_api
from shared.entrypoints.rotation_api import bp as rotation_api
from shared.entrypoints.warmup import bp as warmup

# Audit events as custom events in Application Insights, when it is configured (shared/adapters/telemetry.py).
configure_audit_export(os.environ)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(http_api)
app.register_functions(rotation_api)
app.register_functions(warmup)
