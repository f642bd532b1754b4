"""Generated mail for the benchmarks: a recruiter's mailbox, filler mailboxes, and messages with big attachments.

Everything is built from a seeded random generator, so two runs measure the
same bytes. Attachment bytes are random (incompressible), as PDFs and DOCX
files mostly are.
"""
from __future__ import annotations

import base64
import os
import random
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devkit.builders import build_message, minimal_docx, minimal_pdf, tiny_png  # noqa: E402

CONSULTANT_DOMAIN = "agency.example"
FIRST_NAMES = ("Anna", "Ben", "Carla", "David", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas", "Kaja", "Luca",
               "Mona", "Nils", "Olga", "Pavel", "Rosa", "Sami", "Tara", "Umut", "Vera", "Wim", "Yara", "Zoe")
LAST_NAMES = ("Almeida", "Berg", "Costa", "Dietrich", "Eriksen", "Fischer", "Garcia", "Horvat", "Ivanova", "Jansen",
              "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Petrov", "Rossi", "Schmidt", "Tanaka", "Weber")
WORDS = ("role", "interview", "salary", "notice", "period", "client", "feedback", "shortlist", "offer", "contract",
         "start", "date", "relocation", "remote", "team", "lead", "engineer", "analyst", "benefits", "reference",
         "availability", "second", "round", "technical", "assessment", "the", "and", "we", "next", "week", "thanks")


@dataclass(frozen=True)
class Person:
    """One CRM record: a contact at a client, or a candidate."""

    kind: str  # "contact" or "candidate"
    name: str
    email: str


def crm_people(count: int) -> list[Person]:
    """`count` records, half contacts and half candidates, each with its own address."""
    people = []
    for i in range(count):
        first, last = FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[(i // len(FIRST_NAMES)) % len(LAST_NAMES)]
        if i % 2 == 0:
            people.append(Person("contact", f"{first} {last}", f"{first}.{last}.{i}@client{i % 997}.example".lower()))
        else:
            people.append(Person("candidate", f"{first} {last}", f"{first}.{last}.{i}@mail{i % 13}.example".lower()))
    return people


@dataclass
class Corpus:
    """Messages per folder, and the notes a correct import makes: Message-ID -> addresses of the records."""

    consultant: str
    inbox: list[bytes] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    expected: dict[str, set[str]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(map(len, self.inbox)) + sum(map(len, self.sent))

    @property
    def count(self) -> int:
        return len(self.inbox) + len(self.sent)

    @property
    def expected_notes(self) -> int:
        return sum(len(addresses) for addresses in self.expected.values())


def _text(rng: random.Random, words: int) -> str:
    lines, line = [], []
    for _ in range(words):
        line.append(rng.choice(WORDS))
        if len(line) == 12:
            lines.append(" ".join(line))
            line = []
    lines.append(" ".join(line))
    return "\n".join(lines)


def _html(text: str) -> str:
    paragraphs = "".join(f"<p style=\"margin:0 0 8px 0\">{line}</p>" for line in text.split("\n"))
    return (f"<html><head><style>p {{ font-family: Arial; }}</style></head><body><div>{paragraphs}</div>"
            f"<table><tr><td>Kind regards</td><td><a href=\"https://client.example/jobs\">Our jobs</a></td></tr>"
            f"</table><img src=\"cid:logo\"></body></html>")


def _pdf(rng: random.Random, label: str) -> bytes:
    return minimal_pdf(label) + rng.randbytes(rng.randint(30_000, 130_000))


def _docx(rng: random.Random, label: str) -> bytes:
    return minimal_docx(label) + rng.randbytes(rng.randint(15_000, 60_000))


def _logo(rng: random.Random) -> bytes:
    return tiny_png() + rng.randbytes(rng.randint(2_000, 6_000))


def recruitment_corpus(n: int, consultant: str, people: list[Person], seed: int = 7) -> Corpus:
    """A consultant's mailbox of `n` messages, about 20 KB each, as a recruiter's looks.

    Inbox (85%): mail from contacts and candidates (plain, HTML with a plain
    alternative, or HTML only, some with a signature logo, some with a CV as
    PDF or DOCX), newsletters from unknown senders, and mail from colleagues.
    Sent (15%): to one to three records (To and Cc), some forwarding a CV.
    Correspondents repeat, as they do in a real mailbox.
    """
    rng = random.Random(seed)
    corpus = Corpus(consultant)
    # A few hundred people write most of the mail.
    correspondents = rng.sample(people, min(len(people), max(50, n // 5)))
    start = datetime(2024, 1, 8, 9, 0, tzinfo=timezone.utc)
    for i in range(n):
        date = format_datetime(start + timedelta(minutes=17 * i))
        message_id = make_msgid(idstring=f"bench{i}", domain="mail.example")
        roll = rng.random()
        text = _text(rng, rng.randint(60, 450))
        attachments, inline, html = [], [], None
        style = rng.random()
        if style < 0.4:
            body = text
        elif style < 0.8:
            body, html = text, _html(text)
        else:
            body, html = None, _html(text)
        if html is not None and rng.random() < 0.35:
            inline.append(("logo", "logo.png", "image/png", _logo(rng)))
        if roll < 0.70:
            person = rng.choice(correspondents)
            if rng.random() < 0.12:
                attachments.append((f"CV {person.name}.pdf", "application/pdf", _pdf(rng, person.name)))
            elif rng.random() < 0.09:
                attachments.append((f"CV {person.name}.docx", "application/vnd.openxmlformats-officedocument."
                                    "wordprocessingml.document", _docx(rng, person.name)))
            corpus.inbox.append(build_message(
                from_=f"{person.name} <{person.email}>", to=consultant, subject=f"Re: {rng.choice(WORDS)} {i}",
                text=body, html=html, attachments=attachments, inline_images=inline if html else (),
                message_id=message_id, date=date))
            corpus.expected[message_id.strip("<>")] = {person.email}
        elif roll < 0.78:
            # Newsletters and job-board digests: automatic mail, skipped.
            corpus.inbox.append(build_message(
                from_=f"Jobs Weekly <news{i % 7}@digest{i % 5}.example>", to=consultant,
                subject=f"This week's jobs {i}", text=None, html=_html(text), message_id=message_id, date=date,
                headers={"List-Unsubscribe": f"<https://digest{i % 5}.example/u/{i}>", "Precedence": "bulk"}))
        elif roll < 0.85:
            # Colleagues: the own domain, skipped.
            corpus.inbox.append(build_message(
                from_=f"colleague{i % 9}@{CONSULTANT_DOMAIN}", to=consultant, subject=f"Team {i}",
                text=body or text, message_id=message_id, date=date))
        else:
            recipients = rng.sample(correspondents, rng.randint(1, 3))
            if rng.random() < 0.2:
                attachments.append(("CV shortlisted.pdf", "application/pdf", _pdf(rng, f"Shortlist {i}")))
            corpus.sent.append(build_message(
                from_=consultant, to=", ".join(f"{p.name} <{p.email}>" for p in recipients[:2]),
                cc=", ".join(p.email for p in recipients[2:]) or None, subject=f"Shortlist {i}",
                text=body or text, html=html, attachments=attachments, message_id=message_id, date=date))
            corpus.expected[message_id.strip("<>")] = {p.email for p in recipients}
    return corpus


def filler(n: int, consultant: str, sender: str) -> list[bytes]:
    """`n` small distinct messages, cheap to build (for the mailboxes that are only polled)."""
    template = (f"From: {sender}\r\nTo: {consultant}\r\nSubject: Filler {{i}}\r\n"
                "Date: Mon, 03 Jun 2024 10:00:00 +0000\r\nMessage-ID: <filler-{i}@bench.example>\r\n"
                "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                "A short message, number {i}.\r\n")
    return [template.format(i=i).encode() for i in range(n)]


def big_attachment_messages(count: int, megabytes: int, consultant: str, sender: str) -> list[bytes]:
    """`count` messages, each with its own `megabytes` MB attachment (base64, 76-character lines)."""
    body = os.urandom(megabytes * 1024 * 1024)
    encoded = base64.encodebytes(body).replace(b"\n", b"\r\n")
    messages = []
    for i in range(count):
        # A different first line of base64 makes each attachment distinct.
        first = base64.encodebytes(i.to_bytes(4, "big") + body[4:57]).replace(b"\n", b"\r\n")
        head = (f"From: {sender}\r\nTo: {consultant}\r\nSubject: Portfolio {i}\r\n"
                f"Date: Mon, 03 Jun 2024 10:00:00 +0000\r\nMessage-ID: <big-{i}@bench.example>\r\n"
                "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b-o-u-n-d\"\r\n\r\n"
                "--b-o-u-n-d\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMy portfolio is attached.\r\n"
                "--b-o-u-n-d\r\nContent-Type: application/pdf; name=\"portfolio.pdf\"\r\n"
                "Content-Disposition: attachment; filename=\"portfolio.pdf\"\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n").encode()
        messages.append(head + first + encoded[len(first):] + b"--b-o-u-n-d--\r\n")
    return messages
