"""`FakeChecker`: a token request against a `FakeDirectory`, implementing `shared.domain.ports.CredentialChecker`.

The token's `roles` are what the directory really granted. A secret the directory does not hold (wrong,
removed, expired) is refused as Entra refuses it, with the codes of a secret still replicating, so the port
raises `NotReplicatedYet` for it, as the real checker does; `not_replicated_for(n)` refuses the next n
requests that way whatever the credential. A certificate (`CertificateKey`) proves the app only while the
app holds a valid key credential under the keyId this service derives from its SHA-256 thumbprint
(`Registry.key_credential_id`) and the key signs for that certificate; otherwise Entra answers AADSTS700027
("the key was not found"), which the real checker reads as a key still replicating. `HoldableChecker` yields first and can hold token requests
mid-rotation (`hold_proofs`, `release_proofs`).

tests/contract/ checks this fake against `shared.adapters.token_check.TokenRoleChecker` on the stand-in.
"""

from __future__ import annotations

import asyncio
import base64

import jwt
from cryptography import x509

from shared.domain.catalog import Catalog
from shared.domain.model import CertificateKey, ClientAssertion, ClientCredential, Secret
from shared.domain.ports import NotReplicatedYet
from shared.domain.registry import Registry
from tests.fakes.certificates import key_matches
from tests.fakes.directory import FakeDirectory
from tests.fakes.switches import FaultSwitches


class FakeChecker(FaultSwitches):
    """A token request against the FakeDirectory: the token's `roles` are what is really granted."""

    def __init__(self, directory: FakeDirectory, catalog: Catalog) -> None:
        super().__init__()
        self.directory = directory
        self.not_replicated = 0
        self.rejected = 0
        # (tenant id, client id) -> template ids of the Entra roles the app's service principal holds.
        self.held_directory_roles: dict[tuple[str, str], set[str]] = {}
        self._resources = {p.token_scope: p.resource_app_id for profile in catalog for p in profile.permissions}

    def not_replicated_for(self, attempts: int) -> None:
        """The next `attempts` token requests fail as Entra does while a new secret replicates."""
        self.not_replicated = attempts

    def _refusal_code(self, tenant_id: str, client_id: str, secret: Secret) -> str:
        """Entra's code: AADSTS700016 for an app it does not know, AADSTS7000222 for an expired secret of the
        app, else AADSTS7000215 (an invalid secret)."""
        app = self.directory.tenants[tenant_id].app_by_app_id(client_id)
        if app is None:
            return "AADSTS700016"
        now = self.directory.now()
        expired = any(p.text == secret.reveal() and p.info.end <= now for p in app.passwords.values())
        return "AADSTS7000222" if expired else "AADSTS7000215"

    def _key_refusal_code(self, tenant_id: str, client_id: str, key: CertificateKey) -> str | None:
        """None when the certificate proves the app now, else Entra's code: AADSTS700016 for an app it does not
        know, AADSTS700027 for a key not on the app (wrong, removed, expired, not yet valid, or not the key of
        the certificate the app holds)."""
        app = self.directory.tenants[tenant_id].app_by_app_id(client_id)
        if app is None:
            return "AADSTS700016"
        key_id = Registry.key_credential_id(key.certificate.thumbprint_sha256)
        on_app = self.directory.current_key(tenant_id, client_id, key_id)
        if on_app is None or not key_matches(key.pkcs12.reveal(), on_app.der):
            return "AADSTS700027"
        return None

    def _assertion_refusal_code(self, tenant_id: str, client_id: str, signed: ClientAssertion) -> str | None:
        """A vendor's assertion proves the app when its `x5t#S256` names a key currently on the app and the
        key's certificate verifies its signature, with `iss` and `sub` the client id (as Entra checks,
        https://learn.microsoft.com/entra/identity-platform/certificate-credentials)."""
        app = self.directory.tenants[tenant_id].app_by_app_id(client_id)
        if app is None:
            return "AADSTS700016"
        try:
            header = jwt.get_unverified_header(signed.assertion.reveal())
            thumbprint = base64.urlsafe_b64decode(str(header["x5t#S256"]) + "==").hex().upper()
        except (jwt.PyJWTError, KeyError, ValueError):
            return "AADSTS50027"
        on_app = self.directory.current_key(tenant_id, client_id, Registry.key_credential_id(thumbprint))
        if on_app is None:
            return "AADSTS700027"
        public_key = x509.load_der_x509_certificate(on_app.der).public_key()
        try:
            claims = jwt.decode(
                signed.assertion.reveal(), public_key, algorithms=["PS256", "RS256", "ES256"],  # type: ignore[arg-type]
                options={"verify_aud": False},
            )  # fmt: skip
        except jwt.PyJWTError:
            return "AADSTS700027"
        return None if claims.get("iss") == claims.get("sub") == client_id else "AADSTS50048"

    async def granted_roles(self, tenant_id: str, client_id: str, credential: ClientCredential, scope: str) -> set[str]:
        self._enter("granted_roles", tenant_id=tenant_id, client_id=client_id, scope=scope)
        if isinstance(credential, CertificateKey):
            if self.not_replicated > 0:
                self.not_replicated -= 1
                raise NotReplicatedYet("the new credential", "AADSTS700027")
            if (code := self._key_refusal_code(tenant_id, client_id, credential)) is not None:
                # As for a secret: the code of a key still replicating, read by TokenRoleChecker as NotReplicatedYet.
                self.rejected += 1
                raise NotReplicatedYet("the new credential", code)
        elif isinstance(credential, ClientAssertion):
            if (code := self._assertion_refusal_code(tenant_id, client_id, credential)) is not None:
                self.rejected += 1
                raise NotReplicatedYet("the new credential", code)
        else:
            if self.not_replicated > 0:
                self.not_replicated -= 1
                raise NotReplicatedYet("the new client secret", "AADSTS7000215")
            if not self.directory.is_current_password(tenant_id, client_id, credential.reveal()):
                # Entra answers a secret it does not know (wrong, removed, expired or not yet started) with
                # AADSTS7000215 or 7000222, the very codes of a secret still replicating, and TokenRoleChecker
                # reads both as NotReplicatedYet (tests/contract/test_checker.py holds the two to it).
                self.rejected += 1
                raise NotReplicatedYet("the new client secret", self._refusal_code(tenant_id, client_id, credential))
        resource = self._resources[scope]
        return self.directory.granted_values(tenant_id, client_id).get(resource, set())

    async def directory_roles(
        self, tenant_id: str, client_id: str, credential: ClientCredential, scope: str
    ) -> set[str]:
        await self.granted_roles(tenant_id, client_id, credential, scope)  # the same sign-in, the same refusals
        return set(self.held_directory_roles.get((tenant_id, client_id), set()))


class HoldableChecker(FakeChecker):
    """A FakeChecker that yields first, and after `hold_proofs(n)` makes the next n token requests wait
    until `release_proofs()`: a rotation held there has minted its new secret and not stored it yet."""

    def __init__(self, directory: FakeDirectory, catalog: Catalog) -> None:
        super().__init__(directory, catalog)
        self._open = asyncio.Event()
        self._open.set()
        self._to_hold = 0
        self.held = 0  # token requests that are waiting now

    def hold_proofs(self, times: int = 1) -> None:
        self._to_hold = times
        self._open.clear()

    def release_proofs(self) -> None:
        self._to_hold = 0
        self._open.set()

    async def granted_roles(self, tenant_id: str, client_id: str, credential: ClientCredential, scope: str) -> set[str]:
        await asyncio.sleep(0)
        if self._to_hold > 0:
            self._to_hold -= 1
            self.held += 1
            try:
                await self._open.wait()
            finally:
                self.held -= 1
        return await super().granted_roles(tenant_id, client_id, credential, scope)
