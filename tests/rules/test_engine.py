"""The rules engine on durable_rules: what each built-in rule decides, and in which order."""
from __future__ import annotations

import multiprocessing

import pytest

from rolsync.rules import AddressAction, Attach, CompiledRules, default_rules

OWN = frozenset({"acme.com"})


def ask(rules: CompiledRules, address="x@client.example", contacts=0, candidates=0, own=OWN):
    return rules.decide_address(address, own=own, contacts=contacts, candidates=candidates,
                                direction="received", header="from")


@pytest.fixture
def seed():
    return CompiledRules(default_rules())


def test_own_domain_beats_a_matching_record(seed):
    decision = ask(seed, "boss@acme.com", contacts=1)
    assert (decision.action, decision.reason, decision.rule) == (AddressAction.SKIP, "own_domain", "own_domain")


def test_a_subdomain_of_the_own_domain_is_own(seed):
    assert ask(seed, "x@mail.acme.com", contacts=1).reason == "own_domain"
    assert ask(seed, "x@notacme.com", contacts=1).reason == "matched"


def test_contacts_decide_before_candidates(seed):
    assert ask(seed, contacts=1, candidates=1).kind == "contact"
    assert ask(seed, contacts=2, candidates=1).reason == "duplicate_address"
    assert ask(seed, contacts=0, candidates=1).kind == "candidate"


def test_duplicates_warn_by_default(seed):
    decision = ask(seed, contacts=0, candidates=3)
    assert (decision.action, decision.kind, decision.rule) == (AddressAction.WARN, "candidate", "duplicate_candidate")


@pytest.mark.parametrize("action,attach", [("attach_all", Attach.ALL), ("attach_latest", Attach.LATEST)])
def test_duplicates_can_attach_instead(action, attach):
    definition = default_rules()
    definition["duplicate_address"]["action"] = action
    decision = ask(CompiledRules(definition), contacts=2)
    assert (decision.action, decision.attach) == (AddressAction.IMPORT, attach)


def test_no_match_is_the_fallback(seed):
    decision = ask(seed)
    assert (decision.action, decision.reason, decision.rule) == (AddressAction.SKIP, "no_match", "no_match")
    definition = default_rules()
    definition["no_match"]["action"] = "warn"
    assert ask(CompiledRules(definition)).action is AddressAction.WARN


def attachment(rules, filename="cv.pdf", size=1000, is_image=False, inline=False, content_type="application/pdf"):
    return rules.decide_attachment(filename=filename, content_type=content_type, size=size,
                                   is_image=is_image, inline=inline)


def test_images_are_dropped_and_documents_kept(seed):
    assert attachment(seed).keep
    decision = attachment(seed, "logo.png", is_image=True, content_type="image/png")
    assert (decision.keep, decision.reason, decision.rule) == (False, "image", "exclude_images")


def test_image_modes_and_minimum_size():
    definition = default_rules()
    definition["images"] = {"mode": "exclude_inline", "min_size": 5000}
    rules = CompiledRules(definition)
    assert not attachment(rules, "logo.png", is_image=True, inline=True, size=90000).keep
    assert attachment(rules, "photo.png", is_image=True, inline=False, size=90000).keep
    assert attachment(rules, "tiny.png", is_image=True, inline=False, size=100).reason == "small_image"


def test_size_limit_and_blocked_types():
    definition = default_rules()
    definition["attachments"] = {"max_size": 10_000, "blocked_extensions": ["exe", ".ICS"]}
    rules = CompiledRules(definition)
    assert attachment(rules, size=20_000).reason == "too_large"
    assert attachment(rules, "invite.ics").reason == "blocked_type"
    assert attachment(rules, "setup.EXE").reason == "blocked_type"
    assert attachment(rules, "cv.docx").keep


def test_two_rule_sets_live_side_by_side_in_one_process(seed):
    definition = default_rules()
    definition["no_match"]["action"] = "warn"
    other = CompiledRules(definition)
    assert other.name != seed.name
    assert ask(seed).action is AddressAction.SKIP
    assert ask(other).action is AddressAction.WARN
    # The same content compiles to the same ruleset: registering it again must not fail.
    assert ask(CompiledRules(default_rules())).action is AddressAction.SKIP


def _decide_in_child(queue):
    queue.put(ask(CompiledRules(default_rules()), contacts=1).reason)


def test_rules_work_in_a_forked_process_after_use_in_the_parent(seed):
    assert ask(seed, contacts=1).reason == "matched"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_decide_in_child, args=(queue,))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == "matched"
    assert child.exitcode == 0


def test_every_post_gets_its_decision_under_concurrency(seed):
    """No background thread may take an event's action from under its post (a race seen under load)."""
    import threading

    failures = []

    def hammer():
        for i in range(400):
            try:
                decision = ask(seed, contacts=i % 3)
                assert decision.reason in ("no_match", "matched", "duplicate_address")
            except Exception as exc:  # collected, asserted below
                failures.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert not [t for t in threading.enumerate() if "Timer" in type(t).__name__], "durable_rules timers running"
