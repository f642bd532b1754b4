"""The conditions of custom rules, tested in Python; durable_rules combines the answers.

Each condition of a custom rule is turned into one boolean fact (`c_<rule>_<n>`)
of the event posted to durable_rules, which then applies the rule's all/any,
its priority and its action. Testing the conditions here keeps their meaning
plain (case-insensitive text, Python-style regexes) and bounded: a regex runs
under a time limit on at most `MAX_TEXT` characters, every regex of one message
together under `REGEX_BUDGET` (a message with 10,000 recipients cannot buy
10,000 time limits), and patterns that can backtrack catastrophically are
refused when the rule is saved.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache

import regex

log = logging.getLogger(__name__)

MAX_TEXT = 100_000  # characters of a body or header a condition looks at
REGEX_TIMEOUT = 0.05  # seconds per match
REGEX_BUDGET = 0.5  # seconds for every regex of one message together
# Nested quantifiers, e.g. (a+)+ or (\w*)*: the classic catastrophic shapes.
_NESTED_QUANTIFIER = regex.compile(r"\((?:[^()\\]|\\.)*[+*}](?:\?|\+)?\)(?:[+*]|\{\d+,\d*\})")
# Inputs that make backtracking patterns explode, tried when a rule is saved.
_PROBES = ["a" * 5000 + "!", " " * 5000 + "!", "x@" + "a." * 2500 + "!", "0" * 5000 + "x", "ab" * 2500 + "!"]
# A group of plain alternatives under a repetition, e.g. (b|b)* or (a|aa)+.
_REPEATED_ALTERNATION = regex.compile(r"\(((?:\?:)?(?:[^()\\|]|\\.)*(?:\|(?:[^()\\|]|\\.)*)+)\)(?:[+*]|\{\d+,\d*\})")
_METACHARACTERS = frozenset("\\^$.|?*+()[]{}")


class RegexRefused(ValueError):
    """A pattern that is invalid, or that could hang a worker."""


@lru_cache(maxsize=512)
def _compiled(pattern: str):
    return regex.compile(pattern, regex.IGNORECASE)


def check_pattern(pattern: str) -> None:
    """Refuse a pattern that does not compile or can backtrack catastrophically."""
    try:
        compiled = _compiled(pattern)
    except regex.error as exc:
        raise RegexRefused(f"the regular expression is not valid: {exc}") from exc
    if _NESTED_QUANTIFIER.search(pattern):
        raise RegexRefused("the regular expression nests repetitions, e.g. (a+)+, which can take for ever "
                           "on some mail; write it without the outer repetition")
    for group in _REPEATED_ALTERNATION.finditer(pattern):
        branches = [b.lower() for b in group.group(1).removeprefix("?:").split("|")]
        if any(a == b or (a and b.startswith(a) and set(b) == set(a))
               for i, a in enumerate(branches) for b in branches[i + 1:]):
            raise RegexRefused("the regular expression repeats alternatives that can match the same text, "
                               "e.g. (b|b)* or (a|aa)*, which can take for ever on some mail; "
                               "list each alternative once")
    for probe in _PROBES + _probes_from(pattern):
        try:
            compiled.search(probe, timeout=REGEX_TIMEOUT * 4)
        except TimeoutError as exc:
            raise RegexRefused("the regular expression takes too long on some texts (catastrophic "
                               "backtracking); simplify it") from exc


def _probes_from(pattern: str) -> list[str]:
    """Texts made of the pattern's own letters: backtracking explodes on what the pattern almost matches."""
    literals: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            escaped = False
            if not char.isalnum():
                literals.append(char)
        elif char == "\\":
            escaped = True
        elif char not in _METACHARACTERS and char.isprintable():
            literals.append(char)
    unique = list(dict.fromkeys(c.lower() for c in literals))[:32]
    probes = [c * 5000 + "\x00" for c in unique]
    if len(unique) > 1:
        probes.append("".join(unique) * (5000 // len(unique)) + "\x00")
    return probes


@dataclass
class RegexBudget:
    """What is left of one message's time for regexes; once spent, the remaining regexes do not match."""

    seconds: float = REGEX_BUDGET
    warned: bool = False

    def spend(self, started: float) -> None:
        self.seconds -= time.monotonic() - started


def regex_matches(pattern: str, text: str, budget: RegexBudget | None = None) -> bool:
    budget = budget if budget is not None else RegexBudget()
    if budget.seconds <= 0:
        if not budget.warned:
            budget.warned = True
            log.warning("the custom rules' regexes used this message's time budget; the rest are treated as no match")
        return False
    started = time.monotonic()
    try:
        return _compiled(pattern).search(text[:MAX_TEXT], timeout=min(REGEX_TIMEOUT, budget.seconds)) is not None
    except TimeoutError:
        log.warning("a custom rule's regex timed out; treated as no match")
        return False
    finally:
        budget.spend(started)


@dataclass(frozen=True)
class AttachmentFacts:
    name: str
    content_type: str
    size: int


@dataclass
class MessageFacts:
    """What custom rules may look at in one message."""

    from_addr: str
    to: list[str]
    cc: list[str]
    subject: str
    body: str
    headers: dict[str, str]
    attachments: list[AttachmentFacts] = field(default_factory=list)
    regex_budget: RegexBudget = field(default_factory=RegexBudget, compare=False, repr=False)

    def texts(self, field_name: str, header: str | None) -> list[str]:
        if field_name == "from":
            return [self.from_addr]
        if field_name in ("to", "cc"):
            return list(getattr(self, field_name))
        if field_name == "subject":
            return [self.subject]
        if field_name == "body":
            return [self.body[:MAX_TEXT]]
        if field_name == "header":
            return [self.headers.get(header or "", "")[:MAX_TEXT]] if header in self.headers else []
        raise ValueError(field_name)


def _text_test(op: str, value, text: str, budget: RegexBudget | None = None) -> bool:
    lowered = text.lower()
    if op == "equals":
        return lowered.strip() == value
    if op == "contains":
        return value in lowered
    if op == "in_list":
        return lowered.strip() in value
    if op == "regex":
        return regex_matches(value, text, budget)
    raise ValueError(op)


def _attachment_test(condition: dict, attachment: AttachmentFacts, budget: RegexBudget) -> bool:
    name, op, value = condition["field"], condition["op"], condition["value"]
    if name == "attachment_size":
        return attachment.size > value if op == "greater_than" else attachment.size == value
    text = attachment.name if name == "attachment_name" else attachment.content_type
    return _text_test(op, value, text, budget)


def holds(condition: dict, message: MessageFacts, attachment: AttachmentFacts | None = None) -> bool:
    """Whether one condition is true of a message (and, at the attachment stage, of one attachment).

    Fields with several values (to, cc, attachments at the message stage) hold
    when any value does.
    """
    if condition["field"].startswith("attachment_"):
        candidates = [attachment] if attachment is not None else message.attachments
        return any(_attachment_test(condition, a, message.regex_budget) for a in candidates)
    return any(_text_test(condition["op"], condition["value"], text, message.regex_budget)
               for text in message.texts(condition["field"], condition.get("header")))


_NO_REPLY_LOCAL_PARTS = regex.compile(
    r"^(no-?reply|do-?not-?reply|donotreply|mailer-daemon|postmaster|bounces?|notifications?|auto-?reply)([+._-].*)?$",
    regex.IGNORECASE)


def looks_automatic(headers: dict[str, str], from_addr: str | None, reply_to: list[str]) -> bool:
    """Auto-replies and bulk mail (RFC 3834 Auto-Submitted, Precedence, mailing-list headers, no-reply senders).

    A no-reply sender with a different Reply-To is not automatic: that is how
    job boards relay an application with the candidate in Reply-To.
    """
    auto_submitted = headers.get("auto-submitted", "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True
    if headers.get("precedence", "").strip().lower() in ("bulk", "list", "junk", "auto_reply"):
        return True
    if "list-id" in headers or "list-unsubscribe" in headers:
        return True
    if "x-autoreply" in headers or "x-autorespond" in headers:
        return True
    if from_addr and _NO_REPLY_LOCAL_PARTS.match(from_addr.split("@", 1)[0]):
        return not any(address != from_addr for address in reply_to)
    return False
