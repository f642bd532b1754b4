"""Compiles a rule set into a durable_rules ruleset and asks it for decisions.

How rules combine
-----------------
The import posts one plain-JSON event per question:

* one ``message`` event per message: skip it, hold it with a warning, send it
  to a named record, or go on to its addresses;
* one ``address`` event per counterpart address: import it onto which kind of
  record, skip it (and why), or warn;
* one ``attachment`` event per attachment of a message that is imported:
  keep it as a document or drop it (and why).

Every rule of the set becomes one durable_rules rule with a priority (`pri`,
lower runs first). An event is consumed by the first rule that matches it, so
for each event **the matching rule with the best priority decides, and only
that one**; there are no conflicts to settle. Custom rules come first, in
the admin's order, then the built-in rules in the seed's order of reasoning:

    message:    custom rules (100+, in order)  >  automatic mail (500)
                >  continue (1000, the fallback)
    address:    blocked (5)  >  own domain (10)  >  one contact (20)
                >  several contacts (21)  >  one candidate (30)
                >  several candidates (31)  >  an application from a stranger (900)
                >  no match (1000, the fallback)
    attachment: custom drop rules (50+, in order)  >  image rules (100-102)
                >  too large (110)  >  blocked type (120)  >  keep (1000)

Contacts come before candidates because a contact with the address decides
even when candidates share it too. Every stage ends in a fallback rule that
matches anything, so no event goes unhandled (durable_rules raises on those).
A custom rule's conditions are tested in Python (`conditions.py`) and posted
as boolean facts; durable_rules combines them (all/any) and picks the rule.

durable_rules keeps global state in C and its host starts timer threads that
do not survive a fork (and race with synchronous posts). So rolsync's host
runs no such threads, it is created lazily in the process that evaluates
(for RQ, the work horse), a ruleset is registered once per process
under a name derived from its content hash (a name cannot be registered twice),
and every call goes through one lock.

Each event is posted under a fresh session id whose state is deleted at once,
so a decision depends on nothing but the ruleset and the event's facts. The
host therefore remembers the decision for each (ruleset, facts) it has seen:
an import asks the same questions again and again (the message stage of
nearly every message, the addresses of regular correspondents, a signature
logo), and a repeated question is answered without a post. The decision is
still durable_rules' own, made the first time those exact facts were posted.
"""
from __future__ import annotations

import datetime
import enum
import os
import threading
import uuid
from dataclasses import dataclass

from durable import engine as durable_engine

from rolsync.rules.conditions import AttachmentFacts, MessageFacts, holds
from rolsync.rules.definition import fingerprint, validate
from rolsync.rules.domains import address_domain, in_domains, own_domains

FALLBACK_PRIORITY = 1000
DECISION_CACHE_SIZE = 20_000
"""Decisions remembered per process (a few MB at most); the older half is forgotten when full."""


class AddressAction(str, enum.Enum):
    IMPORT = "import"
    SKIP = "skip"
    WARN = "warn"
    KEEP = "keep"  # no record yet: hold the message for the record added later
    INTAKE = "intake"  # no record yet, and it looks like an application: New people, and held


class Attach(str, enum.Enum):
    """Which of the matching records get the note."""

    ONE = "one"
    ALL = "all"
    LATEST = "latest"


@dataclass(frozen=True)
class AddressDecision:
    action: AddressAction
    reason: str  # matched, own_domain, duplicate_address, no_match, intake
    rule: str
    kind: str | None = None  # contact or candidate: the kind that decided
    attach: Attach = Attach.ONE


class MessageAction(str, enum.Enum):
    CONTINUE = "continue"
    SKIP = "skip"
    WARN = "warn"
    SEND_TO_RECORD = "send_to_record"


@dataclass(frozen=True)
class MessageDecision:
    action: MessageAction
    reason: str  # continue, custom, automatic
    rule: str
    record: dict | None = None  # for send_to_record: {"kind", "email"}


@dataclass(frozen=True)
class AttachmentDecision:
    keep: bool
    reason: str  # kept, image, small_image, too_large, blocked_type
    rule: str


def _when(stage: str, *conditions: dict) -> dict:
    """A durable_rules condition: the event's stage and every extra test."""
    return {"m": {"$and": [{"stage": stage}, *conditions]}}


def _custom_condition(index: int, rule: dict) -> dict:
    facts = [{f"c_{index}_{j}": True} for j in range(len(rule["conditions"]))]
    return {"$and" if rule["match"] == "all" else "$or": facts}


def _rules_for(definition: dict) -> dict[str, tuple[int, dict, dict]]:
    """rule name -> (priority, condition, decision) for one validated rule set."""
    rules: dict[str, tuple[int, dict, dict]] = {}

    for i, custom in enumerate(definition["custom_rules"]):
        if not custom["enabled"]:
            continue
        label = f"custom: {custom['name']}"
        if custom["action"] == "drop_attachment":
            rules[f"custom_{i}"] = (50 + i, _when("attachment", _custom_condition(i, custom)),
                                    {"keep": False, "reason": "custom", "label": label})
        else:
            rules[f"custom_{i}"] = (100 + i, _when("message", _custom_condition(i, custom)),
                                    {"action": custom["action"], "reason": "custom", "label": label,
                                     "record": custom.get("record")})
    if definition["automatic_mail"]["skip"]:
        rules["automatic_mail"] = (500, _when("message", {"automatic": True}),
                                   {"action": "skip", "reason": "automatic"})
    rules["continue"] = (FALLBACK_PRIORITY, {"m": {"stage": "message"}}, {"action": "continue", "reason": "continue"})

    if definition["blocked"]["addresses"]:
        rules["blocked_addresses"] = (5, _when("address", {"blocked": True}), {"action": "skip", "reason": "blocked"})
    if definition["own_domain"]["enabled"]:
        rules["own_domain"] = (10, _when("address", {"own_domain": True}),
                               {"action": "skip", "reason": "own_domain"})
    duplicate = definition["duplicate_address"]["action"]
    for pri, kind in ((20, "contact"), (30, "candidate")):
        field = f"{kind}s"
        rules[f"one_{kind}"] = (pri, _when("address", {field: 1}),
                                {"action": "import", "reason": "matched", "kind": kind, "attach": "one"})
        if duplicate == "warn":
            outcome = {"action": "warn", "reason": "duplicate_address", "kind": kind}
        else:
            outcome = {"action": "import", "reason": "duplicate_address", "kind": kind,
                       "attach": "all" if duplicate == "attach_all" else "latest"}
        rules[f"duplicate_{kind}"] = (pri + 1, _when("address", {"$gt": {field: 1}}), outcome)
    if definition["intake"]["enabled"]:
        rules["intake"] = (900, _when("address", {"contacts": 0}, {"candidates": 0}, {"direction": "received"},
                                      {"application": True}),
                           {"action": "intake", "reason": "intake"})
    rules["no_match"] = (FALLBACK_PRIORITY, {"m": {"stage": "address"}},
                         {"action": definition["no_match"]["action"], "reason": "no_match"})

    images = definition["images"]
    if images["mode"] == "exclude_all":
        rules["exclude_images"] = (100, _when("attachment", {"is_image": True}),
                                   {"keep": False, "reason": "image"})
    elif images["mode"] == "exclude_inline":
        rules["exclude_inline_images"] = (100, _when("attachment", {"is_image": True}, {"inline": True}),
                                          {"keep": False, "reason": "image"})
    if images["min_size"] > 0:
        rules["small_images"] = (102, _when("attachment", {"is_image": True}, {"$lt": {"size": images["min_size"]}}),
                                 {"keep": False, "reason": "small_image"})
    attachments = definition["attachments"]
    if attachments["max_size"] > 0:
        rules["attachment_size"] = (110, _when("attachment", {"$gt": {"size": attachments["max_size"]}}),
                                    {"keep": False, "reason": "too_large"})
    if attachments["blocked_extensions"]:
        any_of = {"$or": [{"extension": ext} for ext in attachments["blocked_extensions"]]}
        rules["blocked_types"] = (120, _when("attachment", any_of), {"keep": False, "reason": "blocked_type"})
    rules["keep_attachment"] = (FALLBACK_PRIORITY, {"m": {"stage": "attachment"}},
                                {"keep": True, "reason": "kept"})
    return rules


class _SynchronousHost(durable_engine.Host):
    """A durable_rules host without its background dispatch threads.

    The stock host polls every ruleset from timer threads; such a thread can
    take the action of an event we just posted and run it after `post`
    returned, leaving the caller without a decision. We use neither timers
    nor asynchronous actions, so every action runs inside `post`.
    """

    def _run(self) -> None:
        pass


class _Host:
    """The per-process durable_rules host, rebuilt after a fork, and the decisions it has made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._host: durable_engine.Host = None  # made in the process that uses it (see post)
        self._registered: set[str] = set()
        self._decisions: dict[tuple, dict] = {}

    def post(self, ruleset_name: str, build, event: dict) -> dict:
        """The decision for `event` (flat JSON facts); callers must not change the dict returned."""
        key = (ruleset_name, *sorted(event.items()))
        with self._lock:
            if self._pid != os.getpid():
                self._host = _SynchronousHost()
                self._pid = os.getpid()
                self._registered = set()
                self._decisions = {}
            decision = self._decisions.get(key)
            if decision is not None:
                return decision
            if ruleset_name not in self._registered:
                self._host.register_rulesets({ruleset_name: build()})
                self._registered.add(ruleset_name)
            sid = uuid.uuid4().hex
            try:
                state = self._host.post(ruleset_name, {**event, "sid": sid})
            finally:
                self._host.delete_state(ruleset_name, sid)
            if not state or "decision" not in state:
                raise RuntimeError(f"the rules gave no decision for a {event.get('stage')} event")
            if "exception" in state:
                raise RuntimeError(f"rule action failed: {state['exception']}")
            decision = state["decision"]
            if len(self._decisions) >= DECISION_CACHE_SIZE:
                # Dicts keep insertion order: forget the older half.
                for old in list(self._decisions)[: DECISION_CACHE_SIZE // 2]:
                    del self._decisions[old]
            self._decisions[key] = decision
            return decision


_HOST = _Host()


class CompiledRules:
    """One rule set, ready to answer the import's questions.

    Cheap to create; the durable_rules ruleset is compiled on first use in the
    evaluating process and shared by every CompiledRules of the same content.
    """

    def __init__(self, definition: dict, version: int | None = None):
        self.definition = validate(definition)
        self.version = version
        self.name = f"rolsync_{fingerprint(self.definition)}"

    def _build(self) -> dict:
        ruleset = {}
        for rule_name, (priority, condition, decision) in _rules_for(self.definition).items():
            ruleset[rule_name] = {"pri": priority, "all": [condition], "run": _recorder(rule_name, decision)}
        return ruleset

    def _ask(self, event: dict) -> dict:
        return _HOST.post(self.name, self._build, event)

    # -- the questions -----------------------------------------------------

    def own_domains(self, imap_host: str, account_email: str) -> frozenset[str]:
        return own_domains(self.definition["own_domain"], imap_host, account_email)

    def first_run_limit(self, folder_role: str) -> int:
        return self.definition["first_run"][folder_role]

    def first_run_since(self, folder_role: str) -> datetime.date | None:
        """The day from which a first import takes every message of the folder; None: the newest N instead."""
        value = self.definition["first_run"].get(f"{folder_role}_since")
        return datetime.date.fromisoformat(value) if value else None

    def is_blocked(self, address: str) -> bool:
        entries = self.definition["blocked"]["addresses"]
        if address in entries:
            return True
        domains = frozenset(e[1:] for e in entries if e.startswith("@"))
        return bool(domains) and in_domains(address, domains)

    def decide_message(self, facts: MessageFacts, *, automatic: bool) -> MessageDecision:
        event = {"stage": "message", "automatic": automatic}
        for i, custom in enumerate(self.definition["custom_rules"]):
            if custom["enabled"] and custom["action"] != "drop_attachment":
                for j, condition in enumerate(custom["conditions"]):
                    event[f"c_{i}_{j}"] = holds(condition, facts)
        decision = self._ask(event)
        return MessageDecision(action=MessageAction(decision["action"]), reason=decision["reason"],
                               rule=decision.get("label") or decision["rule"], record=decision.get("record"))

    def decide_address(self, address: str, *, own: frozenset[str], contacts: int, candidates: int,
                       direction: str, header: str, application: bool = False) -> AddressDecision:
        """`application`: the message looks like an application (see `rolsync.intake.looks_like_application`)."""
        decision = self._ask({
            "stage": "address",
            "address": address,
            "domain": address_domain(address),
            "blocked": self.is_blocked(address),
            "own_domain": in_domains(address, own),
            "contacts": contacts,
            "candidates": candidates,
            "direction": direction,
            "header": header,
            "application": application,
        })
        return AddressDecision(
            action=AddressAction(decision["action"]),
            reason=decision["reason"],
            rule=decision["rule"],
            kind=decision.get("kind"),
            attach=Attach(decision.get("attach", "one")),
        )

    def decide_attachment(self, *, filename: str, content_type: str, size: int, is_image: bool,
                          inline: bool, message: MessageFacts | None = None) -> AttachmentDecision:
        extension = ""
        if "." in filename:
            extension = "." + filename.rsplit(".", 1)[1].lower()
        event = {
            "stage": "attachment",
            "filename": filename,
            "extension": extension,
            "content_type": content_type,
            "size": size,
            "is_image": is_image,
            "inline": inline,
        }
        attachment = AttachmentFacts(filename, content_type, size)
        for i, custom in enumerate(self.definition["custom_rules"]):
            if custom["enabled"] and custom["action"] == "drop_attachment":
                for j, condition in enumerate(custom["conditions"]):
                    # A message of its own when none is given: each message has its own regex time budget.
                    message = message or MessageFacts(from_addr="", to=[], cc=[], subject="", body="", headers={})
                    event[f"c_{i}_{j}"] = holds(condition, message, attachment)
        decision = self._ask(event)
        return AttachmentDecision(keep=decision["keep"], reason=decision["reason"],
                                  rule=decision.get("label") or decision["rule"])


def _recorder(rule_name: str, decision: dict):
    """The durable_rules action of a rule: record its decision in the session state."""
    outcome = {**decision, "rule": rule_name}

    def action(c):
        c.s.decision = outcome

    return action
