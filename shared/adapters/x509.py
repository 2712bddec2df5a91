"""X.509 and PKCS#12 as the project's values: certificates read, thumbprints taken, client assertions signed.

A client assertion is how an app proves it holds a certificate's key in a token request: a short JWT
signed with the key, naming the certificate by its SHA-256 thumbprint in the `x5t#S256` header, with
PS256 (https://learn.microsoft.com/entra/identity-platform/certificate-credentials). azure-identity's
CertificateCredential would send the SHA-1 `x5t` with RS256, so the assertion is built here and handed
to ClientAssertionCredential.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from shared.domain.model import CertificateKey, PublicCertificate, Secret

# Entra reads an assertion valid for 5-10 minutes (the certificate-credentials page above).
ASSERTION_LIFETIME = timedelta(minutes=10)


def public_certificate(der: bytes) -> PublicCertificate:
    """The certificate's public part with both thumbprints, from its DER bytes."""
    certificate = x509.load_der_x509_certificate(der)
    return PublicCertificate(
        der=der,
        thumbprint_sha1=certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - an identifier
        thumbprint_sha256=certificate.fingerprint(hashes.SHA256()).hex().upper(),
        subject=certificate.subject.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def certificate_key(pkcs12_base64: str) -> CertificateKey:
    """A PKCS#12 bundle as Key Vault's backing secret holds it (base64, no password) as a CertificateKey."""
    _, certificate, _ = pkcs12.load_key_and_certificates(base64.b64decode(pkcs12_base64), None)
    if certificate is None:
        raise ValueError("the PKCS#12 bundle holds no certificate")
    return CertificateKey(
        public_certificate(certificate.public_bytes(serialization.Encoding.DER)), Secret(pkcs12_base64)
    )


def client_assertion(key: CertificateKey, client_id: str, token_endpoint: str, now: datetime) -> str:
    """A signed client assertion for one token request (RFC 7523, with Entra's `x5t#S256` header)."""
    private_key, _, _ = pkcs12.load_key_and_certificates(base64.b64decode(key.pkcs12.reveal()), None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError("Entra's client assertions are signed with an RSA key")
    thumbprint = bytes.fromhex(key.certificate.thumbprint_sha256)
    issued = int(now.timestamp())
    claims = {
        "aud": token_endpoint,
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ASSERTION_LIFETIME.total_seconds()),
    }
    headers = {"x5t#S256": base64.urlsafe_b64encode(thumbprint).rstrip(b"=").decode()}
    return jwt.encode(claims, private_key, algorithm="PS256", headers=headers)
