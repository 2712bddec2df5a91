"""Ships audit events to Application Insights as custom events whose fields are customDimensions.

The Functions host already forwards every log line the worker writes to Application Insights as a
trace, but as text: an audit event's fields would sit inside the message, where a query has to
parse them. So the audit logger alone (not the root logger: that would send every line twice) gets
an OpenTelemetry log exporter, and each event lands in the `customEvents` table named
`audit.<operation>`, with operation, outcome, correlationId, tenantId, integration, object ids and
keyId as customDimensions:

    customEvents | where name startswith "audit." | project timestamp, name,
        tenant = tostring(customDimensions.tenantId), keyId = tostring(customDimensions.keyId)

It uses the Azure Monitor exporter directly rather than the azure-monitor-opentelemetry distro: the
distro also instruments every HTTP library in the worker, which the host already traces. Nothing is
configured, and nothing imported, unless APPLICATIONINSIGHTS_CONNECTION_STRING is set; with the
deployed APPLICATIONINSIGHTS_AUTHENTICATION_STRING (`Authorization=AAD;ClientId=...`) the exporter
authenticates with the managed identity, as the app's local-auth-disabled App Insights requires.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Mapping
from typing import Any

from shared.domain.audit import AUDIT_LOGGER

# The exporter turns a log record carrying this attribute into a custom event of that name.
CUSTOM_EVENT_NAME_ATTRIBUTE = "microsoft.custom_event.name"

_configured: list[AuditExporter] = []


def managed_identity_client_id(authentication_string: str | None) -> str | None:
    """The ClientId in `Authorization=AAD;ClientId=<id>`; None when the string does not ask for Entra auth.

    An `Authorization=AAD` without ClientId means the system-assigned identity: the empty string."""
    if not authentication_string:
        return None
    parts = {
        key.strip().lower(): value.strip()
        for key, _, value in (part.partition("=") for part in authentication_string.split(";"))
        if key.strip()
    }
    if parts.get("authorization", "").upper() != "AAD":
        return None
    return parts.get("clientid", "")


class AuditExporter(logging.Handler):
    """Re-emits each audit record as an OpenTelemetry log whose attributes are the event's fields.

    Attached at process start (cheap), but the OpenTelemetry pipeline and the exporter, with their SDKs, are
    built by `start()`: the composition root calls it (so the warmup trigger pays it before traffic), and the
    first audit record does if nothing did. `import function_app` stays free of them (bench/cold_start.py)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(level=logging.INFO)
        self._environ = {
            name: environ.get(name, "")
            for name in (
                "APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "WEBSITE_SITE_NAME",
            )
        }  # fmt: skip
        self.provider: Any = None
        self._otel_logger: Any = None
        self._severity: Any = None
        self._unavailable = False  # the pipeline could not be built (said once): audit export is off

    def start(self) -> None:
        """Build the pipeline once; under the handler's lock, as emit runs. A pipeline that cannot be built (a
        malformed connection string) turns audit export off, logged once: it must not fail every request."""
        self.acquire()
        try:
            self._ensure()
        finally:
            self.release()

    def _ensure(self) -> bool:
        if self.provider is None and not self._unavailable:
            try:
                self._build()
            except Exception as error:  # noqa: BLE001 - any failure of the exporter's set-up, reported once
                self._unavailable = True
                logging.getLogger(__name__).error(
                    "audit export to Application Insights is off: its exporter could not be set up (%s)",
                    type(error).__name__,
                )
        return self.provider is not None

    def _build(self) -> None:
        # Imported here: they cost start-up time, and a run without App Insights never needs them.
        from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter
        from opentelemetry._logs import SeverityNumber
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource

        environ = self._environ
        credential = None
        client_id = managed_identity_client_id(environ["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"])
        if client_id is not None:
            from azure.identity import ManagedIdentityCredential

            credential = ManagedIdentityCredential(client_id=client_id or None)
        exporter = AzureMonitorLogExporter(
            connection_string=environ["APPLICATIONINSIGHTS_CONNECTION_STRING"], credential=credential
        )
        provider = LoggerProvider(
            resource=Resource.create({"service.name": environ["WEBSITE_SITE_NAME"] or "tenant-onboarding"})
        )
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        self._otel_logger = provider.get_logger(AUDIT_LOGGER)
        self._severity = SeverityNumber.INFO
        self.provider = provider

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "audit", None)
        if not isinstance(event, Mapping):
            return  # only audit events travel this way; everything else goes through the host
        try:
            if not self._ensure():  # emit runs under the handler's lock (logging.Handler.handle)
                return
            self._otel_logger.emit(
                timestamp=int(record.created * 1e9),
                severity_number=self._severity,
                severity_text="INFO",
                body=record.getMessage(),
                attributes={
                    **{key: str(value) for key, value in event.items()},
                    CUSTOM_EVENT_NAME_ATTRIBUTE: f"audit.{event.get('operation', 'unknown')}",
                },
            )
        except Exception:  # noqa: BLE001 - telemetry must never break the operation it reports
            self.handleError(record)

    def flush(self) -> None:
        self.acquire()
        try:
            if self.provider is not None:
                self.provider.force_flush()
        finally:
            self.release()

    def close(self) -> None:
        self.acquire()
        try:
            if self.provider is not None:
                self.provider.shutdown()
            self._unavailable = True  # closed: a late record builds no new pipeline
        finally:
            self.release()
        super().close()


def configure_audit_export(environ: Mapping[str, str]) -> AuditExporter | None:
    """Attach the exporter to the audit logger when App Insights is configured; idempotent, and cheap: the
    pipeline is built by `start_audit_export()` or the first audit event."""
    if not environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        return None
    if _configured:
        return _configured[0]
    handler = AuditExporter(environ)
    audit_logger = logging.getLogger(AUDIT_LOGGER)
    audit_logger.addHandler(handler)
    if audit_logger.getEffectiveLevel() > logging.INFO:
        audit_logger.setLevel(logging.INFO)  # audit events are INFO; a quieter root must not drop them
    # A worker or CLI that exits sends what is still batched rather than losing the last events.
    atexit.register(handler.close)
    _configured.append(handler)
    return handler


def start_audit_export() -> None:
    """Build the attached exporter's pipeline now (the composition root: before the first request)."""
    for handler in _configured:
        handler.start()
