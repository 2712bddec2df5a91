"""X.509 and PKCS#12 as the project's values: certificates read, thumbprints taken, client assertions signed.

A client assertion is how an app proves it holds a certificate's key in a token request: a short JWT
signed with the key, naming the certificate by its SHA-256 thumbprint in the `x5t#S256` header, with
PS256 (https://learn.microsoft.com/entra/identity-platform/certificate-credentials). azure-identity's
CertificateCredential would send the SHA-1 `x5t` with RS256, so the assertion is built here and handed
to ClientAssertionCredential.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.domain.errors import InvalidRequest, PrivateKeySupplied
from shared.domain.model import CertificateKey, PublicCertificate, Secret

# Entra reads an assertion valid for 5-10 minutes (the certificate-credentials page above).
ASSERTION_LIFETIME = timedelta(minutes=10)
# What a vendor-supplied certificate must be at least: RSA bits, and EC curves by name.
MIN_RSA_BITS = 2048
ACCEPTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

# `cryptography` and PyJWT are imported by the functions that use them, on the first certificate: most
# invocations never touch one, and a cold start should pay only for what every invocation needs.
# PEM armour that means a private key is in the text, whatever the key type or encryption.
PRIVATE_KEY_ARMOUR = ("PRIVATE KEY-----",)


def public_certificate(der: bytes) -> PublicCertificate:
    """The certificate's public part with both thumbprints, from its DER bytes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

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
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    _, certificate, _ = pkcs12.load_key_and_certificates(base64.b64decode(pkcs12_base64), None)
    if certificate is None:
        raise ValueError("the PKCS#12 bundle holds no certificate")
    return CertificateKey(
        public_certificate(certificate.public_bytes(serialization.Encoding.DER)), Secret(pkcs12_base64)
    )


def client_assertion(key: CertificateKey, client_id: str, token_endpoint: str, now: datetime) -> str:
    """A signed client assertion for one token request (RFC 7523, with Entra's `x5t#S256` header)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12

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


class X509Reader:
    """The CertificateReader port: a vendor's public certificate (PEM, or base64 DER), read strictly.

    Refused before anything is parsed for use: text that holds a private key (PEM armour, or a PKCS#12
    bundle, encrypted or not), with PrivateKeySupplied, whose message never repeats the text; anything that
    is not exactly one X.509 certificate; an RSA key under 2048 bits or an EC key off P-256/384/521
    (Entra's certificate credentials: https://learn.microsoft.com/entra/identity-platform/certificate-credentials)."""

    def public_certificate(self, text: str) -> PublicCertificate:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        if any(armour in text for armour in PRIVATE_KEY_ARMOUR) or _is_pkcs12(text):
            raise PrivateKeySupplied(
                "certificate must hold only the public certificate; it held a private key, which was discarded "
                "and not stored or logged.",
                field="certificate",
            )
        certificate: Certificate
        try:
            if "-----BEGIN CERTIFICATE-----" in text:
                if text.count("-----BEGIN CERTIFICATE-----") != 1:
                    raise ValueError("more than one certificate")
                certificate = x509.load_pem_x509_certificate(text.encode())
            else:
                certificate = x509.load_der_x509_certificate(_base64(text))
        except (ValueError, binascii.Error) as error:
            raise InvalidRequest(
                "certificate must be one X.509 certificate, PEM or base64 DER.", field="certificate"
            ) from error
        key = certificate.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                raise InvalidRequest(
                    f"certificate must have an RSA key of at least {MIN_RSA_BITS} bits.", field="certificate"
                )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if key.curve.name not in ACCEPTED_CURVES:
                raise InvalidRequest("certificate must have an EC key on P-256, P-384 or P-521.", field="certificate")
        else:
            raise InvalidRequest("certificate must have an RSA or EC key.", field="certificate")
        return public_certificate(certificate.public_bytes(serialization.Encoding.DER))


def _base64(text: str) -> bytes:
    return base64.b64decode("".join(text.split()), validate=True)


def _is_pkcs12(text: str) -> bool:
    """Whether base64 text is a PKCS#12 bundle (a PFX, which carries keys): PFX ::= SEQUENCE { version INTEGER 3,
    authSafe ContentInfo } (RFC 7292, section 4), so its DER opens with a SEQUENCE whose first element is the
    INTEGER 3. A certificate's first element is a SEQUENCE, so the two cannot be confused; the password, if
    any, never matters."""
    try:
        der = _base64(text)
    except (ValueError, binascii.Error):
        return False
    if len(der) < 8 or der[0] != 0x30:
        return False
    length_octets = der[1] - 0x80 if der[1] & 0x80 else 0
    body = der[2 + length_octets :]
    return body[:3] == b"\x02\x01\x03"
