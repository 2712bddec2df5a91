"""Real X.509 certificates for the fakes: self-signed RSA-2048, with their PKCS#12 as Key Vault exports it.

Generating an RSA-2048 key costs about 50 ms, so the fakes draw keys from a small pool made once per test
session and handed out round-robin; each certificate is still new (its own serial number and dates, so its
own thumbprints). `FakeVault.create_certificate` makes its certificates here, and a test that needs a
certificate someone else made (a vendor's, an intruder's) can call `self_signed`.
"""

from __future__ import annotations

import base64
import functools
import itertools
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

KEY_POOL_SIZE = 4  # distinct keys in one session: enough that consecutive certificates never share one
_pool: list[rsa.RSAPrivateKey] = []
_turn = itertools.count()
_SPKI = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
# The public key of each bundle's private key, by bundle: loading a PKCS#12 validates its RSA key (~35 ms), so
# a bundle made here is never loaded just to learn what it was made with.
_bundle_public_keys: dict[str, bytes] = {}


def _next_key() -> rsa.RSAPrivateKey:
    """A key from the session's pool, made on first need (at most KEY_POOL_SIZE of them), then reused in turn."""
    turn = next(_turn)
    if len(_pool) < KEY_POOL_SIZE:
        _pool.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return _pool[-1]
    return _pool[turn % KEY_POOL_SIZE]


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate (DER) and its key, as Key Vault's backing secret holds them: PKCS#12, base64, no password."""

    der: bytes
    pkcs12_base64: str


def self_signed(subject: str, not_before: datetime, not_after: datetime) -> IssuedCertificate:
    """A new self-signed certificate for `subject` (an RFC 4514 name such as `CN=app.tenant`)."""
    key = _next_key()
    name = x509.Name.from_rfc4514_string(subject) if "=" in subject else _common_name(subject)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    bundle = base64.b64encode(
        pkcs12.serialize_key_and_certificates(None, key, certificate, None, serialization.NoEncryption())
    ).decode()
    _bundle_public_keys[bundle] = key.public_key().public_bytes(*_SPKI)
    return IssuedCertificate(certificate.public_bytes(serialization.Encoding.DER), bundle)


def _common_name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def key_matches(pkcs12_base64: str, certificate_der: bytes) -> bool:
    """Whether the PKCS#12's private key is the key of this certificate (what Entra's signature check comes to)."""
    public_key = _bundle_public_keys.get(pkcs12_base64)
    if public_key is None:
        try:
            private_key, _, _ = pkcs12.load_key_and_certificates(base64.b64decode(pkcs12_base64), None)
        except ValueError:
            return False
        if private_key is None:
            return False
        public_key = _bundle_public_keys[pkcs12_base64] = private_key.public_key().public_bytes(*_SPKI)
    return public_key == _certificate_public_key(certificate_der)


@functools.lru_cache(maxsize=1024)
def _certificate_public_key(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_key().public_bytes(*_SPKI)
