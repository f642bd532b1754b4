"""The rule set as data: its JSON format, the seed's defaults, and validation.

A rule set is plain JSON so it can live in the database, be exported and
imported, and be compiled into a durable_rules ruleset by `engine.py`:

    {
      "format": 1,
      "own_domain": {"enabled": true, "source": "imap_host", "domains": []},
      "images": {"mode": "exclude_all", "min_size": 0},
      "duplicate_address": {"action": "warn"},
      "no_match": {"action": "skip"},
      "first_run": {"inbox": 100, "sent": 100},
      "attachments": {"max_size": 0, "blocked_extensions": []}
    }

`own_domain.source` is `imap_host` (the seed: `mail.acme.com` -> `acme.com`),
`account_email` (the domain of the mailbox's address) or `list` (only
`domains`); `domains` are always added as extra internal domains.
`images.mode` is `exclude_all` (the seed), `exclude_inline` or `keep`; with
`min_size` > 0 any image smaller than that many bytes is dropped too.
`duplicate_address.action` is `warn` (the seed), `attach_all` or
`attach_latest`. `no_match.action` is `skip` (the seed) or `warn`.
`attachments.max_size` 0 means no limit.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re

FORMAT = 1

DEFAULT_RULES: dict = {
    "format": FORMAT,
    "own_domain": {"enabled": True, "source": "imap_host", "domains": []},
    "images": {"mode": "exclude_all", "min_size": 0},
    "duplicate_address": {"action": "warn"},
    "no_match": {"action": "skip"},
    "first_run": {"inbox": 100, "sent": 100},
    "attachments": {"max_size": 0, "blocked_extensions": []},
}

OWN_DOMAIN_SOURCES = ("imap_host", "account_email", "list")
IMAGE_MODES = ("exclude_all", "exclude_inline", "keep")
DUPLICATE_ACTIONS = ("warn", "attach_all", "attach_latest")
NO_MATCH_ACTIONS = ("skip", "warn")
MAX_FIRST_RUN = 100_000

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EXTENSION = re.compile(r"^\.[a-z0-9]{1,16}$")


class RuleSetInvalid(ValueError):
    """The rule set does not follow the format; `errors` lists every problem."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def _section(data: dict, name: str, errors: list[str]) -> dict:
    value = data.get(name, DEFAULT_RULES[name])
    if not isinstance(value, dict):
        errors.append(f"{name}: must be an object")
        return dict(DEFAULT_RULES[name])
    unknown = set(value) - set(DEFAULT_RULES[name])
    if unknown:
        errors.append(f"{name}: unknown setting(s) {', '.join(sorted(unknown))}")
    return {**DEFAULT_RULES[name], **value}


def _choice(section: dict, key: str, allowed: tuple, where: str, errors: list[str]) -> None:
    if section[key] not in allowed:
        errors.append(f"{where}.{key}: must be one of {', '.join(allowed)}, got {section[key]!r}")


def _count(section: dict, key: str, where: str, errors: list[str], maximum: int | None = None) -> None:
    value = section[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        errors.append(f"{where}.{key}: must be a whole number of 0 or more, got {value!r}")
    elif maximum is not None and value > maximum:
        errors.append(f"{where}.{key}: must be at most {maximum}, got {value}")


def validate(data: object) -> dict:
    """Return the complete, normalised rule set, or raise RuleSetInvalid."""
    if not isinstance(data, dict):
        raise RuleSetInvalid(["the rule set must be a JSON object"])
    errors: list[str] = []
    if data.get("format", FORMAT) != FORMAT:
        errors.append(f"format: this version of rolsync reads format {FORMAT}, got {data.get('format')!r}")
    unknown = set(data) - set(DEFAULT_RULES)
    if unknown:
        errors.append(f"unknown section(s) {', '.join(sorted(unknown))}")

    own = _section(data, "own_domain", errors)
    if not isinstance(own["enabled"], bool):
        errors.append("own_domain.enabled: must be true or false")
    _choice(own, "source", OWN_DOMAIN_SOURCES, "own_domain", errors)
    domains = own["domains"]
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        errors.append("own_domain.domains: must be a list of domain names")
        domains = []
    own["domains"] = sorted({d.strip().lower().lstrip("@") for d in domains if d.strip()})
    for domain in own["domains"]:
        if not _DOMAIN.match(domain):
            errors.append(f"own_domain.domains: {domain!r} is not a domain name")
    if own["source"] == "list" and not own["domains"] and own["enabled"]:
        errors.append("own_domain.domains: the source 'list' needs at least one domain")

    images = _section(data, "images", errors)
    _choice(images, "mode", IMAGE_MODES, "images", errors)
    _count(images, "min_size", "images", errors)

    duplicate = _section(data, "duplicate_address", errors)
    _choice(duplicate, "action", DUPLICATE_ACTIONS, "duplicate_address", errors)

    no_match = _section(data, "no_match", errors)
    _choice(no_match, "action", NO_MATCH_ACTIONS, "no_match", errors)

    first_run = _section(data, "first_run", errors)
    _count(first_run, "inbox", "first_run", errors, MAX_FIRST_RUN)
    _count(first_run, "sent", "first_run", errors, MAX_FIRST_RUN)

    attachments = _section(data, "attachments", errors)
    _count(attachments, "max_size", "attachments", errors)
    blocked = attachments["blocked_extensions"]
    if not isinstance(blocked, list) or not all(isinstance(e, str) for e in blocked):
        errors.append("attachments.blocked_extensions: must be a list like [\".exe\", \".ics\"]")
        blocked = []
    attachments["blocked_extensions"] = sorted({"." + e.strip().lower().lstrip(".") for e in blocked if e.strip()})
    for ext in attachments["blocked_extensions"]:
        if not _EXTENSION.match(ext):
            errors.append(f"attachments.blocked_extensions: {ext!r} is not a file extension")

    if errors:
        raise RuleSetInvalid(errors)
    return {
        "format": FORMAT,
        "own_domain": own,
        "images": images,
        "duplicate_address": duplicate,
        "no_match": no_match,
        "first_run": first_run,
        "attachments": attachments,
    }


def default_rules() -> dict:
    return copy.deepcopy(DEFAULT_RULES)


def fingerprint(definition: dict) -> str:
    """A short stable hash of a rule set; names its compiled durable_rules ruleset."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
