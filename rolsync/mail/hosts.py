"""Which mail servers rolsync may connect to: checked after DNS, for every address a name resolves to.

A mailbox's server is typed by a user, so without a check the Test Connection
button and the workers would connect anywhere the server can reach: its own
loopback services, the company network, a cloud metadata endpoint. The check
runs on the resolved addresses (a name is only a pointer), refuses the host if
any of them is forbidden, and the connection then goes to one of the checked
addresses, so a DNS answer that changes between check and connect (DNS
rebinding) cannot swap in another one.

- Always refused: unspecified, multicast, link-local (169.254.0.0/16 holds
  the cloud metadata services) and the known metadata addresses.
- Refused unless private addresses are allowed (the default everywhere but
  production): loopback, private, shared (CGNAT), reserved, and anything else
  that is not globally routable.
- `allowed` names host names (exact, or ``.example.com`` for a domain and its
  subdomains) and networks (``10.1.2.0/24``, ``192.0.2.7``) that may be used
  whatever their addresses: the on-premises mail server.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from rolsync.mail.errors import HostNotAllowed, classify

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, Azure, Google Cloud, OpenStack, DigitalOcean...
    "169.254.170.2",  # AWS ECS task metadata
    "fd00:ec2::254",  # AWS over IPv6
    "100.100.100.200",  # Alibaba Cloud
))


class PolicyError(ValueError):
    """An allowlist entry that is neither a host name nor a network."""


@dataclass(frozen=True)
class HostPolicy:
    """Where mail servers may be: built from the settings, handed to the IMAP code as a plain value."""

    allow_private: bool = True
    allowed_names: tuple[str, ...] = ()
    allowed_networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def from_settings(cls, allow_private: bool, allowed: str | list[str] | tuple[str, ...] = ()) -> HostPolicy:
        """`allowed`: host names and networks, comma- or space-separated (ROLSYNC_IMAP_ALLOWED_HOSTS)."""
        entries = allowed.replace(",", " ").split() if isinstance(allowed, str) else list(allowed)
        names: list[str] = []
        networks: list[IPNetwork] = []
        for entry in (e.strip().lower() for e in entries if e.strip()):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            bare = entry.lstrip("*")
            if not bare.strip(".") or any(c in bare for c in "/:@ ") or not bare.replace("-", "").replace(
                    ".", "").isalnum():
                raise PolicyError(f"{entry!r} is neither a host name nor a network such as 10.0.0.0/8")
            names.append(bare)
        return cls(allow_private=allow_private, allowed_names=tuple(names), allowed_networks=tuple(networks))

    def name_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == name or (name.startswith(".") and (host.endswith(name) or host == name[1:]))
                   for name in self.allowed_names)

    def address_allowed(self, address: IPAddress) -> bool:
        if address.version == 6 and address.ipv4_mapped is not None:  # type: ignore[union-attr]
            address = address.ipv4_mapped  # type: ignore[union-attr]
        if any(address in network for network in self.allowed_networks):
            return True
        if address in METADATA_ADDRESSES or address.is_unspecified or address.is_multicast or address.is_link_local:
            return False
        if self.allow_private:
            return True
        return address.is_global

    def resolve(self, host: str, port: int) -> list[tuple[int, str]]:
        """The (family, address) pairs to connect to; HostNotAllowed if any address is forbidden.

        Every address is checked, not just the first: a name that resolves to
        one public and one private address could otherwise be steered to the
        private one by whoever controls its DNS.
        """
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as exc:
            raise classify(exc if isinstance(exc, OSError) else socket.gaierror(str(exc))) from exc
        addresses: list[tuple[int, str]] = list(dict.fromkeys(
            (int(family), str(sockaddr[0]).split("%", 1)[0]) for family, _, _, _, sockaddr in infos))
        if self.name_allowed(host):
            return addresses
        for _, text in addresses:
            if not self.address_allowed(ipaddress.ip_address(text)):
                raise HostNotAllowed()
        return addresses


def connect_to(addresses: list[tuple[int, str]], port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to the first of the checked `addresses` that answers."""
    last: OSError | None = None
    for _, address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            last = exc
    raise last if last is not None else OSError("no address to connect to")
