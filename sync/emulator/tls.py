"""TLS for the emulator: a generated self-signed certificate clients can trust, and the server context.

Imports nothing of the emulator.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CERT_FILE", "KEY_FILE", "TlsMaterial", "generate_self_signed", "server_context"]

CERT_FILE: Final = "emulator-cert.pem"
KEY_FILE: Final = "emulator-key.pem"
_VALIDITY: Final = timedelta(days=365)


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsMaterial:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host and host != "localhost":
            names.append(x509.DNSName(host))
    else:
        if not address.is_unspecified and str(address) != "127.0.0.1":
            names.append(x509.IPAddress(address))
    return names


def generate_self_signed(directory: Path, *, host: str = "127.0.0.1") -> TlsMaterial:
    """Write a fresh self-signed certificate (valid one year) and its key (mode 0600) into `directory`.

    The certificate is its own CA (CA:TRUE, keyCertSign), so a client can use it as trust anchor; its
    subject alternative names are IP:127.0.0.1 and DNS:localhost (plus `host` when that is another name).

    Args:
        directory: where `emulator-cert.pem` and `emulator-key.pem` go (created if missing).
        host: the address the server binds.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ims-es-sync emulator")])
    now = datetime.now(UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_names(host)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    material = TlsMaterial(cert=directory / CERT_FILE, key=directory / KEY_FILE)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Create the key file 0600 from the start: it must never be readable by others, not even briefly.
    fd = os.open(material.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    material.key.chmod(0o600)
    material.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return material


def server_context(material: TlsMaterial) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or newer) presenting `material`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(material.cert), keyfile=str(material.key))
    return context
