"""The rule set as data: its JSON format, the seed's defaults, and validation.

A rule set is plain JSON so it can live in the database, be exported and
imported, and be compiled into a durable_rules ruleset by `engine.py`:

    {
      "format": 1,
      "own_domain": {"enabled": true, "source": "imap_host", "domains": []},
      "images": {"mode": "exclude_all", "min_size": 0},
      "duplicate_address": {"action": "warn"},
      "no_match": {"action": "skip"},
      "first_run": {"inbox": 100, "sent": 100, "inbox_since": null, "sent_since": null},
      "attachments": {"max_size": 0, "blocked_extensions": []},
      "automatic_mail": {"skip": true},
      "blocked": {"addresses": []},
      "intake": {"enabled": true, "extensions": [".doc", ".docx", ".odt", ".pdf", ".rtf"],
                 "relays": true},
      "custom_rules": []
    }

`own_domain.source` is `imap_host` (the seed: `mail.acme.com` -> `acme.com`),
`account_email` (the domain of the mailbox's address) or `list` (only
`domains`); `domains` are always added as extra internal domains.
`images.mode` is `exclude_all` (the seed), `exclude_inline` or `keep`; with
`min_size` > 0 any image smaller than that many bytes is dropped too.
`duplicate_address.action` is `warn` (the seed), `attach_all` or
`attach_latest`. `no_match.action` is `skip` (the seed), `warn`, or `keep`
(hold the message and import it onto a record added later with the address).
`first_run.inbox` and `first_run.sent` are how many of a folder's newest
messages a mailbox's first import takes; `first_run.inbox_since` and
`first_run.sent_since` ("YYYY-MM-DD", or null) take every message that
arrived on or after that day instead. `attachments.max_size` 0 means no limit. `automatic_mail.skip` leaves out
auto-replies and bulk mail. `blocked.addresses` holds addresses and
`@domain` entries (a domain covers its subdomains) never imported.
`intake.enabled` puts received mail from an address no record has that looks
like an application on the New people page (and holds it for the record made
from it) whatever `no_match` says: mail with an attachment of one of
`intake.extensions` (CVs), or with `intake.relays`, mail relayed by a job
board (an unknown sender with the applicant in Reply-To).

`custom_rules` is an ordered list (first = highest priority) of

    {"name": "...", "enabled": true, "match": "all" | "any",
     "conditions": [{"field": F, "op": OP, "value": V, "header": "X-Name"}],
     "action": "skip" | "drop_attachment" | "warn" | "send_to_record",
     "record": {"kind": "contact" | "candidate", "email": "..."}}

with F one of from, to, cc, subject, body, header (then `header` names it),
attachment_name, attachment_type, attachment_size; OP one of equals,
contains, regex, in_list, greater_than (greater_than and equals for
attachment_size). Text compares without regard to case. Regexes use the
`regex` module's syntax; patterns that can backtrack catastrophically are
refused, and every match runs under a time limit.
"""
from __future__ import annotations

import copy
import datetime
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
    "first_run": {"inbox": 100, "sent": 100, "inbox_since": None, "sent_since": None},
    "attachments": {"max_size": 0, "blocked_extensions": []},
    "automatic_mail": {"skip": True},
    "blocked": {"addresses": []},
    "intake": {"enabled": True, "extensions": [".doc", ".docx", ".odt", ".pdf", ".rtf"], "relays": True},
    "custom_rules": [],
}

OWN_DOMAIN_SOURCES = ("imap_host", "account_email", "list")
IMAGE_MODES = ("exclude_all", "exclude_inline", "keep")
DUPLICATE_ACTIONS = ("warn", "attach_all", "attach_latest")
NO_MATCH_ACTIONS = ("skip", "warn", "keep")
MAX_FIRST_RUN = 100_000

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EXTENSION = re.compile(r"^\.[a-z0-9]{1,16}$")
_ADDRESS = re.compile(r"^[^@\s]+@(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")

MAX_CUSTOM_RULES = 100
MAX_CONDITIONS = 20
MAX_VALUE_LENGTH = 500
MAX_LIST_ITEMS = 500
TEXT_FIELDS = ("from", "to", "cc", "subject", "body", "header", "attachment_name", "attachment_type")
NUMBER_FIELDS = ("attachment_size",)
ATTACHMENT_FIELDS = ("attachment_name", "attachment_type", "attachment_size")
TEXT_OPS = ("equals", "contains", "regex", "in_list")
NUMBER_OPS = ("equals", "greater_than")
CUSTOM_ACTIONS = ("skip", "drop_attachment", "warn", "send_to_record")
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")


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
    for key in ("inbox_since", "sent_since"):
        value = first_run[key]
        if value in (None, ""):
            first_run[key] = None
            continue
        try:
            first_run[key] = datetime.date.fromisoformat(value).isoformat() if isinstance(value, str) else None
        except ValueError:
            first_run[key] = None
        if first_run[key] is None:
            errors.append(f"first_run.{key}: must be a day as YYYY-MM-DD, or empty, got {value!r}")

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

    automatic = _section(data, "automatic_mail", errors)
    if not isinstance(automatic["skip"], bool):
        errors.append("automatic_mail.skip: must be true or false")

    blocked = _section(data, "blocked", errors)
    entries = blocked["addresses"]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        errors.append("blocked.addresses: must be a list of addresses and @domains")
        entries = []
    blocked["addresses"] = sorted({e.strip().lower() for e in entries if e.strip()})
    for entry in blocked["addresses"]:
        if entry.startswith("@"):
            if not _DOMAIN.match(entry[1:]):
                errors.append(f"blocked.addresses: {entry!r} is not an @domain")
        elif not _ADDRESS.match(entry):
            errors.append(f"blocked.addresses: {entry!r} is not an e-mail address or @domain")

    intake = _section(data, "intake", errors)
    for key in ("enabled", "relays"):
        if not isinstance(intake[key], bool):
            errors.append(f"intake.{key}: must be true or false")
    extensions = intake["extensions"]
    if not isinstance(extensions, list) or not all(isinstance(e, str) for e in extensions):
        errors.append("intake.extensions: must be a list like [\".pdf\", \".docx\"]")
        extensions = []
    intake["extensions"] = sorted({"." + e.strip().lower().lstrip(".") for e in extensions if e.strip()})
    for ext in intake["extensions"]:
        if not _EXTENSION.match(ext):
            errors.append(f"intake.extensions: {ext!r} is not a file extension")

    custom = data.get("custom_rules", [])
    if not isinstance(custom, list):
        errors.append("custom_rules: must be a list")
        custom = []
    if len(custom) > MAX_CUSTOM_RULES:
        errors.append(f"custom_rules: at most {MAX_CUSTOM_RULES} rules")
    custom = [validate_custom_rule(rule, f"custom_rules[{i}]", errors) for i, rule in enumerate(custom)]

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
        "automatic_mail": automatic,
        "blocked": blocked,
        "intake": intake,
        "custom_rules": custom,
    }


def default_rules() -> dict:
    return copy.deepcopy(DEFAULT_RULES)


def fingerprint(definition: dict) -> str:
    """A short stable hash of a rule set; names its compiled durable_rules ruleset."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def validate_custom_rule(rule: object, where: str, errors: list[str]) -> dict:
    """Check one custom rule; problems are added to `errors` under `where`."""
    from rolsync.rules.conditions import RegexRefused, check_pattern

    if not isinstance(rule, dict):
        errors.append(f"{where}: must be an object")
        return {}
    clean: dict = {}
    name = rule.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        errors.append(f"{where}.name: give the rule a name of 1 to 100 characters")
        name = str(name or "")
    clean["name"] = name.strip()
    enabled = rule.get("enabled", True)
    if not isinstance(enabled, bool):
        errors.append(f"{where}.enabled: must be true or false")
    clean["enabled"] = bool(enabled)
    match = rule.get("match", "all")
    if match not in ("all", "any"):
        errors.append(f"{where}.match: must be all or any")
    clean["match"] = match
    action = rule.get("action")
    if action not in CUSTOM_ACTIONS:
        errors.append(f"{where}.action: must be one of {', '.join(CUSTOM_ACTIONS)}, got {action!r}")
    clean["action"] = action
    if action == "send_to_record":
        record = rule.get("record")
        if (not isinstance(record, dict) or record.get("kind") not in ("contact", "candidate")
                or not isinstance(record.get("email"), str) or not _ADDRESS.match(record["email"].strip().lower())):
            errors.append(f"{where}.record: name the record as {{\"kind\": \"contact\" or \"candidate\", "
                          "\"email\": its address}")
        else:
            clean["record"] = {"kind": record["kind"], "email": record["email"].strip().lower()}
    unknown = set(rule) - {"name", "enabled", "match", "action", "record", "conditions"}
    if unknown:
        errors.append(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")

    conditions = rule.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        errors.append(f"{where}.conditions: give at least one condition")
        conditions = []
    if len(conditions) > MAX_CONDITIONS:
        errors.append(f"{where}.conditions: at most {MAX_CONDITIONS}")
    clean["conditions"] = []
    for j, condition in enumerate(conditions):
        at = f"{where}.conditions[{j}]"
        if not isinstance(condition, dict):
            errors.append(f"{at}: must be an object")
            continue
        field, op, value = condition.get("field"), condition.get("op"), condition.get("value")
        unknown = set(condition) - {"field", "op", "value", "header"}
        if unknown:
            errors.append(f"{at}: unknown setting(s) {', '.join(sorted(unknown))}")
        item = {"field": field, "op": op, "value": value}
        if field in NUMBER_FIELDS:
            if op not in NUMBER_OPS:
                errors.append(f"{at}.op: {field} compares with {' or '.join(NUMBER_OPS)}")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                errors.append(f"{at}.value: must be a number of bytes")
        elif field in TEXT_FIELDS:
            if op not in TEXT_OPS:
                errors.append(f"{at}.op: {field} compares with {', '.join(TEXT_OPS)}")
            elif op == "in_list":
                if (not isinstance(value, list) or not value or len(value) > MAX_LIST_ITEMS
                        or not all(isinstance(v, str) and 0 < len(v) <= MAX_VALUE_LENGTH for v in value)):
                    errors.append(f"{at}.value: in_list needs a list of 1 to {MAX_LIST_ITEMS} texts")
                else:
                    item["value"] = [v.strip().lower() for v in value]
            elif not isinstance(value, str) or not value or len(value) > MAX_VALUE_LENGTH:
                errors.append(f"{at}.value: must be a text of 1 to {MAX_VALUE_LENGTH} characters")
            elif op == "regex":
                try:
                    check_pattern(value)
                except RegexRefused as exc:
                    errors.append(f"{at}.value: {exc}")
            elif op in ("equals", "contains"):
                item["value"] = value.strip().lower() if field != "body" else value.lower()
            if field == "header":
                header = condition.get("header")
                if not isinstance(header, str) or not _HEADER_NAME.match(header):
                    errors.append(f"{at}.header: name the header, e.g. X-Mailer")
                else:
                    item["header"] = header.lower()
        else:
            errors.append(f"{at}.field: must be one of {', '.join(TEXT_FIELDS + NUMBER_FIELDS)}, got {field!r}")
        clean["conditions"].append(item)
    return clean
