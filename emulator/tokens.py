"""Access tokens: the stand-in signs JWTs like Entra's and verifies them for Graph and Key Vault.

Claims follow Entra's app-only access tokens: v1.0 tokens (`iss` https://sts.windows.net/{tid}/ in the
public cloud) for resource APIs such as Graph and Key Vault, and v2.0 tokens
(`iss` https://login.microsoftonline.com/{tid}/v2.0) for `api://AzureADTokenExchange`,
which is the issuer a federated identity credential names. Another cloud (emulator/clouds.py) has its own
issuers and token exchange audience. Tokens are RS256-signed with a
key published at `/{tenant}/discovery/v2.0/keys`, as Entra publishes its signing keys.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .clouds import PUBLIC, Posture

TOKEN_LIFETIME_SECONDS = 3600
# Entra allows a few minutes of clock skew; the stand-in is strict to one minute.
LEEWAY_SECONDS = 60


# The template id in the `wids` of service principals' tokens besides their assigned roles (see `issue`).
DEFAULT_SERVICE_PRINCIPAL_ROLE = "0997a1d0-0d1d-4acb-b408-d5ca73121e90"


@dataclass(frozen=True)
class Caller:
    """Who a verified bearer token says is calling."""

    tenant_id: str
    object_id: str
    app_id: str
    roles: frozenset[str]
    audience: str
    issuer: str


class TokenError(Exception):
    """A bearer token that must be refused; `reason` is safe to show the caller."""

    def __init__(self, reason: str, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "invalid", "expired", "audience", "issuer"


class TokenService:
    def __init__(self, key_path: Path | None = None, posture: Posture = PUBLIC) -> None:
        self.posture = posture  # the cloud whose issuers and audiences the stand-in's tokens carry
        self._key = _load_or_create_key(key_path)
        public = self._key.public_key()
        self.key_id = uuid.uuid5(uuid.NAMESPACE_OID, str(public.public_numbers().n)).hex
        self._public_key = public
        # Verification is the hot path of every request; a token verified once is cached.
        self._verified: dict[str, dict[str, Any]] = {}

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self._public_key, as_dict=True)
        jwk.update({"kid": self.key_id, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def issue(
        self,
        *,
        tenant_id: str,
        audience: str,
        object_id: str,
        app_id: str,
        roles: list[str],
        display_name: str = "",
        subject: str | None = None,
        directory_roles: list[str] | None = None,
    ) -> tuple[str, int]:
        now = int(time.time())
        expires = now + TOKEN_LIFETIME_SECONDS
        v2 = audience == self.posture.federation_audience
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.posture.v2_issuer_of(tenant_id) if v2 else self.posture.v1_issuer_of(tenant_id),
            "iat": now,
            "nbf": now,
            "exp": expires,
            "tid": tenant_id,
            "oid": object_id,
            "sub": subject or object_id,
            "idtyp": "app",
            "ver": "2.0" if v2 else "1.0",
            "uti": uuid.uuid4().hex[:22],
        }
        if v2:
            claims["azp"] = app_id
        else:
            claims["appid"] = app_id
            claims["app_displayname"] = display_name
        if roles:
            claims["roles"] = sorted(roles)
        if directory_roles:
            # An app's Entra roles by template id, with the id every service principal's token carries beside
            # them (a recorded app-only token: https://github.com/microsoftgraph/msgraph-sdk-powershell/issues/1782).
            # Without an assigned role the claim is left out: whether Entra sends that id alone is unknown.
            claims["wids"] = sorted({*directory_roles, DEFAULT_SERVICE_PRINCIPAL_ROLE})
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id})
        return token, expires

    def verify(self, token: str, audiences: set[str]) -> Caller:
        claims = self._verified.get(token)
        if claims is None:
            try:
                claims = jwt.decode(
                    token,
                    self._public_key,
                    algorithms=["RS256"],
                    options={"verify_aud": False, "require": ["exp", "iss", "tid", "oid"]},
                    leeway=LEEWAY_SECONDS,
                )
            except jwt.ExpiredSignatureError as exc:
                raise TokenError("the token is expired", "expired") from exc
            except jwt.PyJWTError as exc:
                raise TokenError("the token signature or format is invalid") from exc
            if len(self._verified) > 50_000:
                self._verified.clear()
            self._verified[token] = claims
        elif claims["exp"] + LEEWAY_SECONDS < time.time():
            raise TokenError("the token is expired", "expired")
        if claims["aud"] not in audiences:
            raise TokenError("the token audience is not accepted by this service", "audience")
        tenant_id = claims["tid"]
        if claims["iss"] not in (self.posture.v1_issuer_of(tenant_id), self.posture.v2_issuer_of(tenant_id)):
            raise TokenError("the token issuer does not match its tenant", "issuer")
        return Caller(
            tenant_id=tenant_id,
            object_id=claims["oid"],
            app_id=claims.get("appid") or claims.get("azp") or "",
            roles=frozenset(claims.get("roles", [])),
            audience=claims["aud"],
            issuer=claims["iss"],
        )

    def decode_unverified_assertion(self, assertion: str) -> dict[str, Any]:
        """Claims of a client assertion after checking our signature (the issuer is ours)."""
        return dict(
            jwt.decode(
                assertion,
                self._public_key,
                algorithms=["RS256"],
                options={"verify_aud": False, "require": ["exp", "iss", "sub", "aud"]},
                leeway=LEEWAY_SECONDS,
            )
        )


def _load_or_create_key(key_path: Path | None) -> rsa.RSAPrivateKey:
    if key_path is not None and key_path.exists():
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        return loaded
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_path is not None:
        key_path.parent.mkdir(parents=True, exist_ok=True)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
    return key
