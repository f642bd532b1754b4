"""A recruitment consultant's mailbox, generated: a few months of Inbox and Sent mail.

Deterministic: the same seed and end date give the same messages, byte for
byte. What is in it, and what the import does with it by default:

- candidates sending CVs (PDF and Word) and replies: notes and documents on
  candidates;
- clients discussing roles, some in HTML with a signature logo (the logo is
  left out, an attached job description is kept): notes on contacts;
- the consultant's sent mail to candidates and clients, shortlists with CVs,
  colleagues in copy: notes on every outside recipient;
- colleagues on the own domain: skipped (`own_domain`);
- a job board relaying applications from a no-reply sender with the
  candidate in Reply-To: notes on the candidate;
- newsletters and out-of-office replies: skipped (`automatic_mail`);
- Quayside's shared hiring address, which two contacts have: warnings
  (`duplicate_address`);
- strangers: skipped (`no_match`).

The newest few days hold one message of each kind, so the first import (the
newest 100 of each folder by default) always shows them all.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from devkit import sample_files as files
from devkit.sample_crm import (
    AGENCY,
    CANDIDATES,
    COLLEAGUES,
    CONSULTANT,
    CONTACTS,
    JOB_BOARD,
    NEWSLETTERS,
    ROLES,
    SHARED_ADDRESS,
    STRANGERS,
    Person,
    Role,
)

INBOX = "INBOX"
SENT = "Sent"
DEFAULT_SEED = 8
INBOX_MESSAGES = 240
SENT_MESSAGES = 120
DAYS = 180
"""The mailbox covers about six months before the end date."""

SIGNATURE = f"{CONSULTANT.name}\n{CONSULTANT.title}, {AGENCY}\n+44 20 7946 0321"

_LOGO_COLOURS = {
    "Brightwave Energy": (242, 153, 0), "Brightwave Grid Services": (242, 153, 0),
    "Northbank Capital": (18, 52, 112), "Northbank Insurance": (18, 52, 112),
    "Kestrel Logistics": (170, 30, 45), "Alder Health": (20, 120, 90),
    "Quayside Software": (40, 90, 200), "Meridian Retail Group": (110, 50, 140),
}


@dataclass(frozen=True)
class DemoMessage:
    folder: str
    date: datetime
    raw: bytes
    seen: bool


@dataclass
class _Thread:
    """The last message exchanged with one person, so the next one can be a reply."""

    subject: str
    message_id: str
    references: list[str] = field(default_factory=list)


class _Writer:
    """Builds the messages of one mailbox; all randomness comes from one seeded generator."""

    def __init__(self, seed: int, end: datetime):
        self.rng = random.Random(seed)
        self.end = end
        self.threads: dict[str, _Thread] = {}
        self.roles = {person.email: self.rng.choice(ROLES) for person in CANDIDATES}
        self.counter = 0

    # -- small pieces ---------------------------------------------------------------

    def when(self, newest_days: float, oldest_days: float) -> datetime:
        """A weekday working-hours moment between `oldest_days` and `newest_days` before the end."""
        moment = self.end - timedelta(days=self.rng.uniform(newest_days, oldest_days))
        while moment.weekday() >= 5 and self.rng.random() < 0.85:
            moment -= timedelta(days=1)
        moment = moment.replace(hour=self.rng.randint(8, 18), minute=self.rng.randint(0, 59),
                                second=self.rng.randint(0, 59), microsecond=0)
        return min(moment, self.end - timedelta(minutes=self.rng.randint(5, 50)))

    def message_id(self, sender: Person) -> str:
        self.counter += 1
        return f"<{self.rng.getrandbits(64):016x}.{self.counter}@{sender.email.split('@')[1]}>"

    def role_of(self, person: Person) -> Role:
        if person.email in self.roles:
            return self.roles[person.email]
        return next((role for role in ROLES if role.company == person.company), ROLES[0])

    def cv(self, person: Person) -> tuple[str, str, bytes]:
        """A candidate's CV as PDF or Word, with a file name in the style people really use."""
        role = self.role_of(person)
        years = 3 + sum(map(ord, person.name)) % 12
        lines = [
            person.email,
            "",
            "Profile",
            f"{years} years of experience, looking for a {role.title} position.",
            "",
            "Experience",
            f"2019 - today   {self.rng.choice(['Senior', 'Lead', ''])} {role.title.split()[-1]}, "
            f"{self.rng.choice(['Fenwick & Co', 'Otterburn Group', 'Larkspur Ltd', 'Cobalt Systems'])}",
            f"2015 - 2019    {role.title.split()[-1]}, "
            f"{self.rng.choice(['Marlow Partners', 'Tidewater plc', 'Hollybank Ltd', 'Ironbridge Labs'])}",
            "",
            "Education",
            f"{self.rng.choice(['BSc', 'MSc', 'BA', 'MEng'])}, "
            f"{self.rng.choice(['University of Leeds', 'Universidad de Sevilla', 'TU Berlin', 'University of Lagos'])}",
        ]
        style = sum(map(ord, person.email)) % 3
        stem = person.name.replace(" ", "_")
        if style == 0:
            return f"CV_{stem}.pdf", files.PDF_TYPE, files.pdf(f"{person.name} - Curriculum Vitae", lines)
        if style == 1:
            return f"{person.name} CV {self.end.year}.docx", files.DOCX_TYPE, files.docx(person.name, lines)
        return f"{stem}_Resume.pdf", files.PDF_TYPE, files.pdf(person.name, lines)

    def job_description(self, role: Role) -> tuple[str, str, bytes]:
        lines = [role.company, f"Salary: {role.salary} plus benefits", "Hybrid, three days in the office", "",
                 "What you will do", f"Lead the work of the {role.title} team day to day.", "",
                 "What you bring", "A track record in a similar role, and curiosity."]
        name = f"Job description - {role.title}"
        if self.rng.random() < 0.5:
            return f"{name}.pdf", files.PDF_TYPE, files.pdf(name, lines)
        return f"{name}.docx", files.DOCX_TYPE, files.docx(name, lines)

    def message(self, folder: str, sender: Person, to: list[Person], subject: str, text: str, *,
                date: datetime, cc: Sequence[Person] = (), reply_to: Person | None = None,
                attachments: Sequence[tuple[str, str, bytes]] = (), html_signature: Person | None = None,
                headers: dict[str, str] | None = None, thread_with: Person | None = None) -> DemoMessage:
        """One message as bytes; replies to the last message with `thread_with` when there is one."""
        msg = EmailMessage(policy=policy.SMTP)
        msg["From"] = sender.header
        msg["To"] = ", ".join(person.header for person in to)
        if cc:
            msg["Cc"] = ", ".join(person.header for person in cc)
        if reply_to is not None:
            msg["Reply-To"] = reply_to.header
        own_id = self.message_id(sender)
        thread = self.threads.get(thread_with.email) if thread_with else None
        if thread is not None:
            subject = thread.subject if thread.subject.lower().startswith("re:") else f"Re: {thread.subject}"
            msg["In-Reply-To"] = thread.message_id
            msg["References"] = " ".join([*thread.references, thread.message_id][-5:])
        msg["Subject"] = subject
        msg["Date"] = format_datetime(date)
        msg["Message-ID"] = own_id
        for name, value in (headers or {}).items():
            msg[name] = value
        msg.set_content(text)
        if html_signature is not None:
            self._add_html_with_logo(msg, text, html_signature)
        for filename, content_type, data in attachments:
            maintype, subtype = content_type.split("/", 1)
            msg.add_attachment(data, maintype, subtype, filename=filename)
        for part in msg.walk():
            if part.is_multipart():
                # The email package picks boundaries at random; ours come from the seed.
                part.set_boundary(f"=_demo_{self.rng.getrandbits(64):016x}")
        if thread_with is not None:
            references = [*thread.references, thread.message_id] if thread else []
            self.threads[thread_with.email] = _Thread(subject, own_id, references)
        seen = date < self.end - timedelta(days=2) or self.rng.random() < 0.5
        return DemoMessage(folder, date, msg.as_bytes(), seen)

    def _add_html_with_logo(self, msg: EmailMessage, text: str, person: Person) -> None:
        """The HTML alternative a mail client writes, with the company logo inline in the signature."""
        body, _, signature = text.rpartition("\n\n")
        paragraphs = "".join(f"<p>{_html(p).replace(chr(10), '<br>')}</p>" for p in body.split("\n\n") if p)
        html = (f"<html><body>{paragraphs}<p style=\"color:#555\">{_html(signature).replace(chr(10), '<br>')}"
                f"<br><img src=\"cid:logo@{person.email.split('@')[1]}\" alt=\"{_html(person.company)}\" "
                f"width=\"96\" height=\"24\"></p></body></html>")
        msg.add_alternative(html, subtype="html")
        html_part = msg.get_body(("html",))
        logo = files.logo_png(_LOGO_COLOURS.get(person.company, (90, 90, 90)))
        html_part.add_related(logo, "image", "png", cid=f"<logo@{person.email.split('@')[1]}>",
                              filename="logo.png", disposition="inline")

    # -- the kinds of mail --------------------------------------------------------------

    def candidate_sends_cv(self, date: datetime, person: Person | None = None) -> DemoMessage:
        person = person or self.rng.choice(CANDIDATES)
        role = self.role_of(person)
        text = self.rng.choice([
            f"Dear {CONSULTANT.first_name},\n\nFollowing our call, please find my CV attached for the "
            f"{role.title} role at {role.company}. I am available for interviews most afternoons.\n\n"
            f"Kind regards,\n\n{person.name}",
            f"Hi {CONSULTANT.first_name},\n\nHere is my updated CV. I've added the project I mentioned, "
            f"which I think is very relevant to the {role.title} position.\n\nThanks,\n\n{person.first_name}",
            f"Hello,\n\nI saw that you recruit for {role.company} and would like to be considered for the "
            f"{role.title} opening. My CV is attached.\n\nBest wishes,\n\n{person.name}",
        ])
        return self.message(INBOX, person, [CONSULTANT], f"CV - {role.title} - {person.name}", text,
                            date=date, attachments=[self.cv(person)], thread_with=person)

    def candidate_replies(self, date: datetime) -> DemoMessage:
        person = self.rng.choice(CANDIDATES)
        role = self.role_of(person)
        text = self.rng.choice([
            f"Hi {CONSULTANT.first_name},\n\nThursday at 2pm works for me. Should I prepare anything for the "
            f"technical part?\n\nThanks,\n\n{person.first_name}",
            f"Hi {CONSULTANT.first_name},\n\nThank you for the feedback from {role.company}. I'm really pleased "
            f"to go through to the final round.\n\nBest,\n\n{person.first_name}",
            f"Hello {CONSULTANT.first_name},\n\nMy notice period is one month and I'm looking for around "
            f"{role.salary}. Happy to discuss.\n\nRegards,\n\n{person.name}",
            f"Hi {CONSULTANT.first_name},\n\nI've had a counter-offer from my current employer. Could we talk "
            f"tomorrow before I decide on {role.company}?\n\n{person.first_name}",
        ])
        return self.message(INBOX, person, [CONSULTANT], f"{role.title} at {role.company}", text, date=date,
                            thread_with=person)

    def client_writes(self, date: datetime, person: Person | None = None,
                      with_description: bool | None = None) -> DemoMessage:
        person = person or self.rng.choice([c for c in CONTACTS if c.email != SHARED_ADDRESS])
        role = self.role_of(person)
        candidate = self.rng.choice(CANDIDATES)
        text = self.rng.choice([
            f"Hi {CONSULTANT.first_name},\n\nWe have signed off a new {role.title} position. Budget is "
            f"{role.salary}; we'd like a shortlist by the end of next week.\n\nBest regards,\n\n"
            f"{person.name}\n{person.title}, {person.company}",
            f"Hi {CONSULTANT.first_name},\n\nThanks for sending {candidate.name} over. We'd like to invite "
            f"{candidate.first_name} to a first interview for the {role.title} role.\n\nBest regards,\n\n"
            f"{person.name}\n{person.title}, {person.company}",
            f"{CONSULTANT.first_name},\n\nQuick feedback on Tuesday's interviews: strong technically, but we are "
            f"looking for more leadership experience for the {role.title} role. Can you send two more "
            f"profiles?\n\nThanks,\n\n{person.name}\n{person.title}, {person.company}",
            f"Hi {CONSULTANT.first_name},\n\nCould you share your terms for the {role.title} search again? "
            f"Finance needs them before we raise the purchase order.\n\nKind regards,\n\n"
            f"{person.name}\n{person.title}, {person.company}",
        ])
        if with_description is None:
            with_description = self.rng.random() < 0.25
        attachments = [self.job_description(role)] if with_description else []
        logo = person if self.rng.random() < 0.6 or with_description else None
        return self.message(INBOX, person, [CONSULTANT], f"{role.title} - {role.company}", text, date=date,
                            attachments=attachments, html_signature=logo, thread_with=person)

    def shared_address_writes(self, date: datetime) -> DemoMessage:
        team = Person("Quayside Hiring", SHARED_ADDRESS, "Quayside Software", "Hiring team")
        role = self.role_of(team)
        candidate = self.rng.choice(CANDIDATES)
        text = self.rng.choice([
            f"Hi {CONSULTANT.first_name},\n\nPlease find below our interview slots for the {role.title} role "
            f"next week: Monday 10:00, Wednesday 14:00 and Friday 11:00.\n\nQuayside Hiring Team",
            f"Hello {CONSULTANT.first_name},\n\n{candidate.name} has accepted our offer for the {role.title} "
            f"role. Thank you for your help!\n\nQuayside Hiring Team",
            f"Hi,\n\nA reminder that {candidate.first_name}'s second interview is tomorrow at 9:30, in person "
            f"at our Bristol office.\n\nQuayside Hiring Team",
        ])
        return self.message(INBOX, team, [CONSULTANT], f"{role.title} interviews", text, date=date,
                            thread_with=team)

    def colleague_writes(self, date: datetime) -> DemoMessage:
        person = self.rng.choice(COLLEAGUES)
        text = self.rng.choice([
            f"Hi {CONSULTANT.first_name},\n\nTeam meeting moved to 9:30 tomorrow.\n\n{person.first_name}",
            f"{CONSULTANT.first_name}, can you cover my calls on Friday afternoon? Thanks! {person.first_name}",
            f"Hi all,\n\nThe monthly billing figures are in the shared drive.\n\n{person.name}",
        ])
        return self.message(INBOX, person, [CONSULTANT], self.rng.choice(
            ["Team meeting", "Friday cover", "Billing figures", "Quick question"]), text, date=date)

    def job_board_relays(self, date: datetime, person: Person | None = None) -> DemoMessage:
        """An application through a job board: from no-reply, the applicant in Reply-To, the CV attached."""
        person = person or self.rng.choice(CANDIDATES + STRANGERS[1:3])
        role = self.role_of(person)
        text = (f"New application via TalentBoard\n\nJob: {role.title} ({role.company})\nApplicant: "
                f"{person.name}\nEmail: {person.email}\n\nReply to this message to contact the applicant "
                f"directly.\n\nTalentBoard - the job board for professionals")
        return self.message(INBOX, JOB_BOARD, [CONSULTANT], f"New application: {role.title} - {person.name}",
                             text, date=date, reply_to=person, attachments=[self.cv(person)])

    def newsletter(self, date: datetime) -> DemoMessage:
        sender = self.rng.choice(NEWSLETTERS)
        topic = self.rng.choice(["Salary trends for the year ahead", "Five ways to shorten time-to-hire",
                                 "What candidates want from hybrid work", "The state of tech hiring"])
        domain = sender.email.split("@")[1]
        text = (f"{sender.name}\n\n{topic}\n\nThis week: the numbers behind the headlines, and what they "
                f"mean for your desk.\n\nUnsubscribe: https://{domain}/unsubscribe")
        return self.message(INBOX, sender, [CONSULTANT], f"{sender.name}: {topic}", text, date=date, headers={
            "List-Id": f"<weekly.{domain}>", "List-Unsubscribe": f"<https://{domain}/unsubscribe>",
            "Precedence": "bulk"})

    def out_of_office(self, date: datetime) -> DemoMessage:
        person = self.rng.choice([c for c in CONTACTS if c.email != SHARED_ADDRESS])
        back = (date + timedelta(days=self.rng.randint(3, 12))).strftime("%A %d %B")
        text = (f"Thank you for your email. I am out of the office until {back} with limited access to "
                f"email.\n\n{person.name}")
        return self.message(INBOX, person, [CONSULTANT], f"Automatic reply: {self.role_of(person).title}",
                            text, date=date, headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"})

    def stranger_writes(self, date: datetime) -> DemoMessage:
        person = self.rng.choice(STRANGERS)
        if person.company:
            text = (f"Hi {CONSULTANT.first_name},\n\nWould you be open to a 15-minute call about filling your "
                    f"pipeline with pre-qualified candidates?\n\n{person.name}\n{person.company}")
            subject = "Quick question about your candidate pipeline"
        else:
            text = (f"Hello,\n\nI'm interested in opportunities in your sector. Do you have anything "
                    f"suitable at the moment?\n\nKind regards,\n\n{person.name}")
            subject = "Looking for new opportunities"
        return self.message(INBOX, person, [CONSULTANT], subject, text, date=date)

    def sent_to_candidate(self, date: datetime, person: Person | None = None) -> DemoMessage:
        person = person or self.rng.choice(CANDIDATES)
        role = self.role_of(person)
        text = self.rng.choice([
            f"Hi {person.first_name},\n\nGreat speaking earlier. As promised, the job description for the "
            f"{role.title} role at {role.company} is attached.\n\n{SIGNATURE}",
            f"Hi {person.first_name},\n\nGood news: {role.company} would like to meet you. Are you free on "
            f"Thursday at 2pm?\n\n{SIGNATURE}",
            f"Hi {person.first_name},\n\nSome tips for tomorrow's interview: they value concrete examples, "
            f"so bring one or two projects you can talk through.\n\nGood luck!\n\n{SIGNATURE}",
        ])
        attachments = [self.job_description(role)] if "attached" in text else []
        return self.message(SENT, CONSULTANT, [person], f"{role.title} at {role.company}", text, date=date,
                            attachments=attachments, thread_with=person)

    def sent_shortlist(self, date: datetime, person: Person | None = None) -> DemoMessage:
        """A shortlist to a client with a candidate's CV, often with a colleague in copy."""
        person = person or self.rng.choice([c for c in CONTACTS if c.email != SHARED_ADDRESS])
        role = self.role_of(person)
        candidate = self.rng.choice([c for c in CANDIDATES if self.roles[c.email] == role] or CANDIDATES)
        text = (f"Hi {person.first_name},\n\nPlease find attached the CV of {candidate.name} for the "
                f"{role.title} role. {candidate.first_name} is available at one month's notice and is "
                f"looking for around {role.salary}.\n\n{SIGNATURE}")
        cc = [self.rng.choice(COLLEAGUES[:2])] if self.rng.random() < 0.5 else []
        return self.message(SENT, CONSULTANT, [person], f"Shortlist: {role.title} - {candidate.name}", text,
                            date=date, cc=cc, attachments=[self.cv(candidate)], thread_with=person)

    def sent_to_shared_address(self, date: datetime) -> DemoMessage:
        team = Person("Quayside Hiring", SHARED_ADDRESS, "Quayside Software")
        role = self.role_of(team)
        text = (f"Hi team,\n\nConfirming the interview slots for the {role.title} role; I've let the "
                f"candidates know.\n\n{SIGNATURE}")
        return self.message(SENT, CONSULTANT, [team], f"{role.title} interviews", text, date=date,
                            thread_with=team)

    def sent_to_colleague(self, date: datetime) -> DemoMessage:
        person = self.rng.choice(COLLEAGUES)
        text = f"Hi {person.first_name},\n\nYes, no problem, I'll take them.\n\n{CONSULTANT.first_name}"
        return self.message(SENT, CONSULTANT, [person], "Re: Friday cover", text, date=date)


_INBOX_MIX: list[tuple[Callable[[_Writer, datetime], DemoMessage], int]] = [
    (_Writer.candidate_sends_cv, 22), (_Writer.candidate_replies, 18), (_Writer.client_writes, 20),
    (_Writer.shared_address_writes, 2), (_Writer.colleague_writes, 8), (_Writer.job_board_relays, 8),
    (_Writer.newsletter, 8), (_Writer.out_of_office, 4), (_Writer.stranger_writes, 8),
]
_SENT_MIX: list[tuple[Callable[[_Writer, datetime], DemoMessage], int]] = [
    (_Writer.sent_to_candidate, 50), (_Writer.sent_shortlist, 30), (_Writer.sent_to_shared_address, 2),
    (_Writer.sent_to_colleague, 14),
]


_SHOWCASE: list[tuple[str, float, Callable[[_Writer, datetime], DemoMessage]]] = [
    (INBOX, 6, lambda w, d: w.candidate_sends_cv(d, CANDIDATES[0])),
    (INBOX, 5, lambda w, d: w.client_writes(d, CONTACTS[0], with_description=True)),
    (SENT, 5, lambda w, d: w.sent_shortlist(d, CONTACTS[0])),
    (INBOX, 4, _Writer.shared_address_writes),
    (SENT, 4, _Writer.sent_to_shared_address),
    (INBOX, 3, lambda w, d: w.job_board_relays(d, CANDIDATES[1])),
    (INBOX, 3, lambda w, d: w.candidate_sends_cv(d, CANDIDATES[2])),
    (INBOX, 2, _Writer.newsletter),
    (INBOX, 2, _Writer.out_of_office),
    (INBOX, 1, _Writer.colleague_writes),
    (INBOX, 1, _Writer.stranger_writes),
    (SENT, 1, lambda w, d: w.sent_to_candidate(d, CANDIDATES[0])),
]
"""One message of every kind in the last few days (folder, days before the end, kind), so the
first import, which reads only the newest mail, shows each of them."""


def build_mailbox(end: datetime, seed: int = DEFAULT_SEED, inbox: int = INBOX_MESSAGES,
                  sent: int = SENT_MESSAGES) -> list[DemoMessage]:
    """The whole mailbox, oldest first (append it in this order and UIDs follow the dates).

    Messages are written in date order across both folders, so a reply always
    comes after the message it answers.
    """
    writer = _Writer(seed, end)
    mixes = {INBOX: _INBOX_MIX, SENT: _SENT_MIX}
    slots: list[tuple[datetime, str, Callable[[_Writer, datetime], DemoMessage] | None]] = []
    for folder, count in ((INBOX, inbox), (SENT, sent)):
        showcased = sum(1 for item in _SHOWCASE if item[0] == folder)
        slots += [(writer.when(7, DAYS), folder, None) for _ in range(max(count - showcased, 0))]
    slots += [(writer.when(days, days + 0.5), folder, kind) for folder, days, kind in _SHOWCASE]
    messages = []
    for date, folder, kind in sorted(slots, key=lambda slot: slot[0]):
        if kind is None:
            kinds, weights = zip(*mixes[folder], strict=True)
            kind = writer.rng.choices(kinds, weights)[0]
        messages.append(kind(writer, date))
    return messages


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
