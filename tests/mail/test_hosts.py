"""Where mail servers may be: the host policy, checked after DNS and pinned to the checked address."""
from __future__ import annotations

import ipaddress
import socket
import uuid

import pytest

from rolsync.mail.errors import HostNotAllowed
from rolsync.mail.hosts import HostPolicy, PolicyError
from rolsync.mail.imap import ImapSettings, test_connection

PRODUCTION = HostPolicy.from_settings(False, "")
DEVELOPMENT = HostPolicy.from_settings(True, "")


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "100.64.0.1",
                                     "169.254.169.254", "fd00:ec2::254", "0.0.0.0", "224.0.0.1", "240.0.0.1",
                                     "::ffff:127.0.0.1", "fe80::1"])
def test_production_refuses_every_internal_address(address):
    assert not PRODUCTION.address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["169.254.169.254", "169.254.1.1", "fd00:ec2::254", "0.0.0.0", "224.0.0.1"])
def test_development_still_refuses_metadata_link_local_and_multicast(address):
    assert not DEVELOPMENT.address_allowed(ipaddress.ip_address(address))


def test_development_allows_loopback_and_private_and_everyone_allows_public():
    for address in ("127.0.0.1", "::1", "10.0.0.5"):
        assert DEVELOPMENT.address_allowed(ipaddress.ip_address(address))
    for policy in (DEVELOPMENT, PRODUCTION):
        assert policy.address_allowed(ipaddress.ip_address("142.250.27.108"))


def test_the_allowlist_names_hosts_domains_and_networks():
    policy = HostPolicy.from_settings(False, "mail.corp.example, .intranet.example 10.20.0.0/16,192.0.2.7")
    assert policy.name_allowed("MAIL.corp.example") and policy.name_allowed("imap.intranet.example")
    assert not policy.name_allowed("evil-mail.corp.example") and not policy.name_allowed("corp.example")
    assert policy.address_allowed(ipaddress.ip_address("10.20.3.4"))
    assert policy.address_allowed(ipaddress.ip_address("192.0.2.7"))
    assert not policy.address_allowed(ipaddress.ip_address("10.21.0.1"))
    with pytest.raises(PolicyError):
        HostPolicy.from_settings(False, "http://mail.example/")


def test_every_address_a_name_resolves_to_is_checked(monkeypatch):
    def answers(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("198.51.100.1", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", answers)
    with pytest.raises(HostNotAllowed):
        PRODUCTION.resolve("imap.mixed.example", 993)
    assert HostPolicy.from_settings(False, "imap.mixed.example").resolve("imap.mixed.example", 993)


def test_the_connection_test_to_loopback_is_refused_in_production_with_a_sentence(dovecot):
    report = test_connection(ImapSettings(host="127.0.0.1", port=dovecot.ssl_port, username="x", password="y",
                                          ca_pem=dovecot.ca_pem, timeout=5, host_policy=PRODUCTION))
    assert (report.ok, report.code) == (False, "host_not_allowed")
    assert "not allowed to connect" in report.message and "ask an admin" in report.hint


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(monkeypatch, dovecot):
    """DNS rebinding: the name is resolved once; the socket goes to what was checked."""
    real = socket.getaddrinfo
    lookups = []

    def rebinding(host, port, *args, **kwargs):
        if host == "imap.rebind.example":
            lookups.append(host)
            if len(lookups) > 1:  # a second answer would point somewhere else
                return real("198.51.100.1", port, *args, **kwargs)
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    username = f"pin-{uuid.uuid4().hex[:8]}@acme-recruit.com"
    report = test_connection(ImapSettings(host="imap.rebind.example", port=dovecot.ssl_port, username=username,
                                          password="pw", ca_pem=dovecot.ca_pem, timeout=5,
                                          host_policy=DEVELOPMENT))
    # Dovecot on 127.0.0.1 answered (its certificate does not name imap.rebind.example): no second lookup.
    assert report.code == "tls_error", report
    assert lookups == ["imap.rebind.example"]
