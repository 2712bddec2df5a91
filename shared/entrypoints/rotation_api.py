"""Rotation's triggers: the timer sweep and its queue-triggered worker, Key Vault's near-expiry events, and the
on-demand HTTP call.

All reach the same per-registration rotation (shared/usecases/rotation.py; the timer through the bounded sweep in
shared/usecases/sweep_pass.py, which fans due registrations out to the worker); this module parses input and reports
the result.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from shared.bootstrap import services
from shared.domain.audit import audit, new_correlation_id
from shared.domain.errors import InvalidRequest, OnboardingError, RegistrationBusy, request_ids_text
from shared.domain.model import Listing, SecretKind
from shared.domain.sweep_state import WORK_QUEUE, WorkItem
from shared.entrypoints.http_common import (
    integration_param,
    json_body,
    json_response,
    problem_responses,
    tenant_id_param,
)
from shared.entrypoints.presenters import rotation_json, sweep_invocation_json, sweep_json
from shared.usecases.rotation import Action

logger = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]

ROTATION_EVENTS = {
    "microsoft.keyvault.secretnearexpiry",
    "microsoft.keyvault.secretexpired",
    "microsoft.keyvault.certificatenearexpiry",
    "microsoft.keyvault.certificateexpired",
}
RETIRE_CHOICES = {"afterGracePeriod": False, "immediately": True}


@bp.timer_trigger(schedule="%ROTATION_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
async def rotation_sweep(timer: func.TimerRequest) -> None:
    """Rotate what is due and retire what the grace period allows, across every managed registration."""
    started = time.monotonic()  # the sweep's budget counts the whole invocation, the outbox's drain included
    new_correlation_id()
    if timer.past_due:
        logger.warning("the rotation sweep is running late (the timer was past due)")
    events, passes = services().events, services().sweep_passes
    async with events.delivering():
        sent = await events.drain()  # what an Event Grid outage left in the outbox, before this run adds more
        if passes is not None:
            report = await passes.run(started)
        else:
            summary = await services().sweep.run()  # no Functions storage (local): the whole sweep, in this process
    if sent:
        logger.info("sent %d events the outbox held", sent)
    if passes is None:
        logger.info(
            "rotation sweep: %d scanned, planned %s, outcomes %s, failures by tenant %s",
            summary.scanned, dict(summary.planned), dict(summary.outcomes), dict(summary.failures_by_tenant),
            extra={"rotation_summary": sweep_json(summary)},  # customDimensions in Application Insights
        )  # fmt: skip
        return
    logger.info(
        "rotation sweep: %d due entries, queued %s, %d pages (%d records) of full pass %s (%s), %d poisoned",
        report.due_entries, dict(report.enqueued), report.pages, report.scanned, report.full_pass or "-",
        "completed" if report.completed else report.stopped, report.poisoned,
        extra={"rotation_summary": sweep_invocation_json(report)},
    )  # fmt: skip


@bp.queue_trigger(arg_name="message", queue_name=WORK_QUEUE, connection="AzureWebJobsStorage")
async def rotation_worker(message: func.QueueMessage) -> None:
    """Rotate or retire one registration the sweep found due. Scales out with the queue; a failure the next delivery
    may not meet (5xx) is raised, so the host delivers again and, after host.json's maxDequeueCount, moves the message
    to the poison queue, which the next sweep reports."""
    new_correlation_id(message.id)
    try:
        item = WorkItem.from_json(json.loads(message.get_body().decode()))
    except ValueError:  # not JSON, not UTF-8, or not a work item: a retry would fail the same way
        logger.error("the work queue held message %s, which is not a work item: dropped", message.id)
        return
    if not names_its_registration(item) or services().catalog.get(item.integration) is None:
        logger.warning("work item %s names no registration of this deployment's catalog: dropped", message.id)
        return
    try:
        async with services().events.delivering():
            # Never waits on a busy registration: whoever holds it is doing this work.
            result = await services().rotation.rotate(item.tenant_id, item.integration, wait_seconds=0)
    except OnboardingError as error:
        if asks_for_redelivery(error):
            raise
        logger.warning(
            "queued %s of %s/%s not done, and not delivered again: %d %s: %s (%s)",
            item.reason, item.tenant_id, item.integration, error.status, error.problem_type, error.detail,
            request_ids_text(error.upstream_request_ids),
        )  # fmt: skip
        return
    logger.info(
        "queued %s of %s/%s: %s %s", item.reason, item.tenant_id, item.integration, result.action.value, result.detail
    )


@bp.event_grid_trigger(arg_name="event")
async def secret_near_expiry(event: func.EventGridEvent) -> None:
    """Key Vault says a secret is near expiry (30 days ahead) or expired: rotate it if it is ours."""
    new_correlation_id(event.id)
    target = registration_of_event(event.event_type, event.get_json())
    if target is None:
        return
    tenant, integration = target
    try:
        async with services().events.delivering():
            result = await services().rotation.rotate(tenant, integration)
    except OnboardingError as error:
        if asks_for_redelivery(error):
            raise  # Event Grid delivers the event again, with backoff; the next attempt may succeed
        # Permanent (no such registration, consent withdrawn, refused by policy): every one of Event
        # Grid's up to 30 redeliveries would fail the same way, so the invocation succeeds and the
        # refusal is reported here, once. https://learn.microsoft.com/azure/event-grid/delivery-and-retry
        logger.warning(
            "near-expiry event %s for %s/%s not acted on, and not redelivered: %d %s: %s (%s)",
            event.id, tenant, integration, error.status, error.problem_type, error.detail,
            request_ids_text(error.upstream_request_ids),
        )  # fmt: skip
        if not error.audited:  # a failed rotation is audited by rotation itself (rotation.failed)
            audit(
                "secret.rotated",
                {"tenantId": tenant, "integration": integration},
                outcome="failed",
                problemType=error.problem_type,
                trigger="event",
                eventType=event.event_type,
            )
        return
    logger.info("near-expiry event for %s/%s: %s %s", tenant, integration, result.action.value, result.detail)


def asks_for_redelivery(error: OnboardingError) -> bool:
    """Whether a failed rotation may succeed if the same event comes again: the 5xx family (an Azure
    service failing, throttling or timing out, or an internal error). A 4xx names a state that
    redelivering the event does not change; should it change (consent given again), the timer's
    sweep finds the registration anyway."""
    return error.status >= 500


@bp.route(
    route="tenants/{tenantId}/integrations/{integration}/rotate", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
@problem_responses
async def rotate_now(req: func.HttpRequest) -> func.HttpResponse:
    """Rotate now (e.g. after a suspected leak); optionally retire the previous secret at once."""
    tenant_id, integration = tenant_id_param(req), integration_param(req)
    body = json_body(req, {"retirePrevious"})
    choice = body.get("retirePrevious", "afterGracePeriod")
    if choice not in RETIRE_CHOICES:
        raise InvalidRequest("retirePrevious must be afterGracePeriod or immediately.", field="retirePrevious")
    result = await services().rotation.rotate(tenant_id, integration, force=True, retire_now=RETIRE_CHOICES[choice])
    if result.action is Action.BUSY:
        raise RegistrationBusy("Another operation on this registration is in progress; retry shortly.")
    if result.action is Action.PENDING:
        return json_response(rotation_json(result), 202, {"Retry-After": "5"})
    return json_response(rotation_json(result), 200)


def names_its_registration(item: WorkItem) -> bool:
    """Whether the record a work item names is this deployment's, and the registration's it says (anyone holding the
    queue role can write to the queue: a message never chooses what is rotated beyond what its record says)."""
    registry = services().settings.registry
    if item.listing is Listing.CERTIFICATES:
        return registry.parse_certificate_name(item.name) == (item.tenant_id, item.integration)
    secret = registry.parse_secret_name(item.name)
    return secret is not None and (secret.tenant_id, secret.integration) == (item.tenant_id, item.integration)


def registration_of_event(event_type: str, data: Any) -> tuple[str, str] | None:
    """(tenant, integration) of a Key Vault event about one of our client secrets or certificates, else None.

    Event Grid's Key Vault payload casing varies (`ObjectName` / `objectName`); read it
    case-insensitively and ignore anything that is not ours: other vaults, other kinds, other names.
    """
    if (event_type or "").lower() not in ROTATION_EVENTS or not isinstance(data, dict):
        return None
    fields = {str(k).lower(): v for k, v in data.items()}
    settings = services().settings
    object_type = str(fields.get("objecttype", "")).lower()
    if object_type not in ("secret", "certificate"):
        return None
    if str(fields.get("vaultname", "")).lower() != vault_name(settings.key_vault_url):
        logger.info("ignoring a Key Vault event from another vault")
        return None
    if object_type == "certificate":
        certificate = settings.registry.parse_certificate_name(str(fields.get("objectname", "")))
        if certificate is None or services().catalog.get(certificate[1]) is None:
            return None
        return certificate
    secret = settings.registry.parse_secret_name(str(fields.get("objectname", "")))
    if (
        secret is None
        or secret.kind is not SecretKind.CLIENT_SECRET
        or services().catalog.get(secret.integration) is None
    ):
        return None
    return secret.tenant_id, secret.integration


def vault_name(vault_url: str) -> str:
    """The name Event Grid reports for a vault: the first label of {name}.vault.azure.net.
    A local stand-in on an IP address or localhost is named by its host."""
    host = (urlsplit(vault_url).hostname or "").lower()
    if host == "localhost" or re.fullmatch(r"[\d.]+|[0-9a-f:]+", host):
        return host
    return host.split(".")[0]
