"""Real-world odd mail that once came out wrong, the limits on what one message may cost, and the obsolete syntax."""
from __future__ import annotations

import base64
import time

import pytest

from rolsync.mail.parse import ParseLimits, parse_message, parse_or_failure
from rolsync.mail.parse.limits import OverBudget
from tests.mail.builders import build_message, build_tnef, minimal_pdf, raw_message
from tests.mail.test_parse import BASIC, mixed_message, multipart

BOTH = pytest.mark.parametrize("careful", [False, True], ids=["fast", "careful"])


@BOTH
def test_an_unquoted_encoded_word_file_name_is_decoded(careful):
    word = "=?utf-8?B?" + base64.b64encode("Lebenslauf Müller.pdf".encode()).decode() + "?="
    raw = mixed_message(
        ([b"Content-Type: text/plain"], b"CV attached"),
        ([f"Content-Type: application/pdf; name={word}".encode(), b"Content-Transfer-Encoding: base64",
          f"Content-Disposition: attachment; filename={word}".encode()], base64.encodebytes(minimal_pdf())))
    parsed = parse_message(raw, careful=careful)
    assert [a.filename for a in parsed.attachments] == ["Lebenslauf Müller.pdf"]


@BOTH
def test_an_unquoted_file_name_with_spaces_is_kept_whole(careful):
    raw = mixed_message(
        ([b"Content-Type: text/plain; charset=ISO-8859-1"], b"This is the first part."),
        ([b"Content-Type: text/plain; name=This is a test.txt", b"Content-Transfer-Encoding: 7bit",
          b"Content-Disposition: attachment;\r\n\tfilename=This is a test.txt"], b"Hi there."))
    parsed = parse_message(raw, careful=careful)
    assert parsed.text == "This is the first part."
    assert [(a.filename, a.data) for a in parsed.attachments] == [("This is a test.txt", b"Hi there.")]


@BOTH
def test_an_empty_plain_part_of_a_multipart_never_closed_does_not_hide_the_html(careful):
    body = multipart("alternative", ([b"Content-Type: text/plain; charset=utf-8"], b""),
                     ([b"Content-Type: text/html; charset=utf-8"], b"<p>Dear Jo, my <b>CV</b> is attached.</p>"))
    body = body[: body.rindex(b"--BOUNDARY--")]  # the closing boundary never comes
    raw = raw_message(BASIC + [("Content-Type", 'multipart/alternative; boundary="BOUNDARY"')], body)
    assert parse_message(raw, careful=careful).text == "Dear Jo, my CV is attached."


@BOTH
def test_a_text_enriched_alternative_is_body_not_a_document(careful):
    raw = mixed_message(
        ([b"Content-Type: text/plain"], b"Thanks for the interview."),
        ([b"Content-Type: text/enriched"], b"<bold>Thanks</bold> for the interview."),
        subtype="alternative")
    parsed = parse_message(raw, careful=careful)
    assert (parsed.text, parsed.attachments) == ("Thanks for the interview.", [])
    enriched_only = mixed_message(([b"Content-Type: text/enriched"], b"<bold>Thanks</bold> for\r\nthe interview."),
                                  subtype="alternative")
    assert parse_message(enriched_only, careful=careful).text == "Thanks for the interview."


def test_obsolete_header_syntax_with_space_before_the_colon_is_read():
    raw = (b"From : Carol <carol@client.example>\r\nTo : jo@agency.example\r\nSubject : x\r\n"
           b"Date : Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nHello\r\n")
    parsed = parse_message(raw)
    assert (parsed.from_addr, parsed.to, parsed.subject, parsed.text) == (
        "carol@client.example", ["jo@agency.example"], "x", "Hello")
    assert parsed.content_hash == __import__("hashlib").sha256(raw).hexdigest()  # of the bytes as received


# ----------------------------------------------------------------- cost

def _cpu(function) -> float:
    start = time.process_time()
    function()
    return time.process_time() - start


def test_a_body_of_repeated_base64_headers_parses_in_linear_time():
    """The body-start search once rescanned to the end for each such line: 500 s at 4 MB."""
    line = b"Content-Transfer-Encoding: base64\r\n"
    raw = raw_message(BASIC, line * (4 * 1024 * 1024 // len(line)))
    parsed = parse_message(raw)
    assert parsed.text.startswith("Content-Transfer-Encoding: base64")
    # Linear: 4x the input costs about 4x the time, not 16x (a ratio, so the machine's load does not matter).
    small = raw_message(BASIC, line * (1024 * 1024 // len(line)))
    assert _cpu(lambda: parse_message(raw)) < 8 * max(_cpu(lambda: parse_message(small)), 0.01)


def test_forty_thousand_recipients_are_deduplicated_in_linear_time():
    to = ", ".join(f"c{i}@client.example" for i in range(40_000)) + ", c1@client.example"
    raw = raw_message([("From", "a@b.example"), ("To", to), ("Subject", "all")], b"x")
    parsed = parse_message(raw, limits=ParseLimits(header_bytes=4 * 1024 * 1024))
    assert len(parsed.to) == 40_000 and parsed.to[1] == "c1@client.example"
    semicolons = raw.replace(b", ", b"; ")  # not the plain form: read one address at a time
    assert parse_message(semicolons, limits=ParseLimits(header_bytes=4 * 1024 * 1024)).to == parsed.to


def test_a_subject_over_the_limit_is_kept_cut_with_its_size_noted():
    raw = raw_message([("From", "a@b.example"), ("Subject", "x" * 50_000)], b"Hello")
    parsed = parse_message(raw, limits=ParseLimits(subject_chars=100))
    assert parsed.subject == "x" * 100 + "…"
    assert "The subject was 50,000 characters long; it is kept cut to 100." in parsed.text
    assert parsed.text.startswith("Hello")


def test_a_header_block_over_the_limit_is_cut_and_the_body_still_read():
    raw = raw_message([("From", "carol@client.example"), ("Subject", "big")]
                      + [("X-Filler", "y" * 1000)] * 2000, b"Hello")
    parsed = parse_message(raw, limits=ParseLimits(header_bytes=64 * 1024))
    assert (parsed.from_addr, parsed.subject) == ("carol@client.example", "big")
    assert parsed.text.startswith("Hello")
    assert "The message's header was 2,0" in parsed.text and "only the first 6" in parsed.text


@BOTH
def test_mime_parts_over_the_limit_are_dropped_with_a_line_in_the_note(careful):
    parts = [([b"Content-Type: text/plain"], b"Hello")] + [
        ([b"Content-Type: application/pdf", f'Content-Disposition: attachment; filename="f{i}.pdf"'.encode()],
         b"%PDF-1.4 " + str(i).encode()) for i in range(300)]
    parsed = parse_message(mixed_message(*parts), limits=ParseLimits(mime_parts=50), careful=careful)
    assert len(parsed.attachments) == 48  # the multipart and its text are two of the 50
    assert "This message has more parts than rolsync reads (50); 252 more were not read." in parsed.text


def test_tnef_attachments_count_against_the_attachment_limit():
    tnef = build_tnef([(f"file{i}.txt", "text/plain", b"x") for i in range(30)])
    raw = build_message(attachments=[("winmail.dat", "application/ms-tnef", tnef)])
    parsed = parse_message(raw, limits=ParseLimits(attachments=10))
    assert [a.filename for a in parsed.attachments] == [f"file{i}.txt" for i in range(10)]
    assert "This message has more attachments than rolsync keeps (10); 20 more were dropped." in parsed.text


def test_a_message_over_its_cpu_budget_is_an_unreadable_message_with_the_reason():
    raw = build_message(attachments=[(f"f{i}.pdf", "application/pdf", minimal_pdf()) for i in range(50)])
    result = parse_or_failure(raw, limits=ParseLimits(parse_seconds=0))
    assert isinstance(result, OverBudget)
    assert "more than 0 seconds of processor time" in result.reason


def test_a_base_exception_during_parsing_is_never_swallowed(monkeypatch):
    """RQ's job timeout is a BaseException on the robust branch: it must stop the job, not become a warning."""
    import rolsync.mail.parse.mime as mime

    class JobTimeout(BaseException):
        pass

    def timeout(self):
        raise JobTimeout()

    monkeypatch.setattr(mime.Budget, "check", timeout)
    with pytest.raises(JobTimeout):
        parse_or_failure(build_message())


def test_limits_come_from_the_config():
    limits = ParseLimits.from_config({"LIMIT_MIME_PARTS": "7", "LIMIT_ATTACHMENTS": 3, "LIMIT_SUBJECT_CHARS": 9,
                                      "LIMIT_HEADER_BYTES": 1000, "LIMIT_PARSE_SECONDS": 2})
    assert limits == ParseLimits(mime_parts=7, attachments=3, subject_chars=9, header_bytes=1000, parse_seconds=2)
    assert ParseLimits.from_config({}) == ParseLimits()
