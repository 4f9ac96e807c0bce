"""A self-signed TLS certificate for the sandbox's ``wss://`` listener.

Made with ``cryptography`` (already a dependency of aiortc). The certificate is its own CA,
so a client trusts it by loading :attr:`SelfSignedCertificate.cert_pem` as its CA file
(``TlsConfig(ca_file=...)``); browsers can use ``--ignore-certificate-errors``.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


__all__ = ["SelfSignedCertificate", "make_certificate"]


@dataclass(frozen=True)
class SelfSignedCertificate:
    """A certificate and its key, in PEM, plus the files ``ssl`` needs.

    Attributes:
        cert_pem: the certificate (also the CA a client should trust).
        cert_file: path of a file holding ``cert_pem``.
        key_file: path of a file holding the private key (mode 0600).
    """

    cert_pem: bytes
    cert_file: Path
    key_file: Path = field(repr=False)

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for a TLS server using this certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """An SSL context for a client that trusts only this certificate."""
        return ssl.create_default_context(cadata=self.cert_pem.decode("ascii"))


def make_certificate(
    hosts: list[str], directory: Path | None = None, *, days: int = 30
) -> SelfSignedCertificate:
    """Create a self-signed certificate for ``hosts`` (IP addresses or DNS names).

    Args:
        hosts: subject alternative names, e.g. ``["127.0.0.1", "localhost"]``.
        directory: where to write ``sandbox-cert.pem`` and ``sandbox-key.pem``; a new
            temporary folder when ``None`` (the caller removes it).
        days: validity.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "exotel-voice sandbox")])
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = directory if directory is not None else Path(tempfile.mkdtemp(prefix="exv-sandbox-"))
    folder.mkdir(parents=True, exist_ok=True)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file = folder / "sandbox-cert.pem"
    key_file = folder / "sandbox-key.pem"
    cert_file.write_bytes(cert_pem)
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return SelfSignedCertificate(cert_pem, cert_file, key_file)
