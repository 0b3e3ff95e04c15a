"""Key material for credential tests: an RSA key and a self-signed certificate, made once per session."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@cache
def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_key_pem() -> str:
    """An unencrypted PKCS#8 PEM RSA key."""
    return (
        _key()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


def public_key_pem() -> str:
    """The public half of ``private_key_pem``."""
    return (
        _key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def certificate_pem(not_after: datetime) -> str:
    """A self-signed certificate for ``private_key_pem`` valid until ``not_after``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "castiel-test")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_key().public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(not_after)
        .sign(_key(), hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
