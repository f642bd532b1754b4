"""Custom rules: every operator and action, bounded regexes, and automatic mail."""
from __future__ import annotations

import pytest

from rolsync.rules import CompiledRules, RuleSetInvalid, default_rules, validate
from rolsync.rules.conditions import MessageFacts, AttachmentFacts, looks_automatic
from rolsync.rules.engine import MessageAction


def facts(**overrides) -> MessageFacts:
    base = dict(from_addr="jobs@board.example", to=["me@agency.example"], cc=["boss@agency.example"],
                subject="Application: Senior Java Developer", body="Please find my CV attached.\nRegards",
                headers={"x-mailer": "BoardMailer 2.1"},
                attachments=[AttachmentFacts("cv.pdf", "application/pdf", 120_000)])
    base.update(overrides)
    return MessageFacts(**base)


def with_rules(*rules) -> CompiledRules:
    definition = default_rules()
    definition["custom_rules"] = list(rules)
    return CompiledRules(definition)


def rule(*conditions, action="skip", match="all", name="Test rule", **extra):
    return {"name": name, "match": match, "action": action, "conditions": list(conditions), **extra}


@pytest.mark.parametrize("condition,hit", [
    ({"field": "from", "op": "equals", "value": "JOBS@board.example"}, True),
    ({"field": "from", "op": "equals", "value": "other@board.example"}, False),
    ({"field": "subject", "op": "contains", "value": "senior java"}, True),
    ({"field": "subject", "op": "contains", "value": "python"}, False),
    ({"field": "to", "op": "in_list", "value": ["x@y.example", "me@agency.example"]}, True),
    ({"field": "cc", "op": "in_list", "value": ["x@y.example"]}, False),
    ({"field": "body", "op": "regex", "value": r"find my (cv|resume)"}, True),
    ({"field": "body", "op": "regex", "value": r"^Regards$"}, False),
    ({"field": "header", "header": "X-Mailer", "op": "contains", "value": "boardmailer"}, True),
    ({"field": "header", "header": "X-Other", "op": "contains", "value": "a"}, False),
    ({"field": "attachment_name", "op": "regex", "value": r"\.pdf$"}, True),
    ({"field": "attachment_type", "op": "equals", "value": "application/msword"}, False),
    ({"field": "attachment_size", "op": "greater_than", "value": 100_000}, True),
    ({"field": "attachment_size", "op": "greater_than", "value": 200_000}, False),
])
def test_each_operator_on_each_field(condition, hit):
    decision = with_rules(rule(condition)).decide_message(facts(), automatic=False)
    assert (decision.action is MessageAction.SKIP) is hit
    if hit:
        assert decision.rule == "custom: Test rule"


def test_all_and_any():
    yes = {"field": "subject", "op": "contains", "value": "java"}
    no = {"field": "subject", "op": "contains", "value": "cobol"}
    assert with_rules(rule(yes, no, match="all")).decide_message(facts(), automatic=False).action is \
        MessageAction.CONTINUE
    assert with_rules(rule(yes, no, match="any")).decide_message(facts(), automatic=False).action is \
        MessageAction.SKIP


def test_the_first_matching_custom_rule_wins_and_disabled_rules_do_nothing():
    java = {"field": "subject", "op": "contains", "value": "java"}
    rules = with_rules(
        rule(java, name="Off", action="skip", enabled=False),
        rule(java, name="Warn first", action="warn"),
        rule(java, name="Skip second", action="skip"),
    )
    decision = rules.decide_message(facts(), automatic=False)
    assert (decision.action, decision.rule) == (MessageAction.WARN, "custom: Warn first")


def test_send_to_record_carries_the_record():
    rules = with_rules(rule({"field": "from", "op": "contains", "value": "board"}, action="send_to_record",
                            record={"kind": "candidate", "email": "Pool@Agency.example"}))
    decision = rules.decide_message(facts(), automatic=False)
    assert decision.action is MessageAction.SEND_TO_RECORD
    assert decision.record == {"kind": "candidate", "email": "pool@agency.example"}


def test_drop_attachment_rules_act_per_attachment():
    rules = with_rules(rule({"field": "attachment_name", "op": "regex", "value": r"\.ics$"},
                            action="drop_attachment", name="No invites"))
    message = facts()
    invite = rules.decide_attachment(filename="invite.ics", content_type="text/calendar", size=900,
                                     is_image=False, inline=False, message=message)
    cv = rules.decide_attachment(filename="cv.pdf", content_type="application/pdf", size=900,
                                 is_image=False, inline=False, message=message)
    assert (invite.keep, invite.reason, invite.rule) == (False, "custom", "custom: No invites")
    assert cv.keep


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(\w+\s?)*$", r"(x*)*y", r"([a-z]+)+@"])
def test_a_catastrophic_regex_is_refused(pattern):
    definition = default_rules()
    definition["custom_rules"] = [rule({"field": "subject", "op": "regex", "value": pattern})]
    with pytest.raises(RuleSetInvalid) as info:
        validate(definition)
    assert "custom_rules[0].conditions[0].value" in str(info.value)


@pytest.mark.parametrize("pattern", [r"^(b|b)*$", r"^(a|aa)*$", r"^(?:x|x)+$", r"^(q|q)*!$"])
def test_a_regex_with_ambiguous_repeated_alternatives_is_refused(pattern):
    definition = default_rules()
    definition["custom_rules"] = [rule({"field": "subject", "op": "regex", "value": pattern})]
    with pytest.raises(RuleSetInvalid) as info:
        validate(definition)
    assert "custom_rules[0].conditions[0].value" in str(info.value)


@pytest.mark.parametrize("pattern", [r"^(re|fwd?):", r"(cat|dog)s?", r"(b|c)*d", r"^(?:foo|bar)+$", r"\bcv\b"])
def test_ordinary_alternatives_are_accepted(pattern):
    definition = default_rules()
    definition["custom_rules"] = [rule({"field": "subject", "op": "regex", "value": pattern})]
    validate(definition)


def test_the_regex_time_cap_is_per_message_not_per_recipient(monkeypatch):
    """10,000 recipients cannot buy 10,000 time limits: every regex of a message shares one budget."""
    import time

    from rolsync.rules import conditions

    calls = []

    class Slow:
        def search(self, text, timeout):
            calls.append(timeout)
            time.sleep(min(timeout, 0.01))
            raise TimeoutError

    monkeypatch.setattr(conditions, "_compiled", lambda pattern: Slow())
    message = facts(to=[f"person{i}@example.com" for i in range(10_000)])
    condition = {"field": "to", "op": "regex", "value": "x"}
    started = time.monotonic()
    assert conditions.holds(condition, message) is False
    assert time.monotonic() - started < conditions.REGEX_BUDGET + 1
    assert len(calls) < 200


def test_an_invalid_regex_is_refused_with_its_field():
    definition = default_rules()
    definition["custom_rules"] = [rule({"field": "body", "op": "regex", "value": "([unclosed"})]
    with pytest.raises(RuleSetInvalid, match=r"custom_rules\[0\].conditions\[0\].value: the regular expression"):
        validate(definition)


@pytest.mark.parametrize("bad,where", [
    (rule({"field": "subject", "op": "greater_than", "value": 3}), "op"),
    (rule({"field": "attachment_size", "op": "contains", "value": "x"}), "op"),
    (rule({"field": "nowhere", "op": "equals", "value": "x"}), "field"),
    (rule({"field": "header", "op": "equals", "value": "x"}), "header"),
    (rule({"field": "subject", "op": "in_list", "value": "not a list"}), "value"),
    (rule(action="skip"), "conditions"),
    (rule({"field": "subject", "op": "equals", "value": "x"}, action="explode"), "action"),
    (rule({"field": "subject", "op": "equals", "value": "x"}, action="send_to_record"), "record"),
    ({"match": "all", "action": "skip", "conditions": [{"field": "subject", "op": "equals", "value": "x"}]}, "name"),
])
def test_bad_custom_rules_are_refused(bad, where):
    definition = default_rules()
    definition["custom_rules"] = [bad]
    with pytest.raises(RuleSetInvalid, match=rf"custom_rules\[0\][^;]*{where}"):
        validate(definition)


@pytest.mark.parametrize("headers,sender,reply_to,automatic", [
    ({"auto-submitted": "auto-replied"}, "jo@client.example", [], True),
    ({"auto-submitted": "no"}, "jo@client.example", [], False),
    ({"precedence": "bulk"}, "news@client.example", [], True),
    ({"list-id": "<jobs.lists.example>"}, "jo@client.example", [], True),
    ({"list-unsubscribe": "<mailto:u@x>"}, "jo@client.example", [], True),
    ({}, "no-reply@client.example", [], True),
    ({}, "noreply@jobboard.example", ["cathy@candidates.example"], False),
    ({}, "jo@client.example", [], False),
])
def test_automatic_mail_is_recognised(headers, sender, reply_to, automatic):
    assert looks_automatic(headers, sender, reply_to) is automatic


def test_blocked_addresses_and_domains_cover_subdomains():
    definition = default_rules()
    definition["blocked"]["addresses"] = ["spam@x.example", "@recruiters.example"]
    rules = CompiledRules(definition)
    own = frozenset()
    ask = lambda a: rules.decide_address(a, own=own, contacts=1, candidates=0, direction="received",  # noqa: E731
                                         header="from")
    assert ask("spam@x.example").reason == "blocked"
    assert ask("anyone@eu.recruiters.example").reason == "blocked"
    assert ask("ok@x.example").reason == "matched"
