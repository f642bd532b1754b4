"""Fetching in batches bounded by count and by bytes, the next batch fetched while the caller works."""
from __future__ import annotations

import itertools

from devkit.builders import build_message
from rolsync.mail.imap import ImapSettings, MailboxSession, Security

_users = itertools.count(1)


def test_batches_hold_at_most_so_many_messages_and_bytes(dovecot):
    username, password = f"batches{next(_users)}", "correct horse battery staple"
    dovecot.add_user(username, password)
    small = [build_message(subject=f"Small {i}", text="x") for i in range(7)]
    big = build_message(subject="Big", text="y" * 300_000)
    messages = small[:3] + [big] + small[3:]
    dovecot.append_many(username, password, "INBOX", messages)
    settings = ImapSettings(host=dovecot.host, port=dovecot.ssl_port, security=Security.SSL, username=username,
                            password=password, ca_pem=dovecot.ca_pem)
    with MailboxSession(settings) as session:
        session.examine("INBOX")
        uids = session.uids_after(0)
        batches = list(session.fetch_batches(uids, batch_size=2, max_bytes=100_000))
    assert [len(batch) for batch in batches] == [2, 1, 1, 2, 2]  # the big message comes alone
    assert [m.raw for batch in batches for m in batch] == messages
    assert [m.uid for batch in batches for m in batch] == uids
