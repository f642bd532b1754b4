"""The rule-set format: defaults, normalisation and the errors a bad file gets."""
from __future__ import annotations

import pytest

from rolsync.rules import DEFAULT_RULES, RuleSetInvalid, default_rules, validate
from rolsync.rules.domains import own_domains, registered_domain


def test_the_seed_defaults_validate_unchanged():
    assert validate(default_rules()) == DEFAULT_RULES


def test_missing_sections_take_the_defaults():
    assert validate({"format": 1}) == DEFAULT_RULES


def test_values_are_normalised():
    definition = default_rules()
    definition["own_domain"]["domains"] = [" @Acme.COM", "acme.com"]
    definition["attachments"]["blocked_extensions"] = ["EXE", ".ics"]
    clean = validate(definition)
    assert clean["own_domain"]["domains"] == ["acme.com"]
    assert clean["attachments"]["blocked_extensions"] == [".exe", ".ics"]


@pytest.mark.parametrize("change,message", [
    ({"images": {"mode": "some"}}, "images.mode"),
    ({"first_run": {"inbox": -1}}, "first_run.inbox"),
    ({"first_run": {"sent": "100"}}, "first_run.sent"),
    ({"own_domain": {"source": "list", "domains": []}}, "own_domain.domains"),
    ({"own_domain": {"domains": ["not a domain"]}}, "not a domain"),
    ({"duplicate_address": {"action": "guess"}}, "duplicate_address.action"),
    ({"surprise": {}}, "unknown section"),
    ({"images": {"mode": "keep", "colour": 1}}, "unknown setting"),
    ({"format": 9}, "format"),
])
def test_bad_values_are_refused_with_a_message(change, message):
    definition = default_rules()
    for key, value in change.items():
        definition[key] = {**definition.get(key, {}), **value} if isinstance(value, dict) and key in definition else value
    with pytest.raises(RuleSetInvalid) as info:
        validate(definition)
    assert message in str(info.value)


@pytest.mark.parametrize("host,domain", [
    ("mail.acme.com", "acme.com"),
    ("imap.eu.acme.com", "acme.com"),
    ("imap.acme.co.uk", "acme.co.uk"),
    ("acme.com", "acme.com"),
    ("localhost", None),
    ("127.0.0.1", None),
])
def test_the_registered_domain_of_an_imap_host(host, domain):
    assert registered_domain(host) == domain


def test_own_domain_from_the_imap_host_as_the_seed_does():
    settings = {"source": "imap_host", "domains": []}
    assert own_domains(settings, "mail.acme.com", "jo@acme.com") == {"acme.com"}


@pytest.mark.parametrize("host", ["imap.gmail.com", "outlook.office365.com", "imap-mail.outlook.com"])
def test_a_public_providers_host_is_never_an_own_domain(host):
    settings = {"source": "imap_host", "domains": []}
    assert own_domains(settings, host, "jo@gmail.com") == frozenset()
    # A Google Workspace or Microsoft 365 agency: its own address domain stands in.
    assert own_domains(settings, host, "jo@agency.example") == {"agency.example"}


def test_own_domain_sources():
    assert own_domains({"source": "account_email", "domains": []}, "mail.host.net", "jo@acme.com") == {"acme.com"}
    assert own_domains({"source": "list", "domains": ["a.com", "b.com"]}, "mail.acme.com", "jo@acme.com") == {
        "a.com", "b.com"}


def test_describe_changes_reads_like_a_changelog():
    from rolsync.rules.store import describe_changes

    old = default_rules()
    new = default_rules()
    new["images"]["mode"] = "keep"
    new["automatic_mail"]["skip"] = False
    new["custom_rules"] = [{"name": "No invites", "action": "drop_attachment",
                            "conditions": [{"field": "attachment_name", "op": "contains", "value": ".ics"}]}]
    assert describe_changes(old, new) == [
        "Skip auto-replies and bulk mail: on \u2192 off",
        "Images: leave out every image \u2192 keep every image",
        "custom rule \u201cNo invites\u201d added at position 1",
    ]
    assert describe_changes(new, new) == []
