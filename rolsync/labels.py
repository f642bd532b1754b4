"""The words a person sees for the codes rolsync keeps: one mapping for every page, the CLI's lines and the demo.

Codes (`own_domain`, `one_candidate`, `images.mode`, `duplicate_address`) stay
in the database, the JSON exports and the logs, where scripts match them;
whatever a page shows goes through here. A code added later without a label
still reads as words (underscores become spaces), never as a bare code.
"""
from __future__ import annotations

import re

from rolsync.models import Outcome, WarningKind

OUTCOME_LABELS = {
    Outcome.IMPORTED.value: "Imported",
    Outcome.SKIPPED.value: "Skipped",
    Outcome.WARNED.value: "Warning",
    Outcome.FAILED.value: "Failed",
}

REASON_LABELS = {
    "matched": "matched a record",
    "attached": "attached from the warning queue",
    "own_domain": "mail between colleagues (own domain)",
    "erased_person": "names a person who was erased",
    "private": "marked private by its owner",
    "removed": "its note was removed by its owner",
    "no_match": "no contact or candidate has the address",
    "no_counterpart": "no other address on the message",
    "duplicate_address": "address shared by several records",
    "unreadable": "the message could not be read",
    "error": "the import failed on this message",
    "automatic": "automatic mail (auto-reply, list, bounce)",
    "blocked": "the address is blocked",
    "custom": "a custom import rule",
    "held_for_record": "kept until a record has the address",
    "already_imported": "another copy of a message already imported",
    "too_large": "larger than the message size limit",
    "linked": "kept, then imported when a record got the address",
    "intake": "looks like an application from a new person",
}

ATTACHMENT_REASON_LABELS = {
    "image": "an image",
    "small_image": "a small image",
    "too_large": "larger than the size limit",
    "blocked_type": "a file type that is never kept",
    "custom": "a custom import rule",
    "kept": "kept",
}

RULE_LABELS = {
    "blocked_addresses": "blocked addresses",
    "own_domain": "mail between colleagues",
    "one_contact": "the address belongs to one contact",
    "one_candidate": "the address belongs to one candidate",
    "duplicate_contact": "the address belongs to several contacts",
    "duplicate_candidate": "the address belongs to several candidates",
    "no_match": "no record has the address",
    "intake": "an application from a new person",
    "automatic_mail": "automatic mail",
    "exclude_images": "leave out images",
    "exclude_inline_images": "leave out images inside the message",
    "small_images": "leave out small images",
    "attachment_size": "the attachment size limit",
    "blocked_types": "file types never kept",
    "keep_attachment": "attachments are kept",
    "continue": "no rule applied",
}

WARNING_KIND_LABELS = {
    WarningKind.DUPLICATE_ADDRESS.value: "Address shared by several records",
    WarningKind.NO_MATCH.value: "No record has the address",
    WarningKind.UNREADABLE_MESSAGE.value: "Unreadable message",
    WarningKind.IMPORT_FAILED.value: "Import failed",
    WarningKind.NO_SENT_FOLDER.value: "No Sent folder",
    WarningKind.AUTH_FAILED.value: "Mailbox sign-in failed",
    WarningKind.UIDVALIDITY_UNSTABLE.value: "Mailbox folders keep changing",
    WarningKind.CUSTOM_RULE.value: "Held by an import rule",
    WarningKind.MESSAGE_TOO_LARGE.value: "Message too large",
    "intake": "New person",
    WarningKind.STALLED.value: "Mailbox stopped importing",
    WarningKind.UNACCOUNTED.value: "Messages not accounted for",
}

SETTING_LABELS = {
    "format": "Rule format",
    "own_domain.enabled": "Leave out mail between colleagues",
    "own_domain.source": "Our own domain",
    "own_domain.domains": "Other internal domains",
    "images.mode": "Images",
    "images.min_size": "Always leave out images smaller than",
    "duplicate_address.action": "An address on more than one record",
    "no_match.action": "No contact or candidate has the address",
    "first_run.inbox": "First import: newest Inbox messages",
    "first_run.sent": "First import: newest Sent messages",
    "first_run.inbox_since": "First import: Inbox messages since",
    "first_run.sent_since": "First import: Sent messages since",
    "attachments.max_size": "Largest attachment kept",
    "attachments.blocked_extensions": "Attachment types never kept",
    "automatic_mail.skip": "Skip auto-replies and bulk mail",
    "blocked.addresses": "Never import mail from or to",
    "intake.enabled": "Put applications from new people on the New people page",
    "intake.extensions": "Attachment types that make a message an application",
    "intake.relays": "Applications relayed by job boards (the applicant in Reply-To)",
}

VALUE_LABELS = {
    "own_domain.source": {"imap_host": "from the mail server's name", "account_email": "from each mailbox address",
                          "list": "only the listed domains"},
    "images.mode": {"exclude_all": "leave out every image", "exclude_inline": "leave out images inside the message",
                    "keep": "keep every image"},
    "duplicate_address.action": {"warn": "raise a warning", "attach_all": "put the note on every record",
                                 "attach_latest": "put the note on the most recently updated record"},
    "no_match.action": {"skip": "skip the message", "warn": "raise a warning",
                        "keep": "keep it until a record has the address"},
}

SIZE_SETTINGS = frozenset({"images.min_size", "attachments.max_size"})


def words(code: str | None) -> str:
    """The fallback for a code without a label: its words."""
    return (code or "").replace("_", " ").replace(".", " ").strip()


def outcome_label(outcome: str | None) -> str:
    return OUTCOME_LABELS.get(outcome or "", words(outcome))


def reason_label(reason: str | None) -> str:
    return REASON_LABELS.get(reason or "", words(reason))


def attachment_reason_label(reason: str | None) -> str:
    return ATTACHMENT_REASON_LABELS.get(reason or "", words(reason))


def warning_kind_label(kind: str | None) -> str:
    return WARNING_KIND_LABELS.get(kind or "", words(kind).capitalize())


def rule_label(rule: str | None) -> str:
    """'the address belongs to one candidate', 'custom rule “CVs from the job board”'."""
    if not rule:
        return ""
    if rule.startswith("custom: "):
        return f"custom rule \u201c{rule.removeprefix('custom: ')}\u201d"
    if re.fullmatch(r"custom_\d+", rule):
        return "a custom rule"
    return RULE_LABELS.get(rule, words(rule))


def size_label(size: int | None) -> str:
    """A byte count the way people say it: '10 KB', '2.5 MB'."""
    value = float(size or 0)
    for unit in ("bytes", "KB", "MB"):
        if value < 1024:
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} GB"


def day_label(value: str) -> str:
    """'2024-03-01' as people write it: '1 March 2024'."""
    import datetime

    try:
        day = datetime.date.fromisoformat(value)
    except ValueError:
        return value
    return f"{day.day} {day.strftime('%B')} {day.year}"


def setting_label(key: str) -> str:
    return SETTING_LABELS.get(key, words(key).capitalize())


def setting_value(key: str, value: object) -> str:
    """A rule setting's value in words: 'on', 'keep every image', '2 MB', 'no limit', '(none)'."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    if value is None:
        return "(not set)"
    if key.endswith("_since") and isinstance(value, str):
        return day_label(value)
    if key in SIZE_SETTINGS and isinstance(value, int):
        return size_label(value) if value else ("no limit" if key == "attachments.max_size" else "off")
    return VALUE_LABELS.get(key, {}).get(str(value), str(value))


_CLASS_PREFIX = re.compile(r"^(?P<path>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+|[A-Z]\w*(?:Error|Exception|Exit)): ?")


def error_sentence(text: str | None) -> str:
    """An error line for people: rolsync's own sentence without the class name, else a plain sentence.

    `rolsync.mail.errors.NotImap: The port answered, but not as a mail server`
    becomes the sentence alone; a library's exception text (which may quote
    anything) becomes a sentence that sends the reader to the worker's log.
    """
    text = (text or "").strip()
    if not text:
        return ""
    found = _CLASS_PREFIX.match(text)
    if found is None:
        return text
    if found.group("path").startswith("rolsync.") and text[found.end():].strip():
        return text[found.end():].strip()
    return "The import stopped with an internal error; the worker's log has the details."
