"""What the rules decide for one parsed message, without writing anything.

The import applies a Decision (notes, documents, warnings, the ledger); the
rules preview shows two Decisions side by side; a warning's retry decides
again. All come from `decide`, so the preview says exactly what an import
would do. The order: the message rules first (skip, hold, send to a named
record), then each counterpart address (the first of From for received mail,
every recipient for sent mail), then, when records were found, the
attachments.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy.orm import Session

from rolsync.mail.parse import Attachment, ParsedMessage
from rolsync.matching import Matches, RecordRef, find_named_record, find_records
from rolsync.models import Direction, Outcome, RecordKind, WarningKind, as_utc
from rolsync.rules.conditions import AttachmentFacts, MessageFacts, looks_automatic
from rolsync.rules.engine import AddressAction, AddressDecision, Attach, CompiledRules, MessageAction


@dataclass(frozen=True)
class Counterpart:
    address: str
    header: str  # from, reply_to, to, cc, bcc


@dataclass(frozen=True)
class DroppedAttachment:
    filename: str
    reason: str
    rule: str

    def as_json(self) -> dict:
        return {"filename": self.filename, "reason": self.reason, "rule": self.rule}


@dataclass(frozen=True)
class NewWarning:
    """A warning the rules ask for; the import writes it as an ImportWarning with the message's fields."""

    kind: WarningKind
    address: str | None
    detail: str
    rule: str | None
    records: list[dict] = field(default_factory=list)  # the records it may go to (ImportWarning.records)
    details: dict | None = None  # what its page shows besides (ImportWarning.details: New people's applicant)


@dataclass
class Decision:
    """Everything the rules said about one message."""

    direction: Direction
    records: list[RecordRef] = field(default_factory=list)
    warnings: list[NewWarning] = field(default_factory=list)
    skip_reasons: list[tuple[str, str | None]] = field(default_factory=list)
    import_rule: str | None = None
    kept: list[Attachment] = field(default_factory=list)
    dropped: list[DroppedAttachment] = field(default_factory=list)
    # no_match "keep": addresses whose future record should get the message
    pending: list[str] = field(default_factory=list)

    def skip(self, reason: str, rule: str | None) -> None:
        self.skip_reasons.append((reason, rule))

    @property
    def outcome(self) -> Outcome:
        if self.records:
            return Outcome.IMPORTED
        if self.warnings:
            return Outcome.WARNED
        return Outcome.SKIPPED

    @property
    def reason(self) -> str | None:
        if self.records:
            return "matched"
        if self.warnings:
            return self.warnings[0].kind.value
        reasons = [r for r, _ in self.skip_reasons]
        # A message is "own domain" only when every counterpart was a colleague.
        if reasons and all(r == "own_domain" for r in reasons):
            return "own_domain"
        return next((r for r in reasons if r != "own_domain"), None)

    @property
    def rule(self) -> str | None:
        if self.records:
            return self.import_rule
        if self.warnings:
            return self.warnings[0].rule
        reason = self.reason
        return next((rule for r, rule in self.skip_reasons if r == reason), None)

    def summary(self) -> dict:
        """A plain description, for the preview and the history."""
        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "rule": self.rule,
            "direction": self.direction.value,
            "records": [{"kind": r.kind.value, "id": r.id, "name": r.name} for r in self.records],
            "warnings": [{"kind": w.kind.value, "address": w.address, "rule": w.rule} for w in self.warnings],
            "kept": [a.filename for a in self.kept],
            "dropped": [d.as_json() for d in self.dropped],
            "pending": list(self.pending),
        }


def message_facts(parsed: ParsedMessage) -> MessageFacts:
    return MessageFacts(
        from_addr=parsed.from_addr or "",
        to=list(parsed.to),
        cc=list(parsed.cc),
        subject=parsed.subject,
        body=parsed.text,
        headers=dict(parsed.headers),
        attachments=[AttachmentFacts(a.filename, a.content_type, a.size) for a in parsed.attachments],
    )


def counterparts(parsed: ParsedMessage, direction: Direction) -> list[Counterpart]:
    if direction is Direction.RECEIVED:
        return [Counterpart(parsed.from_addr, "from")] if parsed.from_addr else []
    seen: set[str] = set()
    found = []
    for header, addresses in (("to", parsed.to), ("cc", parsed.cc), ("bcc", parsed.bcc)):
        for address in addresses:
            if address not in seen:
                seen.add(address)
                found.append(Counterpart(address, header))
    return found


def effective_direction(parsed: ParsedMessage, direction: Direction, own_addresses: set[str]) -> Direction:
    """The folder's direction, except for the user's own message seen in the Inbox."""
    if direction is Direction.RECEIVED and parsed.from_addr in own_addresses:
        # A copy to self, or a server that files sent mail there: its
        # counterparts are the recipients.
        return Direction.SENT
    return direction


def addresses_to_match(parsed: ParsedMessage, direction: Direction, own_addresses: set[str]) -> list[str]:
    """Every address `decide` may look up for this message, so a caller can look up many messages at once."""
    parties = counterparts(parsed, effective_direction(parsed, direction, own_addresses))
    return [c.address for c in parties] + _relay_reply_to(parsed)


def decide(session: Session, rules: CompiledRules, parsed: ParsedMessage, direction: Direction, *,
           own: frozenset[str], own_addresses: set[str], lookups: dict[str, Matches] | None = None) -> Decision:
    """Ask the rules about a message: message rules, then each address, then attachments.

    `lookups` (from `find_records` over `addresses_to_match`, possibly of many
    messages) saves the lookup of this message's addresses.
    """
    direction = effective_direction(parsed, direction, own_addresses)
    decision = Decision(direction)
    facts = message_facts(parsed)
    verdict = rules.decide_message(facts, automatic=looks_automatic(parsed.headers, parsed.from_addr,
                                                                    parsed.reply_to))
    if verdict.action is MessageAction.SKIP:
        decision.skip(verdict.reason, verdict.rule)
        return decision
    if verdict.action is MessageAction.WARN:
        decision.warnings.append(NewWarning(
            WarningKind.CUSTOM_RULE, parsed.from_addr,
            f"The rule \u201c{verdict.rule.removeprefix('custom: ')}\u201d held this message for review.",
            verdict.rule))
        return decision
    if verdict.action is MessageAction.SEND_TO_RECORD and verdict.record is not None:
        _send_to_named_record(session, decision, verdict.record, verdict.rule)
    else:
        _decide_addresses(session, rules, parsed, decision, own, lookups)
    if decision.records:
        decision.kept, decision.dropped = sort_attachments(rules, parsed, facts)
    return decision


def sort_attachments(rules: CompiledRules, parsed: ParsedMessage, facts: MessageFacts | None = None
                     ) -> tuple[list[Attachment], list[DroppedAttachment]]:
    """The attachments the rules keep as documents (by default: everything but images), and those they drop."""
    facts = facts or message_facts(parsed)
    kept, dropped = [], []
    for attachment in parsed.attachments:
        verdict = rules.decide_attachment(filename=attachment.filename, content_type=attachment.content_type,
                                          size=attachment.size, is_image=attachment.is_image,
                                          inline=attachment.inline, message=facts)
        if verdict.keep:
            kept.append(attachment)
        else:
            dropped.append(DroppedAttachment(attachment.filename, verdict.reason, verdict.rule))
    return kept, dropped


def _ask(rules: CompiledRules, counterpart: Counterpart, matches: Matches, direction: Direction,
         own: frozenset[str], application: bool = False) -> AddressDecision:
    return rules.decide_address(counterpart.address, own=own, contacts=len(matches.contacts),
                                candidates=len(matches.candidates), direction=direction.value,
                                header=counterpart.header, application=application)


def _relay_reply_to(parsed: ParsedMessage) -> list[str]:
    """The Reply-To address that stands in for a sender matching no record (job-board relays)."""
    return [a for a in parsed.reply_to if a != parsed.from_addr][:1]


def _decide_addresses(session: Session, rules: CompiledRules, parsed: ParsedMessage, decision: Decision,
                      own: frozenset[str], lookups: dict[str, Matches] | None) -> None:
    direction = decision.direction
    parties = counterparts(parsed, direction)
    reply_to = _relay_reply_to(parsed)
    if lookups is None:
        lookups = find_records(session, [c.address for c in parties] + reply_to)
    if not parties:
        decision.skip("no_counterpart", None)
        return
    intake = rules.definition["intake"]
    cv = direction is Direction.RECEIVED and intake["enabled"] and has_cv(parsed, intake["extensions"])
    for party in parties:
        verdict = _ask(rules, party, lookups[party.address], direction, own, application=cv)
        if verdict.reason in ("no_match", "intake") and direction is Direction.RECEIVED and reply_to:
            # Job boards relay applications from a no-reply sender with the
            # candidate in Reply-To.
            party = Counterpart(reply_to[0], "reply_to")
            verdict = _ask(rules, party, lookups[party.address], direction, own,
                           application=cv or intake["relays"])
        if verdict.action is AddressAction.INTAKE:
            # New people: an item for the applicant, and the message held for the record made from it.
            decision.warnings.append(intake_warning(parsed, party.address, party.header, verdict.rule))
            decision.pending.append(party.address)
            continue
        _apply(decision, party, verdict, lookups[party.address])


def _apply(decision: Decision, party: Counterpart, verdict: AddressDecision, matches: Matches) -> None:
    if verdict.action is AddressAction.SKIP:
        decision.skip(verdict.reason, verdict.rule)
        return
    if verdict.action is AddressAction.KEEP:
        decision.skip("held_for_record", verdict.rule)
        decision.pending.append(party.address)
        return
    if verdict.action is AddressAction.WARN:
        records = matches.of_kind(verdict.kind) if verdict.kind else []
        kind = WarningKind.DUPLICATE_ADDRESS if verdict.reason == "duplicate_address" else WarningKind.NO_MATCH
        if kind is WarningKind.DUPLICATE_ADDRESS:
            detail = (f"{party.address} belongs to {len(records)} {verdict.kind}s, so the message was not "
                      "imported. Remove the duplicate address or attach the message to one record.")
        else:
            detail = f"No contact or candidate has the address {party.address}."
        decision.warnings.append(NewWarning(kind, party.address, detail, verdict.rule,
                                            [r.as_json(party.address) for r in records]))
        return
    candidates = matches.of_kind(verdict.kind or "")
    if verdict.attach is Attach.ALL:
        chosen = candidates
    elif verdict.attach is Attach.LATEST:
        chosen = [max(candidates, key=lambda r: (as_utc(r.updated_at) if r.updated_at else _EPOCH, r.id))]
    else:
        chosen = candidates[:1]
    for record in chosen:
        if record not in decision.records:
            decision.records.append(record)
    decision.import_rule = decision.import_rule or verdict.rule


def _send_to_named_record(session: Session, decision: Decision, record: dict, rule: str) -> None:
    """A custom rule's "send to record": the record named by kind and address, if exactly one."""
    kind = RecordKind(record["kind"])
    found = find_named_record(session, kind, record["email"])
    if len(found) == 1:
        decision.records.append(found[0])
        decision.import_rule = rule
        return
    decision.warnings.append(NewWarning(
        WarningKind.CUSTOM_RULE, record["email"],
        (f"The rule \u201c{rule.removeprefix('custom: ')}\u201d sends this message to the "
         f"{record['kind']} {record['email']}, but {len(found) or 'no'} such record exists."),
        rule, [ref.as_json(record["email"]) for ref in found]))


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# -- New people: does a message look like an application? ------------------------------------


def has_cv(parsed: ParsedMessage, extensions: Iterable[str]) -> bool:
    """Whether the message carries an attachment of one of the CV-like types (by its file name)."""
    wanted = tuple(e.lower() for e in extensions)
    return bool(wanted) and any(not a.inline and a.filename.lower().endswith(wanted) for a in parsed.attachments)


def applicant_name(parsed: ParsedMessage, address: str, header: str) -> str:
    """The display name that goes with `address`: From's, or Reply-To's for a relayed application."""
    if header == "from":
        return (parsed.from_name or "").strip()
    if header == "reply_to" and parsed.reply_to[:1] == [address]:
        return parsed.reply_to_name.strip()
    return ""


def intake_warning(parsed: ParsedMessage, address: str, header: str, rule: str | None) -> NewWarning:
    """The New people item (an `intake` warning) for an application from `address`."""
    name = applicant_name(parsed, address, header)
    return NewWarning(
        WarningKind.INTAKE, address,
        f"{name or address} sent what looks like an application, and no record has the address.", rule,
        details={"name": name, "header": header,
                 "attachments": [_attachment_json(a) for a in parsed.attachments if not a.inline][:50]},
    )


def _attachment_json(attachment: Attachment) -> dict:
    """What the list shows of an attachment, and how to find it again in the kept message (its SHA-256)."""
    return {"filename": attachment.filename, "content_type": attachment.content_type, "size": attachment.size,
            "sha256": attachment.sha256}
