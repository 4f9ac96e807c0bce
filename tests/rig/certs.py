"""Test PKI: a throw-away CA and a server certificate for 127.0.0.1, localhost and the
rig's SIP domain, generated at test time with ``trustme``.

Kamailio's WSS listener uses :attr:`Certs.cert_file`/:attr:`Certs.key_file`; clients
trust :attr:`Certs.ca_file` (``ssl.create_default_context(cafile=...)`` or
:meth:`Certs.client_context`).  Nothing is ever verified in "insecure" mode.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Certs:
    """Paths of PEM files (all absolute)."""

    ca_file: Path
    cert_file: Path  # server certificate followed by the chain
    key_file: Path
    hostnames: tuple[str, ...]

    def client_context(self) -> ssl.SSLContext:
        """An SSL client context that trusts only the test CA, with hostname checks on."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_certs(directory: Path, hostnames: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Certs:
    """Create a CA and a server certificate for ``hostnames`` in ``directory``."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="exotel-voice test CA")
    server = ca.issue_cert(*hostnames)
    certs = Certs(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server-chain.pem",
        key_file=directory / "server-key.pem",
        hostnames=hostnames,
    )
    ca.cert_pem.write_to_path(str(certs.ca_file))
    server.private_key_pem.write_to_path(str(certs.key_file))
    certs.cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    certs.key_file.chmod(0o600)
    return certs
