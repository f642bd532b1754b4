"""The CRM records, the mailbox settings and what the import has done."""
from __future__ import annotations

import enum
from datetime import datetime, timezone

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from rolsync.extensions import Model


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """A datetime from the database as an aware UTC one: SQLite hands back naive datetimes, all in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class Role(str, enum.Enum):
    ADMIN = "admin"
    USER = "user"


class RecordKind(str, enum.Enum):
    CONTACT = "contact"
    CANDIDATE = "candidate"


class Direction(str, enum.Enum):
    RECEIVED = "received"
    SENT = "sent"


class Outcome(str, enum.Enum):
    """What the import did with one message, as the import history shows it."""

    IMPORTED = "imported"
    SKIPPED = "skipped"
    WARNED = "warned"
    FAILED = "failed"


class WarningKind(str, enum.Enum):
    DUPLICATE_ADDRESS = "duplicate_address"
    NO_MATCH = "no_match"
    UNREADABLE_MESSAGE = "unreadable_message"
    IMPORT_FAILED = "import_failed"
    NO_SENT_FOLDER = "no_sent_folder"
    AUTH_FAILED = "auth_failed"
    UIDVALIDITY_UNSTABLE = "uidvalidity_unstable"
    CUSTOM_RULE = "custom_rule"
    MESSAGE_TOO_LARGE = "message_too_large"
    STALLED = "stalled"
    """A mailbox that stopped importing: no successful poll for three intervals, new mail left unread, or
    its OAuth refresh failing. Resolved by the scheduler's tick when the cause goes."""
    UNACCOUNTED = "unaccounted"
    """Messages on the server that rolsync has neither read nor left out for a known reason."""
    INTAKE = "intake"  # an application from an address no record has: the New people page


class WarningStatus(str, enum.Enum):
    OPEN = "open"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


class User(UserMixin, Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.USER.value)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Shown to admins on the Users page; set by the panel's sign-in.
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    mail_account: Mapped["MailAccount | None"] = relationship(back_populates="user", uselist=False)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active


class UserSession(Model):
    """A signed-in session of the panel, held on the server so that signing out ends it everywhere.

    The browser's cookie carries a random token; only its SHA-256 is stored,
    so reading this table does not give anyone a session.
    """

    __tablename__ = "user_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Visibility(str, enum.Enum):
    """Who sees the notes made from a mailbox."""

    EVERYONE = "everyone"
    PRIVATE = "private"
    """Only the mailbox's owner and admins."""


class CaptureLevel(str, enum.Enum):
    """How much of a message the import keeps, from most to least."""

    FULL = "full"
    """Subject, participants, date, the text and the documents."""
    SUBJECT = "subject"
    """Subject, participants and date: no text, no documents."""
    PARTICIPANTS = "participants"
    """Participants and date only."""


class AuthMethod(str, enum.Enum):
    """How rolsync signs in to a mailbox."""

    PASSWORD = "password"
    OAUTH2 = "oauth2"
    """XOAUTH2 with an access token from Google or Microsoft, renewed with a refresh token."""


class MailAccount(Model):
    """One user's IMAP mailbox settings; the password and OAuth tokens are only ever stored encrypted."""

    __tablename__ = "mail_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=993)
    security: Mapped[str] = mapped_column(String(16), default="ssl")
    username: Mapped[str] = mapped_column(String(320))
    auth_method: Mapped[str] = mapped_column(String(16), default=AuthMethod.PASSWORD.value,
                                             server_default=AuthMethod.PASSWORD.value)
    # None for an OAuth mailbox, which has tokens instead.
    password_encrypted: Mapped[str | None] = mapped_column(Text)
    # OAuth mailboxes: the provider ("google", "microsoft") and its tokens, Fernet-encrypted like the
    # password. The access token is kept too, so every worker reuses it until shortly before it expires.
    oauth_provider: Mapped[str | None] = mapped_column(String(32))
    oauth_refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    oauth_access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    oauth_access_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ca_pem: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    # Seconds between scheduled imports; None takes the deployment's default.
    poll_interval_seconds: Mapped[int | None] = mapped_column(Integer)
    # Paused accounts are not polled (e.g. after repeated authentication
    # failures, which would otherwise get the mailbox locked by its provider).
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    paused_reason: Mapped[str | None] = mapped_column(Text)
    auth_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Push (IMAP IDLE, rolsync/watcher.py) for this mailbox; admins switch it off per mailbox, or for all
    # with the "push" AppSetting. Without push (or a server without IDLE) the schedule alone imports it.
    push_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The end of the last import run that worked, and the code of the last failure (None after a success):
    # the stall alarms and the Mailboxes page read these, never the run history.
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    # Who sees the notes made from this mailbox (Visibility): everyone, or only its owner and admins.
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.EVERYONE.value,
                                            server_default=Visibility.EVERYONE.value)
    # The consultant's CaptureLevel; None takes the admin's default (rolsync.privacy).
    capture_level: Mapped[str | None] = mapped_column(String(16))
    # Mail the consultant keeps out: messages with this IMAP keyword, and this folder, are never imported.
    private_keyword: Mapped[str | None] = mapped_column(String(255))
    private_folder: Mapped[str | None] = mapped_column(String(512))

    user: Mapped[User] = relationship(back_populates="mail_account")
    folders: Mapped[list["FolderState"]] = relationship(back_populates="account", cascade="all, delete-orphan")

    @property
    def uses_oauth(self) -> bool:
        return self.auth_method == AuthMethod.OAUTH2.value

    @property
    def account_email(self) -> str:
        """The mailbox's own address: the login when it is one, else the user's."""
        return self.username if "@" in self.username else self.user.email


class AppSetting(Model):
    """A deployment-wide setting an admin changes in the panel (the environment holds the rest)."""

    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class OAuthClient(Model):
    """rolsync's app registration at Google or Microsoft, as an admin saved it in the panel.

    The environment's (ROLSYNC_<PROVIDER>_CLIENT_ID) wins over this row; the
    endpoints come only from the environment. The secret is stored encrypted
    like mailbox passwords and never shown back.
    """

    __tablename__ = "oauth_clients"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)  # "google", "microsoft"
    client_id: Mapped[str] = mapped_column(String(255))
    client_secret_encrypted: Mapped[str] = mapped_column(Text)
    # Microsoft only: the directory the app registration accepts (a tenant id or domain, or common...).
    tenant: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    updated_by: Mapped[User | None] = relationship()


class FolderState(Model):
    """How far the import has read one folder of one mailbox."""

    __tablename__ = "folder_states"
    __table_args__ = (UniqueConstraint("account_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id"))
    role: Mapped[str] = mapped_column(String(16))  # "inbox" or "sent"
    name: Mapped[str] = mapped_column(String(512))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    # Every UID up to last_uid has been committed (imported, skipped or warned).
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    uidnext: Mapped[int | None] = mapped_column(BigInteger)
    # The first run's cap: nothing older than this is ever pulled in later.
    floor_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    floor_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # UIDNEXT when the folder was last read to the end: a STATUS answering the
    # same UIDNEXT and UIDVALIDITY means there is nothing new to fetch.
    caught_up_uidnext: Mapped[int | None] = mapped_column(BigInteger)
    # Recent UIDVALIDITY changes, for the circuit breaker.
    uidvalidity_changes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    uidvalidity_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The server's STATUS at the last poll (MESSAGES; UIDNEXT is `uidnext`), and when that poll was.
    server_messages: Mapped[int | None] = mapped_column(BigInteger)
    polled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Since when a poll has seen UIDNEXT beyond what the import has read to the end (None: caught up).
    uidnext_pending_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Every message on the server at the last poll that changed something, counted by what rolsync
    # did with it (see rolsync/reconcile.py); taken again only when STATUS changes.
    reconciliation: Mapped[dict | None] = mapped_column(JSON)
    reconciled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    account: Mapped[MailAccount] = relationship(back_populates="folders")


company_relations = Table(
    "company_relations",
    Model.metadata,
    Column("company_id", ForeignKey("companies.id"), primary_key=True),
    Column("related_id", ForeignKey("companies.id"), primary_key=True),
)


class Company(Model):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)

    related: Mapped[list["Company"]] = relationship(
        secondary=company_relations,
        primaryjoin=id == company_relations.c.company_id,
        secondaryjoin=id == company_relations.c.related_id,
    )

    def relate(self, other: "Company") -> None:
        """Related companies are a symmetric link, as the seed describes it."""
        if other is self:
            return
        if other not in self.related:
            self.related.append(other)
        if self not in other.related:
            other.related.append(self)


class Contact(Model):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    company: Mapped[Company | None] = relationship()
    emails: Mapped[list["EmailAddress"]] = relationship(back_populates="contact", cascade="all, delete-orphan")

    kind = RecordKind.CONTACT


class Candidate(Model):
    __tablename__ = "candidates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    emails: Mapped[list["EmailAddress"]] = relationship(back_populates="candidate", cascade="all, delete-orphan")

    kind = RecordKind.CANDIDATE


class EmailAddress(Model):
    """One address of a contact or a candidate, stored normalised for lookups."""

    __tablename__ = "email_addresses"
    __table_args__ = (
        CheckConstraint("(contact_id IS NULL) <> (candidate_id IS NULL)", name="one_owner"),
        UniqueConstraint("address", "contact_id"),
        UniqueConstraint("address", "candidate_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(320), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id"), index=True)

    contact: Mapped[Contact | None] = relationship(back_populates="emails")
    candidate: Mapped[Candidate | None] = relationship(back_populates="emails")


class StoredFile(Model):
    """An attachment's bytes, kept once by SHA-256 in the document store."""

    __tablename__ = "stored_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Note(Model):
    """A message on a contact's or candidate's record."""

    __tablename__ = "notes"
    __table_args__ = (
        CheckConstraint("(contact_id IS NULL) <> (candidate_id IS NULL)", name="one_record"),
        # A record never holds two notes of one message.
        UniqueConstraint("contact_id", "message_key"),
        UniqueConstraint("candidate_id", "message_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # Message-ID, else a hash of the message: the same for every consultant.
    message_key: Mapped[str] = mapped_column(String(500))
    message_id: Mapped[str | None] = mapped_column(String(998))
    folder: Mapped[str] = mapped_column(String(512))
    direction: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    from_addr: Mapped[str] = mapped_column(Text, default="")
    to_addrs: Mapped[str] = mapped_column(Text, default="")
    cc_addrs: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    # The CaptureLevel the note was made at, so the page can say why it has no text.
    capture_level: Mapped[str] = mapped_column(String(16), default=CaptureLevel.FULL.value,
                                               server_default=CaptureLevel.FULL.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    contact: Mapped[Contact | None] = relationship()
    candidate: Mapped[Candidate | None] = relationship()
    user: Mapped[User] = relationship()
    documents: Mapped[list["Document"]] = relationship(back_populates="note", cascade="all, delete-orphan")

    @property
    def record(self) -> Contact | Candidate:
        record = self.contact or self.candidate
        if record is None:  # the table's check constraint rules this out
            raise LookupError(f"note {self.id} belongs to no record")
        return record


class Document(Model):
    """An attachment of a note, pointing at its stored bytes."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id"), index=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("stored_files.sha256"))
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)

    note: Mapped[Note] = relationship(back_populates="documents")


class ImportedMessage(Model):
    """The ledger: every message the import has decided on, once per user."""

    __tablename__ = "imported_messages"
    __table_args__ = (UniqueConstraint("user_id", "dedupe_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(500))
    message_key: Mapped[str] = mapped_column(String(500))
    message_id: Mapped[str | None] = mapped_column(String(998))
    folder: Mapped[str] = mapped_column(String(512))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str] = mapped_column(Text, default="")
    # The recipients (To and Cc), so the history finds a message by any address on it.
    to_addrs: Mapped[str] = mapped_column(Text, default="", server_default="")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    # Which rule and rule-set version decided, so the history can say why.
    rule: Mapped[str | None] = mapped_column(String(128))
    ruleset_version: Mapped[int | None] = mapped_column(Integer)
    notes_created: Mapped[int] = mapped_column(Integer, default=0)
    # The rest of the story for the history: dropped attachments and why.
    details: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Its owner removed the note it made: the message is not imported again (rolsync.privacy.remove_note).
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# The dashboard's charts and the history page read the ledger by date.
Index("ix_imported_messages_created_at", ImportedMessage.created_at)


class PendingMessage(Model):
    """A message from an address no record has yet, kept to be imported onto the record added later.

    Only kept when the no-match rule says "keep and link it later".
    """

    __tablename__ = "pending_messages"
    __table_args__ = (UniqueConstraint("user_id", "address", "message_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    address: Mapped[str] = mapped_column(String(320), index=True)
    message_key: Mapped[str] = mapped_column(String(500))
    raw_sha256: Mapped[str] = mapped_column(ForeignKey("stored_files.sha256"))
    folder: Mapped[str] = mapped_column(String(512))
    direction: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    linked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ImportWarning(Model):
    """Something the user has to sort out, e.g. an address shared by two records."""

    __tablename__ = "import_warnings"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=WarningStatus.OPEN.value, index=True)
    message_key: Mapped[str | None] = mapped_column(String(500))
    message_id: Mapped[str | None] = mapped_column(String(998))
    folder: Mapped[str | None] = mapped_column(String(512))
    subject: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    address: Mapped[str | None] = mapped_column(String(320))
    # [{"kind": "contact", "id": 3, "name": "...", "email": "..."}]
    records: Mapped[list] = mapped_column(JSON, default=list)
    detail: Mapped[str] = mapped_column(Text, default="")
    snippet: Mapped[str] = mapped_column(Text, default="")
    # The raw message in the document store, so resolving it needs no IMAP.
    raw_sha256: Mapped[str | None] = mapped_column(ForeignKey("stored_files.sha256"))
    rule: Mapped[str | None] = mapped_column(String(128))
    # An intake item's applicant name and attachments ({"name", "attachments": [{"filename", ...}]}).
    details: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Who closed the warning, when and how (attached, attached_all, retried,
    # dismissed): an audit trail, kept as text like RuleSetVersion.author.
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(320))
    resolution: Mapped[str | None] = mapped_column(String(32))

    user: Mapped[User] = relationship()


class PrivacyPolicy(Model):
    """The admins' privacy settings (one row): the default capture level, and whether it is a ceiling."""

    __tablename__ = "privacy_policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    capture_default: Mapped[str] = mapped_column(String(16), default=CaptureLevel.FULL.value,
                                                 server_default=CaptureLevel.FULL.value)
    # Locked: a consultant may choose the default or less, never more.
    capture_locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Imported notes and documents older than this many months are deleted by a daily job; None keeps them.
    retention_months: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str | None] = mapped_column(String(320))


class SuppressedAddress(Model):
    """An erased person's address, kept only as a keyed hash so no import or load brings them back."""

    __tablename__ = "suppressed_addresses"

    # HMAC-SHA256 of the normalised address (rolsync.erasure.address_digest), hex.
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Erasure(Model):
    """The audit of one erasure: who and when, and how many of each kind of row went; nothing about the person."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    erased_by: Mapped[str] = mapped_column(String(320))
    counts: Mapped[dict] = mapped_column(JSON, default=dict)


class ImportRun(Model):
    """One import run of one mailbox, for the history and the panel."""

    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class RuleSetVersion(Model):
    """A saved version of the import rules; exactly one is active."""

    __tablename__ = "ruleset_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    definition: Mapped[dict] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    author: Mapped[str] = mapped_column(String(320), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
