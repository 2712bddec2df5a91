"""The registry's one home: how a registration is named in Entra and Key Vault, and what its Key Vault tags mean.

There is no database: Entra finds a registration's app by its `uniqueName`, Key Vault holds its
three secrets under names built here, and the secrets' tags are the record of what is managed
(README, "How idempotency works without a database"). Everything that builds or parses one of
these names, or reads or writes one of these tags, goes through this module, so the scheme can
change in one place and the Key Vault event trigger parses names the way they were built.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from shared.domain.model import REGISTRATION_KINDS, SecretKind

# A catalog integration id: lowercase letters, digits and hyphens, 3-32 characters. It appears in
# the app's uniqueName and in Key Vault secret names (which allow 0-9, a-z, A-Z and '-':
# https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates#object-identifiers).
INTEGRATION_ID_PATTERN: Final = r"[a-z][a-z0-9-]{1,30}[a-z0-9]"
INTEGRATION_ID: Final = re.compile(rf"^{INTEGRATION_ID_PATTERN}$")
# A directory (tenant) id as every entry point hands it on: validated, lower-case 8-4-4-4-12.
TENANT_ID_PATTERN: Final = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class Tag:
    """The Key Vault tags on a registration's secrets: its record, and rotation's journal.

    Key Vault allows 15 tags per secret, names up to 512 characters
    (https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates).
    """

    # On all three secrets: what the registration is.
    MANAGED_BY: Final = "managed-by"  # this deployment's name prefix; the sweep lists only these
    TENANT_ID: Final = "tenant-id"
    INTEGRATION: Final = "integration"
    KIND: Final = "kind"  # a SecretKind value
    APP_OBJECT_ID: Final = "app-object-id"
    CLIENT_ID: Final = "client-id"
    # On the client secret: which credential on the app this version holds, and its life.
    KEY_ID: Final = "key-id"
    VERIFIED: Final = "verified"  # "true" once a token request with it held every granted role
    ISSUED_AT: Final = "issued-at"
    LIFETIME_DAYS: Final = "lifetime-days"  # what the onboarding caller asked for; rotation keeps to it
    # Rotation's journal (shared/usecases/rotation.py).
    PENDING: Final = "pending"  # display name of a credential being minted; removed on the next run if it died
    PENDING_SINCE: Final = "pending-since"  # first run that found Entra not caught up; FAILED after a deadline
    STAGED: Final = "staged"  # keyId of a minted, stored, not yet proven credential (in the staging secret)
    STAGED_BY: Final = (
        "staged-by"  # "on-demand" when an on-demand rotation staged it (a leak's rotation reuses no other)
    )
    PREVIOUS_KEY_ID: Final = "previous-key-id"
    ROTATED_AT: Final = "rotated-at"
    RETIRE_AFTER: Final = "retire-after"  # superseded credentials are removed after this moment
    STAGED_KIND: Final = "staged-client-secret"  # the `kind` of a staging secret (never a consumer's)
    # On the current credential's record: the problem the last rotation ended with, when, and how many rotations in
    # a row did ("<problem type> <timestamp> <count>": one tag, as a rotated secret's tags come close to the 15 Key
    # Vault allows); the fleet view's `failing` and `consent-revoked`. A rotation that ends well sheds it.
    LAST_PROBLEM: Final = "last-problem"
    # On the Client ID secret: which credential type the registration uses now (shared/domain/model.py).
    CREDENTIAL_TYPE: Final = "credential-type"
    # On the Client ID and Tenant ID secrets: the add-ons the registration has, comma-separated (none: absent).
    ADD_ONS: Final = "add-ons"
    # On the Client ID secret: the add-ons whose remaining step the app's own token last showed done (none: absent).
    STEPS_DONE: Final = "steps-done"
    # On the workspace id secret: the workspace's resource id, the role given there and its assignment (offboarding
    # removes it).
    WORKSPACE_RESOURCE_ID: Final = "workspace-resource-id"
    WORKSPACE_ROLE: Final = "workspace-role"
    ROLE_ASSIGNMENT_ID: Final = "role-assignment-id"
    # On a client certificate (a Key Vault certificate, not a secret): its `kind`, and the SHA-256 thumbprint
    # of the certificate a staging certificate holds (rotation's journal for certificates).
    CERTIFICATE_KIND: Final = "client-certificate"
    STAGED_CERTIFICATE_KIND: Final = "staged-client-certificate"
    # On a client secret a certificate replaced: removed from the app and Key Vault after `retire-after`.
    SUPERSEDED_BY: Final = "superseded-by"
    THUMBPRINT: Final = "thumbprint"  # a vendor certificate's SHA-256 thumbprint
    TRUE: Final = "true"
    FALSE: Final = "false"


# A rotation's problem record (above): what a new version never inherits.
PROBLEM_TAGS: Final = (Tag.LAST_PROBLEM,)
MAX_TAGS: Final = 15  # per secret or certificate (the limits page cited on Tag)


TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
# Any fixed namespace will do; it only has to stay the same for keyIds to be found again.
_KEY_ID_NAMESPACE: Final = uuid.UUID("6f1c1e0a-3b8e-4a8c-9d1e-2f6a7c0b5d41")
# The app registration's notes: what an admin reading Entra learns about who manages it (the caller may append).
APP_NOTES: Final = "Managed by tenant onboarding automation: permissions and secrets are set and rotated automatically."


def iso(moment: datetime) -> str:
    """A moment as the tags (and the HTTP API) write it: UTC, seconds, `Z`."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_iso(value: str | None) -> datetime | None:
    """A tag's timestamp, or None when it is missing or not in the tags' format (never an error)."""
    if not value:
        return None
    try:
        return datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class ProblemRecord:
    """The `last-problem` tag's value, read and written."""

    type: str
    at: datetime | None
    failures: int

    def tag(self) -> str:
        return f"{self.type} {iso(self.at) if self.at else '-'} {self.failures}"

    @staticmethod
    def parse(value: str | None) -> ProblemRecord | None:
        """None when there is no problem; a value in another shape reads as one failure of that problem."""
        if not value:
            return None
        parts = value.split()
        failures = parts[2] if len(parts) > 2 else "1"
        return ProblemRecord(
            parts[0], parse_iso(parts[1]) if len(parts) > 1 else None, int(failures) if failures.isdigit() else 1
        )


@dataclass(frozen=True)
class SecretRef:
    """What a Key Vault secret name of this registry says: whose secret it is."""

    tenant_id: str
    integration: str
    kind: SecretKind


@dataclass(frozen=True)
class Registry:
    """The naming scheme of one deployment, which its name prefix (setting NAME_PREFIX) makes its own."""

    prefix: str

    @staticmethod
    def app_tags(integration: str) -> tuple[str, ...]:
        """The app registration's tags: what it is, for an admin reading Entra (constant, whatever the prefix)."""
        return ("tenant-onboarding", f"integration:{integration}")

    def unique_name(self, integration: str) -> str:
        """The app's `uniqueName` in the tenant: one app per integration, found again by this name."""
        return f"{self.prefix}-{integration}"

    def connector_unique_name(self, integration: str) -> str:
        """The `uniqueName` of the integration's multi-tenant connector app in the home tenant (federated type)."""
        return f"{self.prefix}-connector-{integration}"

    def secret_name(self, tenant_id: str, integration: str, kind: SecretKind) -> str:
        # Key Vault names allow 0-9, a-z, A-Z and '-'; all three parts are validated to that alphabet.
        return f"{self.prefix}-{tenant_id}-{integration}-{kind.value}"

    @property
    def probe_secret_name(self) -> str:
        """A secret name no registration can have (no tenant id in it): what the warm-up reads to open Key Vault."""
        return f"{self.prefix}-warm-up"

    def staging_secret_name(self, tenant_id: str, integration: str) -> str:
        """Where rotation keeps a new client secret until a token proves it: never a consumer's reference, and
        no name `parse_secret_name` or the Event Grid filter (`-client-secret` at the end) takes for one."""
        return f"{self.secret_name(tenant_id, integration, SecretKind.CLIENT_SECRET)}-staged"

    def certificate_name(self, tenant_id: str, integration: str) -> str:
        """The registration's client certificate in Key Vault. Its backing secret (the PKCS#12 downstream
        services read) has the same name: certificates and secrets share one namespace in a vault
        (https://learn.microsoft.com/azure/key-vault/certificates/about-certificates#composition-of-a-certificate)."""
        return f"{self.prefix}-{tenant_id}-{integration}-{Tag.CERTIFICATE_KIND}"

    def staging_certificate_name(self, tenant_id: str, integration: str) -> str:
        """Where rotation creates a new certificate until a token proves it (never a consumer's reference)."""
        return f"{self.certificate_name(tenant_id, integration)}-staged"

    def parse_certificate_name(self, name: str) -> tuple[str, str] | None:
        """(tenant id, integration) of a client certificate this deployment named; None for any other name."""
        pattern = rf"{re.escape(self.prefix)}-({TENANT_ID_PATTERN})-({INTEGRATION_ID_PATTERN})-{Tag.CERTIFICATE_KIND}"
        match = re.fullmatch(pattern, name)
        return (match.group(1), match.group(2)) if match else None

    @staticmethod
    def key_credential_id(thumbprint_sha256: str) -> str:
        """The keyId this service gives a certificate on an app: derived from the certificate, so adding the
        same certificate twice (a retry after a lost answer) converges on one key credential."""
        return str(uuid.uuid5(_KEY_ID_NAMESPACE, thumbprint_sha256.upper()))

    @staticmethod
    def role_assignment_name(scope: str, principal_id: str, role_definition_id: str) -> str:
        """The name (a GUID) of the role assignment this service makes: derived from what it assigns, so a retry
        after a lost answer, or after a crash, puts the same assignment again instead of a second one."""
        return str(uuid.uuid5(_KEY_ID_NAMESPACE, f"{scope.lower()}|{principal_id}|{role_definition_id}"))

    def secret_names(
        self, tenant_id: str, integration: str, kinds: Iterable[SecretKind] = REGISTRATION_KINDS
    ) -> dict[SecretKind, str]:
        return {kind: self.secret_name(tenant_id, integration, kind) for kind in kinds}

    def parse_secret_name(self, name: str) -> SecretRef | None:
        """The inverse of `secret_name`, for names this deployment wrote; None for any other name."""
        kinds = "|".join(re.escape(kind.value) for kind in SecretKind)
        pattern = rf"{re.escape(self.prefix)}-({TENANT_ID_PATTERN})-({INTEGRATION_ID_PATTERN})-({kinds})"
        match = re.fullmatch(pattern, name)
        if match is None:
            return None
        return SecretRef(match.group(1), match.group(2), SecretKind(match.group(3)))

    @staticmethod
    def registration_key(tenant_id: str, integration: str) -> str:
        """The key of the registration's lock: one writer per (tenant, integration)."""
        return f"{tenant_id}/{integration}"

    @staticmethod
    def connector_lock_key(integration: str) -> str:
        """The lock of an integration's connector app: no registration's key (those hold a tenant id)."""
        return f"connector/{integration}"

    @property
    def credential_prefix(self) -> str:
        """How this service recognises credentials it issued: their display names start with it."""
        return f"{self.prefix} "

    def issued_here(self, display_name: str | None) -> bool:
        return (display_name or "").startswith(self.credential_prefix)

    def new_credential_name(self) -> str:
        """Unique per attempt, and prefixed: a lost addPassword answer can be found by it and removed."""
        return f"{self.credential_prefix}{uuid.uuid4().hex[:12]}"

    def tags(self, tenant_id: str, integration: str, kind: str, app_object_id: str, client_id: str) -> dict[str, str]:
        """The tags every secret (and certificate) of a registration carries: what it is and whose.
        `kind`: a SecretKind, or Tag.CERTIFICATE_KIND / Tag.STAGED_CERTIFICATE_KIND."""
        return {
            Tag.MANAGED_BY: self.prefix,
            Tag.TENANT_ID: tenant_id,
            Tag.INTEGRATION: integration,
            Tag.KIND: str(kind),
            Tag.APP_OBJECT_ID: app_object_id,
            Tag.CLIENT_ID: client_id,
        }

    def is_managed_client_certificate(self, tags: dict[str, str]) -> bool:
        """Whether a listed certificate is a client certificate this deployment manages (the sweep's filter)."""
        return tags.get(Tag.MANAGED_BY) == self.prefix and tags.get(Tag.KIND) == Tag.CERTIFICATE_KIND

    def is_swept_secret(self, tags: dict[str, str]) -> bool:
        """Whether a listed secret is one the sweep plans from: a client secret, or a vendor certificate's record
        (never rotated here, but its expiry is reported)."""
        return tags.get(Tag.MANAGED_BY) == self.prefix and tags.get(Tag.KIND) in (
            SecretKind.CLIENT_SECRET.value,
            SecretKind.VENDOR_CERTIFICATE.value,
        )
