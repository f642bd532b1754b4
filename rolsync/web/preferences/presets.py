"""Mail providers whose IMAP settings the form can fill in, with what each needs from the user."""
from __future__ import annotations

from dataclasses import dataclass

from werkzeug.datastructures import MultiDict


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    host: str
    port: int
    security: str
    hint: str


PRESETS = (
    Preset("gmail", "Gmail", "imap.gmail.com", 993, "ssl",
           "Gmail: turn on IMAP (Gmail settings > Forwarding and POP/IMAP > Enable IMAP). With 2-Step "
           "Verification, create an app password (Google Account > Security > App passwords) and use it here."),
    Preset("microsoft365", "Microsoft 365", "outlook.office365.com", 993, "ssl",
           "Microsoft 365: Exchange Online accepts neither passwords nor app passwords for IMAP; it needs "
           "Connect with Microsoft (above). If that button is missing, an admin must set up Connect with "
           "Microsoft first, on the Providers page."),
    Preset("yahoo", "Yahoo", "imap.mail.yahoo.com", 993, "ssl",
           "Yahoo: create an app password (Account security > Generate app password) and use it here."),
    Preset("icloud", "iCloud", "imap.mail.me.com", 993, "ssl",
           "iCloud: create an app-specific password at appleid.apple.com; the username is your iCloud address."),
    Preset("fastmail", "Fastmail", "imap.fastmail.com", 993, "ssl",
           "Fastmail: create an app password (Settings > Privacy & Security > App passwords)."),
    Preset("zoho", "Zoho", "imap.zoho.com", 993, "ssl",
           "Zoho: turn on IMAP access in Zoho Mail's settings; with two-factor sign-in use an app-specific "
           "password."),
)
BY_KEY = {p.key: p for p in PRESETS}
CUSTOM = "custom"


def provider_for(host: str | None) -> str:
    """The preset whose server `host` is, else custom."""
    for preset in PRESETS:
        if host and host.strip().lower() == preset.host:
            return preset.key
    return CUSTOM


def with_preset(formdata: MultiDict) -> MultiDict:
    """Without JavaScript, choosing a provider and leaving the server empty uses the provider's settings."""
    preset = BY_KEY.get(formdata.get("provider", CUSTOM))
    if preset is None or formdata.get("host", "").strip():
        return formdata
    filled = MultiDict(formdata)
    filled["host"] = preset.host
    filled["port"] = str(preset.port)
    filled["security"] = preset.security
    return filled
