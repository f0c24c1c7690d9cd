"""``obslink collector tls init``: a certificate authority and the broker's certificate.

For networks without a PKI of their own. Agents and the collector trust ``ca.pem``; the
broker presents ``server.pem``. Operators with their own CA give its files instead.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from obslink.errors import ConfigError
from obslink.keys import write_secret

CA_YEARS, SERVER_YEARS = 10, 2


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_secret(path, key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))


def _names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def init_tls(directory: Path, hosts: list[str], overwrite: bool = False) -> dict[str, Path]:
    """Write ca.pem, ca.key, server.pem and server.key (keys mode 0600) for ``hosts``."""
    if not hosts:
        raise ConfigError("give the broker's host names or addresses with --host (the "
                          "certificate is only valid for those)")
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / name for name in ("ca.pem", "ca.key", "server.pem",
                                                  "server.key")}
    existing = [str(path) for path in paths.values() if path.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{', '.join(existing)} exist; pass --force to replace them (every "
                          "station then needs the new ca.pem)")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "obslink network CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
              .issuer_name(ca_name).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now)
              .not_valid_after(now + datetime.timedelta(days=365 * SERVER_YEARS))
              .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    _write_key(paths["ca.key"], ca_key)
    _write_key(paths["server.key"], server_key)
    paths["ca.pem"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["server.pem"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    return paths
