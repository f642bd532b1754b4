"""Which domains count as the user's own, so mail among colleagues is left out."""
from __future__ import annotations

# Hosts of these providers serve everybody: `imap.gmail.com` must never make
# every Gmail sender a colleague.
PUBLIC_PROVIDER_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "google.com",
        "office365.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
        "yahoo.com", "ymail.com", "aol.com",
        "me.com", "icloud.com", "mac.com",
        "fastmail.com", "fastmail.fm", "messagingengine.com",
        "zoho.com", "zohomail.com", "zoho.eu",
        "gmx.com", "gmx.net", "gmx.de", "web.de", "mail.com",
        "yandex.com", "yandex.ru", "mail.ru",
        "proton.me", "protonmail.com", "protonmail.ch",
        "qq.com", "163.com", "126.com",
        "btinternet.com", "comcast.net", "att.net", "verizon.net",
    }
)

# Second-level labels under which registrations happen (acme.co.uk, acme.com.au).
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ltd", "plc", "me", "or", "ne", "go"})


def registered_domain(hostname: str) -> str | None:
    """`mail.acme.com` -> `acme.com`; `imap.acme.co.uk` -> `acme.co.uk`."""
    host = hostname.strip().lower().rstrip(".")
    labels = [label for label in host.split(".") if label]
    if len(labels) < 2 or all(label.isdigit() for label in labels):
        return None  # a bare name or an IP address names no domain
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def address_domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower()


def own_domains(settings: dict, imap_host: str, account_email: str) -> frozenset[str]:
    """The own domains of one mailbox under the `own_domain` rule settings.

    From the IMAP host (the seed's behaviour) a public provider's host gives
    nothing by itself; the mailbox's own address domain then stands in, unless
    that is a public provider's domain too (a Gmail user has no colleagues).
    """
    domains = set(settings.get("domains", []))
    source = settings.get("source", "imap_host")
    if source == "imap_host":
        derived = registered_domain(imap_host)
        if derived is None or derived in PUBLIC_PROVIDER_DOMAINS:
            derived = address_domain(account_email) if "@" in account_email else None
        if derived and derived not in PUBLIC_PROVIDER_DOMAINS:
            domains.add(derived)
    elif source == "account_email" and "@" in account_email:
        derived = address_domain(account_email)
        if derived not in PUBLIC_PROVIDER_DOMAINS:
            domains.add(derived)
    return frozenset(domains)


def in_domains(address: str, domains: frozenset[str]) -> bool:
    """True when the address is in one of the domains or a subdomain of one."""
    domain = address_domain(address)
    return any(domain == d or domain.endswith("." + d) for d in domains)
