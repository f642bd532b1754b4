"""The conditions of custom rules, tested in Python; durable_rules combines the answers.

Each condition of a custom rule is turned into one boolean fact (`c_<rule>_<n>`)
of the event posted to durable_rules, which then applies the rule's all/any,
its priority and its action. Testing the conditions here keeps their meaning
plain (case-insensitive text, Python-style regexes) and bounded: a regex runs
under a time limit on at most `MAX_TEXT` characters, and patterns that can
backtrack catastrophically are refused when the rule is saved.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache

import regex

log = logging.getLogger(__name__)

MAX_TEXT = 100_000  # characters of a body or header a condition looks at
REGEX_TIMEOUT = 0.05  # seconds per match
# Nested quantifiers, e.g. (a+)+ or (\w*)*: the classic catastrophic shapes.
_NESTED_QUANTIFIER = regex.compile(r"\((?:[^()\\]|\\.)*[+*}](?:\?|\+)?\)(?:[+*]|\{\d+,\d*\})")
# Inputs that make backtracking patterns explode, tried when a rule is saved.
_PROBES = ["a" * 5000 + "!", " " * 5000 + "!", "x@" + "a." * 2500 + "!", "0" * 5000 + "x", "ab" * 2500 + "!"]


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
    for probe in _PROBES:
        try:
            compiled.search(probe, timeout=REGEX_TIMEOUT * 4)
        except TimeoutError as exc:
            raise RegexRefused("the regular expression takes too long on some texts (catastrophic "
                               "backtracking); simplify it") from exc


def regex_matches(pattern: str, text: str) -> bool:
    try:
        return _compiled(pattern).search(text[:MAX_TEXT], timeout=REGEX_TIMEOUT) is not None
    except TimeoutError:
        log.warning("a custom rule's regex timed out; treated as no match")
        return False


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


def _text_test(op: str, value, text: str) -> bool:
    lowered = text.lower()
    if op == "equals":
        return lowered.strip() == value
    if op == "contains":
        return value in lowered
    if op == "in_list":
        return lowered.strip() in value
    if op == "regex":
        return regex_matches(value, text)
    raise ValueError(op)


def _attachment_test(condition: dict, attachment: AttachmentFacts) -> bool:
    name, op, value = condition["field"], condition["op"], condition["value"]
    if name == "attachment_size":
        return attachment.size > value if op == "greater_than" else attachment.size == value
    text = attachment.name if name == "attachment_name" else attachment.content_type
    return _text_test(op, value, text)


def holds(condition: dict, message: MessageFacts, attachment: AttachmentFacts | None = None) -> bool:
    """Whether one condition is true of a message (and, at the attachment stage, of one attachment).

    Fields with several values (to, cc, attachments at the message stage) hold
    when any value does.
    """
    if condition["field"].startswith("attachment_"):
        candidates = [attachment] if attachment is not None else message.attachments
        return any(_attachment_test(condition, a) for a in candidates)
    return any(_text_test(condition["op"], condition["value"], text)
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
