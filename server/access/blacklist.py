"""The address blacklist's two questions (docs/access.md): is this text an address or a
network, and which entry holds an address."""

from __future__ import annotations

import ipaddress

from obslink.errors import ConfigError


def network_of(text: str) -> str:
    """An address or a CIDR network as the blacklist keeps it (192.0.2.7/32, 2001:db8::/32)."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ConfigError(f"{text!r} is not an address or a network such as 192.0.2.7 or "
                          "192.0.2.0/24") from None


def holding(address: str, entries: list[dict]) -> dict | None:
    """The first blacklist entry whose network holds ``address`` (None: none, or not an
    IP address)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    for entry in entries:
        if ip in ipaddress.ip_network(entry["network"], strict=False):
            return entry
    return None
