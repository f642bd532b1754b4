"""The engine answers a repeated question from memory: same decision, no second post to durable_rules."""
from __future__ import annotations

from rolsync.rules import CompiledRules, default_rules, engine


def test_a_repeated_question_is_answered_without_a_post(monkeypatch):
    rules = CompiledRules(default_rules())
    posts = []
    original = engine._SynchronousHost.post

    def counting_post(self, ruleset_name, event):
        posts.append(event["stage"])
        return original(self, ruleset_name, event)

    monkeypatch.setattr(engine._SynchronousHost, "post", counting_post)
    ask = dict(own=frozenset(), contacts=1, candidates=0, direction="received", header="from")
    first = rules.decide_address("cache-test@client.example", **ask)
    second = rules.decide_address("cache-test@client.example", **ask)
    other = rules.decide_address("cache-test@client.example", **{**ask, "contacts": 2})
    assert first == second and first.reason == "matched" and other.reason == "duplicate_address"
    assert posts == ["address", "address"], "the repeated question was not posted again"
