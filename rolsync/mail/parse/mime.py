"""The MIME walk both parse paths share: which parts are the body text, which are files, and the limits on both.

The walk decides by the meaning of each multipart (RFC 2046, RFC 2387); the
paths differ only in how they read one part (its headers, its children, its
decoded bytes), which each supplies by subclassing ``Walk``. So the fast and
the careful path cannot disagree on what is body and what is a file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rolsync.mail.parse import headers as hdr
from rolsync.mail.parse.attachments import Decoded, extension, sniff
from rolsync.mail.parse.headers import HeaderFactory, HeaderValues
from rolsync.mail.parse.limits import Budget, ParseLimits
from rolsync.mail.parse.model import Attachment, ParsedMessage
from rolsync.mail.parse.text import clean, readable_text, unique

MAX_DEPTH = 30
"""How deep MIME nesting is followed; deeper parts are dropped with a defect (a guard against mail bombs)."""

Segments = list[tuple[str, str]]
"""Body text pieces: ("plain" | "html" | "enriched", text)."""


class Walk:
    """One pass over a MIME tree: returns body text segments, gathers everything else as attachments."""

    def __init__(self, defects: list[str], spool_dir: Path | None, limits: ParseLimits, budget: Budget):
        self.defects = defects
        self.spool_dir = spool_dir
        self.limits = limits
        self.budget = budget
        self.attachments: list[Attachment] = []
        self.part_count = 0
        self.parts_dropped = 0
        self.attachments_dropped = 0

    # ---- how one part is read: supplied by each path

    def values(self, part: Any) -> HeaderValues:
        raise NotImplementedError

    def part_defects(self, part: Any) -> Sequence[object]:
        return ()

    def content_type(self, part: Any) -> str:
        raise NotImplementedError

    def disposition(self, part: Any) -> str | None:
        raise NotImplementedError

    def filename(self, part: Any) -> str | None:
        raise NotImplementedError

    def children(self, part: Any, ctype: str, where: str) -> list[Any] | None:
        """The subparts of a multipart; None when none can be found (its text is then all there is)."""
        raise NotImplementedError

    def text(self, part: Any, ctype: str, where: str) -> str:
        raise NotImplementedError

    def add_file(self, part: Any, ctype: str, where: str, parent: str, disposition: str | None) -> None:
        raise NotImplementedError

    def add_message(self, part: Any, ctype: str, where: str, parent: str, disposition: str | None) -> None:
        raise NotImplementedError

    def related_start(self, part: Any) -> str | None:
        """The "start" parameter of a multipart/related."""
        return None

    # ---- the walk

    def collect(self, part: Any, *, depth: int, parent: str, body: bool, root: bool = False) -> Segments:
        """Text segments of `part` when it is body; anything else becomes attachments."""
        if depth > MAX_DEPTH:
            self.defects.append(f"MIME structure nested deeper than {MAX_DEPTH} levels; deeper parts ignored")
            return []
        self.budget.check()
        if self.part_count >= self.limits.mime_parts:
            self.parts_dropped += 1
            return []
        self.part_count += 1
        where = f"part {self.part_count}"
        if not root:
            hdr.note_defects(self.defects, where, self.part_defects(part))
        ctype = self.content_type(part)
        maintype, _, subtype = ctype.partition("/")

        if maintype == "multipart":
            children = self.children(part, ctype, where)
            if children is None:
                return [("plain", self.text(part, ctype, where))] if body else []
            return self._multipart(subtype, part, children, depth, body)

        disposition = self.disposition(part)
        if body and maintype == "text" and disposition != "attachment" and (root or not self.filename(part)):
            if subtype in ("plain", "html"):
                return [(subtype, self.text(part, ctype, where))]
            if subtype == "enriched" and parent == "alternative":
                # Another rendering of the body (RFC 1896), not a file the sender attached.
                return [("enriched", self.text(part, ctype, where))]
        if maintype == "message":
            self.add_message(part, ctype, where, parent, disposition)
        else:
            self.add_file(part, ctype, where, parent, disposition)
        return []

    def _multipart(self, subtype: str, part: Any, children: list[Any], depth: int, body: bool) -> Segments:
        """Text segments of a multipart by its subtype's meaning (RFC 2046, RFC 2387)."""
        if subtype == "alternative":
            # Every branch may carry files (iOS puts attachments in the HTML
            # branch only); the text comes from one branch: plain with words
            # preferred, else the last (the sender's best) HTML one, else the last.
            results = []
            start = len(self.attachments)
            for child in children:
                before = len(self.attachments)
                results.append(self.collect(child, depth=depth + 1, parent=subtype, body=body))
                self._drop_repeats(start, before)
            for result in results:
                if any(kind == "plain" and text.strip() for kind, text in result):
                    return result
            for result in reversed(results):
                if any(kind == "html" for kind, _text in result):
                    return result
            return next((result for result in reversed(results) if result), [])
        if subtype == "related":
            root = self._related_root(part, children)
            segments = []
            for child in children:
                segments += self.collect(child, depth=depth + 1, parent=subtype, body=body and child is root)
            return segments
        segments = []
        for child in children:
            segments += self.collect(child, depth=depth + 1, parent=subtype, body=body)
        return segments

    def _related_root(self, part: Any, children: list[Any]) -> Any:
        """The part a multipart/related starts with: its "start" parameter, else the first part (RFC 2387)."""
        start = self.related_start(part)
        if isinstance(start, str) and start.strip():
            wanted = start.strip().strip("<>")
            for child in children:
                ids = self.values(child)("content-id")
                if ids and ids[0].strip().strip("<>") == wanted:
                    return child
        return children[0] if children else None

    def _drop_repeats(self, start: int, since: int) -> None:
        """Forget files added since `since` that an earlier alternative (from `start`) gave already."""
        seen = {(a.filename, a.sha256) for a in self.attachments[start:since]}
        kept = self.attachments[:since]
        for attachment in self.attachments[since:]:
            if (attachment.filename, attachment.sha256) not in seen:
                kept.append(attachment)
            elif attachment.spool is not None:
                attachment.spool.unlink(missing_ok=True)
        self.attachments[:] = kept

    def is_inline(self, part: Any, parent: str, disposition: str | None) -> bool:
        return disposition == "inline" or (parent == "related" and bool(self.values(part)("content-id")))

    def append_decoded(self, name: str | None, content_type: str, decoded: Decoded, *, inline: bool) -> None:
        """Record one attachment decoded into a `Decoded` (perhaps into a spool file)."""
        if self._full():
            decoded.discard()
            return
        self._record(name, content_type, sniff(decoded.head), inline=inline, size=decoded.size,
                     sha256=decoded.sha256, content=decoded.content, spool=decoded.path)

    def append(self, name: str | None, content_type: str, data: bytes, *, inline: bool) -> None:
        """Record one attachment whose bytes are in memory."""
        if self._full():
            return
        self._record(name, content_type, sniff(data), inline=inline, size=len(data),
                     sha256=hashlib.sha256(data).hexdigest(), content=data, spool=None)

    def _full(self) -> bool:
        self.budget.check()
        if len(self.attachments) >= self.limits.attachments:
            self.attachments_dropped += 1
            return True
        return False

    def _record(self, name: str | None, content_type: str, sniffed: str | None, *, inline: bool, size: int,
                sha256: str, content: bytes | None, spool: Path | None) -> None:
        """Add an attachment, naming it "attachment-N.ext" when the sender gave no name."""
        if not name:
            name = f"attachment-{len(self.attachments) + 1}{extension(content_type, sniffed)}"
        self.attachments.append(Attachment(filename=name, content_type=content_type, sniffed_type=sniffed,
                                           size=size, sha256=sha256, inline=inline, content=content, spool=spool))

    def notices(self) -> list[str]:
        """What the limits left out, in words for the note."""
        notices = []
        if self.parts_dropped:
            notices.append(f"This message has more parts than rolsync reads ({self.limits.mime_parts}); "
                           f"{self.parts_dropped:,} more were not read.")
        if self.attachments_dropped:
            notices.append(f"This message has more attachments than rolsync keeps ({self.limits.attachments}); "
                           f"{self.attachments_dropped:,} more were dropped.")
        return notices


def finish(values: HeaderValues, walk: Walk, segments: Segments, defects: list[str], *, raw_sha256: str,
           size: int, path: str, factory: HeaderFactory | None = None, notices: Sequence[str] = ()
           ) -> ParsedMessage:
    """The ParsedMessage of a walked message, its headers read the same way on either path."""
    senders = hdr.address_pairs(values, "from", defects, factory)
    from_name, from_addr = senders[0] if senders else ("", None)
    replies = hdr.address_pairs(values, "reply-to", defects, factory)
    subject = " ".join((hdr.header_text(values, "subject", defects, factory) or "").split())
    limit = walk.limits.subject_chars
    all_notices = list(notices)
    if len(subject) > limit:
        all_notices.append(f"The subject was {len(subject):,} characters long; it is kept cut to {limit:,}.")
        subject = subject[:limit].rstrip() + "…"
    all_notices += walk.notices()
    text = readable_text(segments)
    if all_notices:
        text = "\n\n".join(filter(None, [text, "\n".join(f"[rolsync: {notice}]" for notice in all_notices)]))
        defects.extend(all_notices)
    when: datetime | None = hdr.date(values, defects)
    return ParsedMessage(
        message_id=hdr.message_id(values),
        subject=subject,
        date=when,
        from_addr=from_addr,
        from_name=from_name,
        reply_to=[addr for _n, addr in replies],
        to=[addr for _n, addr in hdr.address_pairs(values, "to", defects, factory)],
        cc=[addr for _n, addr in hdr.address_pairs(values, "cc", defects, factory)],
        bcc=[addr for _n, addr in hdr.address_pairs(values, "bcc", defects, factory)],
        headers=hdr.rule_headers(values),
        text=text,
        attachments=walk.attachments,
        defects=unique(clean(defect) for defect in defects),
        content_hash=raw_sha256,
        size=size,
        path=path,
        reply_to_name=replies[0][0] if replies else "",
    )
