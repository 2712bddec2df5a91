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

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from shared.domain.errors import InvalidRequest, PrivateKeySupplied
from shared.domain.model import CertificateKey, PublicCertificate, Secret

# Entra reads an assertion valid for 5-10 minutes (the certificate-credentials page above).
ASSERTION_LIFETIME = timedelta(minutes=10)
# What a vendor-supplied certificate must be at least, in line with Key Vault's own minimums.
MIN_RSA_BITS = 2048
ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
# PEM armour that means a private key is in the text, whatever the key type or encryption.
_PRIVATE_KEY_ARMOUR = ("PRIVATE KEY-----", "BEGIN ENCRYPTED PRIVATE KEY")
MAX_CERTIFICATE_CHARS = 16_384


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


def vendor_certificate(text: str, now: datetime, max_lifetime_days: float | None) -> PublicCertificate:
    """A public certificate a vendor hands over (PEM, or base64 DER), validated strictly.

    Refused: anything with a private key in it (PrivateKeySupplied; the text is never echoed or logged),
    text that is not one X.509 certificate, an RSA key under 2048 bits or an EC key off P-256/384/521,
    a certificate not valid now, and one valid for longer than the tenant's policy allows."""
    if len(text) > MAX_CERTIFICATE_CHARS:
        raise InvalidRequest(f"certificate: at most {MAX_CERTIFICATE_CHARS} characters", field="certificate")
    if any(armour in text for armour in _PRIVATE_KEY_ARMOUR) or _is_pkcs12(text):
        raise PrivateKeySupplied(
            "The certificate field must hold only the public certificate; a private key was found and discarded."
        )
    try:
        if "-----BEGIN CERTIFICATE-----" in text:
            if text.count("-----BEGIN CERTIFICATE-----") != 1:
                raise ValueError("more than one certificate")
            certificate = x509.load_pem_x509_certificate(text.encode())
        else:
            certificate = x509.load_der_x509_certificate(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error) as error:
        raise InvalidRequest("certificate: one X.509 certificate, PEM or base64 DER", field="certificate") from error
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidRequest(f"certificate: an RSA key of at least {MIN_RSA_BITS} bits", field="certificate")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ACCEPTED_CURVES):
            raise InvalidRequest("certificate: an EC key on P-256, P-384 or P-521", field="certificate")
    else:
        raise InvalidRequest("certificate: an RSA or EC key", field="certificate")
    parsed = public_certificate(certificate.public_bytes(serialization.Encoding.DER))
    if not parsed.not_before <= now < parsed.not_after:
        raise InvalidRequest("certificate: not valid now (expired, or not yet valid)", field="certificate")
    if max_lifetime_days is not None and parsed.not_after - parsed.not_before > timedelta(days=max_lifetime_days):
        raise InvalidRequest(
            f"certificate: valid for longer than the tenant's policy allows ({max_lifetime_days:g} days)",
            field="certificate",
        )
    return parsed


def _is_pkcs12(text: str) -> bool:
    """Whether base64 text decodes to a PKCS#12 bundle (which may carry a key): refused like PEM keys."""
    try:
        pkcs12.load_key_and_certificates(base64.b64decode("".join(text.split()), validate=True), None)
    except (ValueError, TypeError, binascii.Error):
        return False
    return True
