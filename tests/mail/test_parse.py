"""Tests for rolsync.mail.parse: real-world and broken mail turned into ParsedMessage."""

import base64
import email
import hashlib
from datetime import datetime, timezone
from email import policy

import pytest

from rolsync.mail.parse import Attachment, MessageUnreadable, normalise_address, parse_message, snippet
from devkit.builders import (build_message, build_tnef, minimal_docx, minimal_pdf, raw_message,
                                 tiny_png)

BASIC = [("From", "jane@example.org"), ("To", "consultant@acme.com"), ("Subject", "Test"),
         ("Message-ID", "<basic@example.org>"), ("MIME-Version", "1.0")]


def multipart(subtype, *parts, boundary="BOUNDARY"):
    """The body of a multipart from (headers, body) parts, written by hand so it can be broken."""
    out = b""
    for headers, body in parts:
        out += b"--" + boundary.encode() + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n"


def mixed_message(*parts, subtype="mixed", boundary="BOUNDARY"):
    return raw_message(BASIC + [("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')],
                       multipart(subtype, *parts, boundary=boundary))


# ----------------------------------------------------------------- addresses

@pytest.mark.parametrize("value, expected", [
    ("jane@example.org", "jane@example.org"),
    ("  Jane@Example.ORG  ", "jane@example.org"),
    ("Jane Doe <Jane.Doe@Example.org>", "jane.doe@example.org"),
    ('"Doe, Jane" <JANE@example.org>', "jane@example.org"),
    ("<jane@example.org>", "jane@example.org"),
    ("'jane@example.org' <Jane@Example.org>", "jane@example.org"),
    ("mailto:Jane@Example.org", "jane@example.org"),
    ("=?utf-8?q?J=C3=BCrgen?= <juergen@example.de>", "juergen@example.de"),
    ("Doe, Jane <jane@example.org>", "jane@example.org"),
    (None, None),
    ("", None),
    ("   ", None),
    ("Jane Doe", None),
    ("undisclosed-recipients:;", None),
    ("@example.org", None),
    ("jane@", None),
])
def test_normalise_address(value, expected):
    assert normalise_address(value) == expected


def test_recipients_are_normalised_deduplicated_and_in_order():
    raw = build_message(
        to='"Smith, John" <John.Smith@Client.COM>,  bob@client.com , JOHN.SMITH@client.com',
        cc="Team: Ann <ann@client.com>, bob@client.com;, Carl <carl@client.com>",
        bcc="undisclosed-recipients:;",
    )
    parsed = parse_message(raw)
    assert parsed.to == ["john.smith@client.com", "bob@client.com"]
    assert parsed.cc == ["ann@client.com", "bob@client.com", "carl@client.com"]
    assert parsed.bcc == []


def test_from_address_and_display_name():
    parsed = parse_message(build_message(from_="=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <J.Mueller@Example.DE>"))
    assert parsed.from_addr == "j.mueller@example.de"
    assert parsed.from_name == "Jürgen Müller"


def test_reply_to_is_parsed():
    raw = build_message(from_="Indeed <noreply@indeed.com>",
                        reply_to="Jane Candidate <Jane.Candidate@Mail.example>, jane.candidate@mail.example")
    parsed = parse_message(raw)
    assert parsed.from_addr == "noreply@indeed.com"
    assert parsed.reply_to == ["jane.candidate@mail.example"]


def test_missing_address_headers_give_empty_values():
    parsed = parse_message(raw_message([("Subject", "no addresses"), ("Date", "Mon, 03 Jun 2024 10:00:00 +0000")]))
    assert (parsed.from_addr, parsed.from_name) == (None, "")
    assert parsed.to == parsed.cc == parsed.bcc == parsed.reply_to == []


def test_semicolon_separated_recipients_are_all_kept():
    # Outlook users type ";" between addresses; the strict parser stops at the first one.
    parsed = parse_message(raw_message(BASIC[:1] + [("To", "ann@client.com; Bob <bob@client.com>")]))
    assert parsed.to == ["ann@client.com", "bob@client.com"]
    assert parsed.defects


@pytest.mark.parametrize("value", ['bob@client.com, <', '"Ann" <ann@client.com>, bob@client.com, "x" <"'])
def test_address_header_that_breaks_the_stdlib_parser(value):
    # With policy.default on CPython 3.11, merely reading msg["cc"] here raises IndexError.
    raw = raw_message([("From", "jane@example.org"), ("Cc", value), ("Subject", "x")])
    parsed = parse_message(raw)
    assert "bob@client.com" in parsed.cc
    assert any("Cc header could not be parsed" in d for d in parsed.defects)


# ----------------------------------------------------------------- headers

@pytest.mark.parametrize("encoded, expected", [
    ("=?utf-8?q?=E5=B1=A5=E6=AD=B4=E6=9B=B8=E3=81=AE=E9=80=81=E4=BB=98?=", "履歴書の送付"),
    ("=?UTF-8?B?QmV3ZXJidW5nIGFscyBFbnR3aWNrbGVyIOKAkyBKw7xyZ2VuIE3DvGxsZXI=?=",
     "Bewerbung als Entwickler – Jürgen Müller"),
    ("=?iso-8859-1?q?Gr=FC=DFe_aus_K=F6ln?=", "Grüße aus Köln"),
    ("Re: =?utf-8?q?Vorstellungsgespr=C3=A4ch?=\r\n =?utf-8?q?_am_Montag?=", "Re: Vorstellungsgespräch am Montag"),
    ("=?iso-2022-jp?b?" + base64.b64encode("履歴書".encode("iso-2022-jp")).decode() + "?=", "履歴書"),
])
def test_rfc2047_subject_is_decoded(encoded, expected):
    parsed = parse_message(raw_message(BASIC[:2] + [("Subject", encoded)]))
    assert parsed.subject == expected


def test_subject_whitespace_is_collapsed_and_missing_subject_is_empty():
    assert parse_message(raw_message(BASIC[:2] + [("Subject", "  Lots\t of \r\n   space  ")])).subject == \
        "Lots of space"
    assert parse_message(raw_message(BASIC[:2])).subject == ""


@pytest.mark.parametrize("raw_subject, expected_subject, raw_from, expected_name", [
    (b"Bewerbung J\xfcrgen", "Bewerbung Jürgen", b"J\xfcrgen M\xfcller <j@example.de>", "Jürgen Müller"),
    (b"Bewerbung J\xc3\xbcrgen", "Bewerbung Jürgen", b"J\xc3\xbcrgen M\xc3\xbcller <j@example.de>", "Jürgen Müller"),
])
def test_raw_8bit_headers_are_decoded(raw_subject, expected_subject, raw_from, expected_name):
    raw = raw_message([("From", raw_from), ("To", "consultant@acme.com"), ("Subject", raw_subject)])
    parsed = parse_message(raw)
    assert parsed.subject == expected_subject
    assert (parsed.from_name, parsed.from_addr) == (expected_name, "j@example.de")


@pytest.mark.parametrize("header, expected", [
    ("<abc.123@mail.example.org>", "abc.123@mail.example.org"),
    ("  <abc.123@mail.example.org>  ", "abc.123@mail.example.org"),
    ("abc.123@mail.example.org", "abc.123@mail.example.org"),
    ("<abc.123@mail.example.org> (added by relay)", "abc.123@mail.example.org"),
    ("   ", None),
])
def test_message_id(header, expected):
    assert parse_message(raw_message(BASIC[:3] + [("Message-ID", header)])).message_id == expected


def test_missing_message_id_and_content_hash():
    raw = build_message(message_id=None)
    parsed = parse_message(raw)
    assert parsed.message_id is None
    assert parsed.content_hash == hashlib.sha256(raw).hexdigest()
    assert parse_message(raw).content_hash == parsed.content_hash
    assert parse_message(raw + b"\r\n").content_hash != parsed.content_hash
    assert parsed.size == len(raw)


@pytest.mark.parametrize("header, expected", [
    ("Mon, 03 Jun 2024 10:00:00 +0200", datetime(2024, 6, 3, 8, 0, tzinfo=timezone.utc)),
    ("3 Jun 2024 10:00:00 -0500", datetime(2024, 6, 3, 15, 0, tzinfo=timezone.utc)),
    ("Mon, 03 Jun 2024 10:00:00 -0000", datetime(2024, 6, 3, 10, 0, tzinfo=timezone.utc)),
    ("Mon, 03 Jun 2024 10:00:00 GMT", datetime(2024, 6, 3, 10, 0, tzinfo=timezone.utc)),
    ("2024-06-03T10:00:00+02:00", datetime(2024, 6, 3, 8, 0, tzinfo=timezone.utc)),
    ("next Tuesday", None),
    ("Mon, 99 Foo 2024 99:99:99 +9999", None),
    ("", None),
])
def test_date_is_utc_or_none(header, expected):
    parsed = parse_message(raw_message(BASIC + [("Date", header)]))
    assert parsed.date == expected
    if parsed.date is not None:
        assert parsed.date.utcoffset().total_seconds() == 0


def test_missing_date_is_none():
    assert parse_message(build_message(date=None)).date is None


def test_rule_headers_are_exposed_lower_cased():
    raw = build_message(headers={
        "Auto-Submitted": "auto-replied",
        "Precedence": "bulk",
        "List-Id": "Jobs <jobs.lists.example.org>",
        "List-Unsubscribe": "<mailto:leave@lists.example.org>",
        "X-Auto-Response-Suppress": "All",
        "X-Autoreply": "yes",
        "Return-Path": "<bounce@example.org>",
        "X-Unrelated": "not exposed",
    })
    headers = parse_message(raw).headers
    assert headers["auto-submitted"] == "auto-replied"
    assert headers["precedence"] == "bulk"
    assert headers["list-id"] == "Jobs <jobs.lists.example.org>"
    assert headers["list-unsubscribe"] == "<mailto:leave@lists.example.org>"
    assert headers["x-auto-response-suppress"] == "All"
    assert headers["x-autoreply"] == "yes"
    assert headers["return-path"] == "<bounce@example.org>"
    assert "x-unrelated" not in headers


# ----------------------------------------------------------------- text

def test_plain_text_is_preferred_over_html():
    raw = build_message(text="Plain version\r\nsecond line   \r\n", html="<p>HTML <b>version</b></p>")
    parsed = parse_message(raw)
    assert parsed.text == "Plain version\nsecond line"
    assert parsed.attachments == []


def test_plain_text_is_preferred_even_when_html_comes_first():
    raw = mixed_message(
        ([b"Content-Type: text/html; charset=utf-8"], b"<p>HTML version</p>"),
        ([b"Content-Type: text/plain; charset=utf-8"], b"Plain version"),
        subtype="alternative")
    assert parse_message(raw).text == "Plain version"


def test_html_only_becomes_readable_text():
    html = """<html><head><title>Mailing title</title>
    <style>p { color: red; } .secret-css {}</style>
    <script>var tracking = "secret-js";</script></head>
    <body><p>Dear <b>J&uuml;rgen</b>,</p>
    <p>please see <a href="https://jobs.example.com/42">the job offer</a>
    or write to <a href="mailto:hr@acme.com">hr@acme.com</a>.</p>
    <table><tr><td>Salary</td><td>60k</td></tr><tr><td>Start</td><td>July</td></tr></table>
    <ol><li>first</li><li>second</li></ol>
    <p>1. not a list - really</p>
    <a href="https://acme.com"><img src="cid:logo" alt="ACME"></a>
    </body></html>"""
    parsed = parse_message(build_message(text=None, html=html))
    text = parsed.text
    assert "Dear Jürgen," in text
    assert "the job offer (https://jobs.example.com/42)" in text
    assert "hr@acme.com" in text and "mailto:" not in text
    assert "Salary 60k" in text and "Start July" in text
    assert "1. not a list - really" in text
    for leftover in ("<", ">", "secret-css", "secret-js", "color: red", "Mailing title", "**", "\\"):
        assert leftover not in text
    assert not any(line != line.rstrip() for line in text.split("\n"))
    assert "\r" not in text


def test_html_part_without_charset_uses_meta_charset():
    raw = raw_message(BASIC + [("Content-Type", "text/html")],
                      '<html><head><meta charset="koi8-r"></head><body>Привет</body></html>'.encode("koi8-r"))
    assert parse_message(raw).text == "Привет"


@pytest.mark.parametrize("charset, text", [
    ("iso-8859-1", "Grüße aus Köln, Jürgen"),
    ("windows-1252", "„Smart quotes“ – and € too"),
    ("koi8-r", "Здравствуйте, резюме во вложении"),
    ("shift_jis", "履歴書を添付いたします"),
    ("iso-8859-15", "Prix: 100 €"),
])
def test_text_charsets(charset, text):
    raw = raw_message(BASIC + [("Content-Type", f'text/plain; charset="{charset}"'),
                               ("Content-Transfer-Encoding", "8bit")], text.encode(charset))
    assert parse_message(raw).text == text


def test_latin1_label_with_windows_1252_bytes():
    # Outlook labels cp1252 text iso-8859-1; decoding as latin-1 would turn the quotes into C1 controls.
    raw = raw_message(BASIC + [("Content-Type", "text/plain; charset=iso-8859-1")], "“Hi” – Jürgen".encode("cp1252"))
    assert parse_message(raw).text == "“Hi” – Jürgen"


def test_quoted_printable_and_base64_text():
    qp = raw_message(BASIC + [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Transfer-Encoding", "quoted-printable")],
                     b"Gr=C3=BC=C3=9Fe, J=C3=BCrgen=\r\n und mehr")
    assert parse_message(qp).text == "Grüße, Jürgen und mehr"
    b64 = raw_message(BASIC + [("Content-Type", "text/plain; charset=utf-8"),
                               ("Content-Transfer-Encoding", "base64")],
                      base64.encodebytes("Grüße, Jürgen".encode()).replace(b"\n", b"\r\n"))
    assert parse_message(b64).text == "Grüße, Jürgen"


@pytest.mark.parametrize("body, expected", [
    ("Grüße, Jürgen".encode("utf-8"), "Grüße, Jürgen"),
    ("Grüße, Jürgen".encode("latin-1"), "Grüße, Jürgen"),
])
def test_unknown_charset(body, expected):
    raw = raw_message(BASIC + [("Content-Type", 'text/plain; charset="x-unknown"'),
                               ("Content-Transfer-Encoding", "8bit")], body)
    # Premise: get_content() gives up on this part.
    part = email.message_from_bytes(raw, policy=policy.default)
    with pytest.raises(LookupError):
        part.get_content()
    parsed = parse_message(raw)
    assert parsed.text == expected
    assert any("unknown charset 'x-unknown'" in d for d in parsed.defects)


@pytest.mark.parametrize("body, expected", [
    ("Grüße".encode("utf-8"), "Grüße"),
    ("Grüße".encode("latin-1"), "Grüße"),
    (b"plain ascii", "plain ascii"),
])
def test_text_part_without_charset(body, expected):
    raw = raw_message(BASIC + [("Content-Type", "text/plain"), ("Content-Transfer-Encoding", "8bit")], body)
    assert parse_message(raw).text == expected


def test_message_without_content_type_is_text():
    parsed = parse_message(raw_message(BASIC, b"Hi there\r\n\r\n\r\n"))
    assert parsed.text == "Hi there"


def test_line_endings_and_trailing_whitespace_are_normalised():
    raw = raw_message(BASIC + [("Content-Type", "text/plain; charset=utf-8")],
                      b"\r\n\r\nline one  \r\nline two\t\rline three\r\n\r\n   \r\n")
    assert parse_message(raw).text == "line one\nline two\nline three"


def test_nul_characters_are_removed():
    raw = raw_message(BASIC + [("Content-Type", "text/plain; charset=utf-8")], b"a\x00b")
    assert parse_message(raw).text == "ab"


def test_text_parts_around_an_inline_attachment_are_joined():
    # iOS / Apple Mail: the text continues after an attachment placed inline.
    raw = mixed_message(
        ([b"Content-Type: text/plain; charset=utf-8"], b"Hi, my CV:"),
        ([b"Content-Type: application/pdf; name=cv.pdf", b"Content-Disposition: inline; filename=cv.pdf",
          b"Content-Transfer-Encoding: base64"], base64.encodebytes(minimal_pdf())),
        ([b"Content-Type: text/plain; charset=utf-8"], b"Sent from my iPhone"))
    parsed = parse_message(raw)
    assert parsed.text == "Hi, my CV:\n\nSent from my iPhone"
    assert [a.filename for a in parsed.attachments] == ["cv.pdf"]
    assert parsed.attachments[0].inline


def test_attachment_inside_the_html_alternative_is_found():
    # iOS Mail puts the files in the HTML branch only: alternative[plain, mixed[html, pdf, html]].
    inner = multipart("mixed",
                      ([b"Content-Type: text/html"], b"<p>Hi</p>"),
                      ([b"Content-Type: application/pdf", b"Content-Disposition: inline; filename=cv.pdf"],
                       b"%PDF-1.4 tiny"),
                      ([b"Content-Type: text/html"], b"<p>Bye</p>"), boundary="INNER")
    raw = mixed_message(([b"Content-Type: text/plain"], b"Hi\r\n\r\nBye"),
                        ([b'Content-Type: multipart/mixed; boundary="INNER"'], inner), subtype="alternative")
    parsed = parse_message(raw)
    assert parsed.text == "Hi\n\nBye"
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [("cv.pdf", "application/pdf")]


def test_snippet():
    assert snippet("Hello\n\n  world") == "Hello world"
    long_text = "word " * 100
    short = snippet(long_text, 50)
    assert len(short) <= 50 and short.endswith("…") and "  " not in short
    assert snippet("") == ""


# ----------------------------------------------------------------- attachments

def test_rfc2231_filename():
    raw = mixed_message(([b"Content-Type: text/plain"], b"CV attached"),
                        ([b"Content-Type: application/pdf",
                          b"Content-Disposition: attachment; filename*=utf-8''Lebenslauf%20J%C3%BCrgen.pdf",
                          b"Content-Transfer-Encoding: base64"], base64.encodebytes(minimal_pdf())))
    [attachment] = parse_message(raw).attachments
    assert attachment.filename == "Lebenslauf Jürgen.pdf"
    assert attachment.content_type == "application/pdf"
    assert attachment.sniffed_type == "application/pdf"
    assert attachment.data == minimal_pdf()
    assert attachment.size == len(minimal_pdf())
    assert attachment.sha256 == hashlib.sha256(minimal_pdf()).hexdigest()
    assert not attachment.inline and not attachment.is_image


def test_rfc2231_continuations_and_rfc2047_filenames():
    raw = mixed_message(
        ([b"Content-Type: text/plain"], b"files"),
        ([b"Content-Type: application/pdf",
          b"Content-Disposition: attachment; filename*0*=utf-8''Zeugnis%20; filename*1*=J%C3%BCrgen.pdf"], b"%PDF-1.4"),
        ([b'Content-Type: application/pdf; name="=?utf-8?b?TGViZW5zbGF1ZiBKw7xyZ2VuLnBkZg==?="',
          b'Content-Disposition: attachment; filename="=?utf-8?b?TGViZW5zbGF1ZiBKw7xyZ2VuLnBkZg==?="'], b"%PDF-1.4"),
        ([b'Content-Type: application/msword; name="=?iso-8859-1?q?Anschreiben_M=FCller.doc?="'], b"doc"),
        ([b'Content-Type: application/pdf', b'Content-Disposition: attachment; filename="Zertifikat K\xf6ln.pdf"'],
         b"%PDF-1.4"))
    names = [a.filename for a in parse_message(raw).attachments]
    assert names == ["Zeugnis Jürgen.pdf", "Lebenslauf Jürgen.pdf", "Anschreiben Müller.doc", "Zertifikat Köln.pdf"]


@pytest.mark.parametrize("declared, expected", [
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\jane\\Documents\\CV.pdf", "CV.pdf"),
    ("cv\x07\x1b.pdf", "cv.pdf"),
    ("evil\u202egnp.exe", "evilgnp.exe"),
    ("  spaced   out .pdf ", "spaced out .pdf"),
])
def test_filenames_are_sanitised(declared, expected):
    raw = build_message(attachments=[(declared, "application/octet-stream", b"data")])
    assert parse_message(raw).attachments[0].filename == expected


def test_nameless_attachments_get_a_fallback_name():
    raw = mixed_message(([b"Content-Type: text/plain"], b"files"),
                        ([b"Content-Type: application/octet-stream", b"Content-Disposition: attachment"], b"\x00\x01"),
                        ([b"Content-Type: image/png", b"Content-Transfer-Encoding: base64"],
                         base64.encodebytes(tiny_png())),
                        ([b"Content-Type: application/octet-stream"], minimal_pdf()))
    names = [a.filename for a in parse_message(raw).attachments]
    assert names == ["attachment-1.bin", "attachment-2.png", "attachment-3.pdf"]


def test_image_declared_octet_stream_is_sniffed():
    raw = build_message(attachments=[("photo", "application/octet-stream", tiny_png())])
    [attachment] = parse_message(raw).attachments
    assert attachment.content_type == "application/octet-stream"
    assert attachment.sniffed_type == "image/png"
    assert attachment.is_image


def test_is_image_is_declared_or_sniffed():
    # The contract: an image "by declared type or by content". A PDF declared image/png is an image
    # (declared); a PDF declared as a PDF is not.
    raw = build_message(attachments=[("cv.png", "image/png", minimal_pdf()), ("cv.pdf", "application/pdf", minimal_pdf()),
                                     ("cv.docx", "application/octet-stream", minimal_docx())])
    mislabelled, pdf, docx = parse_message(raw).attachments
    assert mislabelled.sniffed_type == "application/pdf" and mislabelled.is_image
    assert pdf.sniffed_type == "application/pdf" and not pdf.is_image
    assert docx.sniffed_type == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert not docx.is_image


def test_inline_signature_logo_in_multipart_related():
    raw = build_message(text="Regards,\nConsultant", html='<p>Regards</p><img src="cid:logo123">',
                        inline_images=[("logo123", "logo.png", "image/png", tiny_png())],
                        attachments=[("cv.pdf", "application/pdf", minimal_pdf())])
    parsed = parse_message(raw)
    assert parsed.text == "Regards,\nConsultant"
    logo, cv = parsed.attachments
    assert (logo.filename, logo.inline, logo.is_image) == ("logo.png", True, True)
    assert (cv.filename, cv.inline, cv.is_image) == ("cv.pdf", False, False)


def test_related_image_with_content_id_but_no_disposition_is_inline():
    related = multipart("related",
                        ([b"Content-Type: text/html; charset=utf-8"], b'<p>Hi</p><img src="cid:sig">'),
                        ([b"Content-Type: image/png", b"Content-ID: <sig>", b"Content-Transfer-Encoding: base64"],
                         base64.encodebytes(tiny_png())), boundary="REL")
    raw = mixed_message(([b'Content-Type: multipart/related; boundary="REL"'], related))
    parsed = parse_message(raw)
    assert parsed.text == "Hi"
    [logo] = parsed.attachments
    assert logo.inline and logo.is_image and logo.filename == "attachment-1.png"


def test_text_attachment_is_not_body():
    raw = build_message(text="See notes", attachments=[("notes.txt", "text/plain", b"private notes"),
                                                       ("page.html", "text/html", b"<p>saved page</p>")])
    parsed = parse_message(raw)
    assert parsed.text == "See notes"
    assert [(a.filename, a.data) for a in parsed.attachments] == [("notes.txt", b"private notes"),
                                                                  ("page.html", b"<p>saved page</p>")]


def test_20_mb_attachment():
    data = (hashlib.sha256(b"seed").digest() * (20 * 1024 * 1024 // 32 + 1))[: 20 * 1024 * 1024]
    raw = build_message(attachments=[("big.bin", "application/octet-stream", data)])
    [attachment] = parse_message(raw).attachments
    assert attachment.size == 20 * 1024 * 1024
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert attachment.data == data
    assert "data" not in repr(attachment).replace("sniffed", "")


def test_nested_message_becomes_one_eml_attachment():
    inner = build_message(from_="Candidate <cand@example.org>", subject="Bewerbung: Jürgen / Entwickler",
                          text="inner text", attachments=[("inner-cv.pdf", "application/pdf", minimal_pdf())])
    raw = build_message(text="FYI, forwarding", attachments=[(None, "message/rfc822", inner)])
    parsed = parse_message(raw)
    assert parsed.text == "FYI, forwarding"
    [eml] = parsed.attachments
    assert eml.filename == "Bewerbung: Jürgen - Entwickler.eml"
    assert eml.content_type == "message/rfc822"
    again = parse_message(eml.data)
    assert again.subject == "Bewerbung: Jürgen / Entwickler"
    assert again.from_addr == "cand@example.org"
    assert [a.filename for a in again.attachments] == ["inner-cv.pdf"]
    assert again.attachments[0].data == minimal_pdf()


def test_nested_message_keeps_its_declared_filename_and_bytes():
    inner = raw_message([("From", "x@example.org"), ("Subject", "Inner")], b"body \xe4\r\n")
    raw = mixed_message(([b"Content-Type: text/plain"], b"see attached"),
                        ([b"Content-Type: message/rfc822", b'Content-Disposition: attachment; filename="Fwd.eml"'],
                         inner))
    [eml] = parse_message(raw).attachments
    assert eml.filename == "Fwd.eml"
    assert eml.data == inner


def test_base64_encoded_nested_message():
    inner = build_message(subject="Encoded inner", text="hello")
    raw = mixed_message(([b"Content-Type: text/plain"], b"see attached"),
                        ([b"Content-Type: message/rfc822", b"Content-Transfer-Encoding: base64"],
                         base64.encodebytes(inner)))
    [eml] = parse_message(raw).attachments
    assert eml.filename == "Encoded inner.eml"
    assert parse_message(eml.data).text == "hello"


def test_tnef_winmail_dat_is_replaced_by_its_files():
    tnef = build_tnef([("Lebenslauf Jürgen.pdf", "application/pdf", minimal_pdf()),
                       ("photo.png", "image/png", tiny_png())])
    raw = build_message(text="CV attached", attachments=[("winmail.dat", "application/ms-tnef", tnef),
                                                         ("other.docx", "application/vnd.openxmlformats-"
                                                          "officedocument.wordprocessingml.document", minimal_docx())])
    parsed = parse_message(raw)
    assert [(a.filename, a.content_type, a.sniffed_type) for a in parsed.attachments] == [
        ("Lebenslauf Jürgen.pdf", "application/pdf", "application/pdf"),
        ("photo.png", "image/png", "image/png"),
        ("other.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ]
    assert parsed.attachments[0].data == minimal_pdf()
    assert parsed.attachments[1].is_image


def test_winmail_dat_declared_octet_stream_is_unpacked_too():
    tnef = build_tnef([("cv.pdf", "application/pdf", minimal_pdf())])
    raw = build_message(attachments=[("WINMAIL.DAT", "application/octet-stream", tnef)])
    assert [a.filename for a in parse_message(raw).attachments] == ["cv.pdf"]


@pytest.mark.parametrize("blob", [
    b"not a tnef file at all",
    b"\x78\x9f\x3e\x22\x01\x00\x01\x06\x90",
    build_tnef([("cv.pdf", "application/pdf", minimal_pdf())])[:-100],  # cut short: would give half a PDF
])
def test_unreadable_winmail_dat_is_kept(blob):
    raw = build_message(attachments=[("winmail.dat", "application/ms-tnef", blob)])
    parsed = parse_message(raw)
    [kept] = parsed.attachments
    assert (kept.filename, kept.content_type, kept.data) == ("winmail.dat", "application/ms-tnef", blob)
    assert any("winmail.dat" in d for d in parsed.defects)


def test_winmail_dat_without_files_is_kept():
    # Outlook also sends winmail.dat holding only the rich-text body: nothing to unpack, nothing lost.
    blob = build_tnef([])
    [kept] = parse_message(build_message(attachments=[("winmail.dat", "application/ms-tnef", blob)])).attachments
    assert (kept.filename, kept.data) == ("winmail.dat", blob)


# ----------------------------------------------------------------- broken mail

def test_multipart_without_boundary_parameter():
    body = multipart("mixed", ([b"Content-Type: text/plain"], b"the real text"),
                     ([b"Content-Type: application/pdf", b"Content-Disposition: attachment; filename=cv.pdf"],
                      b"%PDF-1.4"), boundary="LOST")
    raw = raw_message(BASIC + [("Content-Type", "multipart/mixed")], body)
    # Premise: the stdlib finds no body and no attachments here.
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg.get_body() is None and list(msg.iter_attachments()) == []
    parsed = parse_message(raw)
    assert parsed.text == "the real text"
    assert [a.filename for a in parsed.attachments] == ["cv.pdf"]
    assert any("NoBoundaryInMultipartDefect" in d for d in parsed.defects)


def test_multipart_with_wrong_boundary():
    body = multipart("mixed", ([b"Content-Type: text/plain"], b"text under the real boundary"), boundary="REAL")
    raw = raw_message(BASIC + [("Content-Type", 'multipart/mixed; boundary="DECLARED"')], body)
    parsed = parse_message(raw)
    assert parsed.text == "text under the real boundary"
    assert parsed.defects


def test_multipart_without_any_parts_keeps_its_text():
    raw = raw_message(BASIC + [("Content-Type", 'multipart/alternative; boundary="X"')], b"just words\r\n")
    assert parse_message(raw).text == "just words"


def test_truncated_multipart():
    pdf = base64.encodebytes(minimal_pdf()).replace(b"\n", b"\r\n")
    raw = raw_message(BASIC + [("Content-Type", 'multipart/mixed; boundary="B"')],
                      b"--B\r\nContent-Type: text/plain\r\n\r\ntext before the cut\r\n--B\r\n"
                      b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=cv.pdf\r\n"
                      b"Content-Transfer-Encoding: base64\r\n\r\n" + pdf[:101])
    parsed = parse_message(raw)
    assert parsed.text == "text before the cut"
    [cv] = parsed.attachments
    assert cv.filename == "cv.pdf"
    assert minimal_pdf().startswith(cv.data) and cv.data.startswith(b"%PDF-1.4")
    assert any("CloseBoundaryNotFoundDefect" in d for d in parsed.defects)
    assert any("base64" in d for d in parsed.defects)


def test_malformed_content_headers():
    raw = mixed_message(([b"Content-Type: text/plain; charset"], b"odd charset param"),
                        ([b"Content-Type: ;;;===", b"Content-Disposition: attachment; filename="], b"x"),
                        ([b"Content-Type: image", b"Content-Disposition: attachment; filename=a.png"], tiny_png()))
    parsed = parse_message(raw)
    assert parsed.text.startswith("odd charset param")
    assert parsed.attachments[-1].filename == "a.png"
    assert parsed.attachments[-1].is_image


def test_deeply_nested_multipart_does_not_crash():
    body = b"innermost text"
    for level in range(60):
        boundary = f"L{level}".encode()
        body = (b"--" + boundary + b'\r\nContent-Type: multipart/mixed; boundary="L' + str(level - 1).encode()
                + b'"\r\n\r\n' + body + b"\r\n--" + boundary + b"--\r\n") if level else (
            b"--L0\r\nContent-Type: text/plain\r\n\r\n" + body + b"\r\n--L0--\r\n")
    raw = raw_message(BASIC + [("Content-Type", 'multipart/mixed; boundary="L59"')], body)
    parsed = parse_message(raw)
    assert isinstance(parsed.text, str)
    assert any("nested deeper" in d for d in parsed.defects)


def test_everything_is_plain_data():
    parsed = parse_message(build_message(attachments=[("cv.pdf", "application/pdf", minimal_pdf())]))
    assert all(isinstance(a, Attachment) for a in parsed.attachments)
    assert isinstance(parsed.defects, list) and all(isinstance(d, str) for d in parsed.defects)


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n", b"hello world\nthis is not mail\n",
                                 b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"Note: a text file, not mail\n\nbody"])
def test_not_an_email_is_unreadable(raw):
    with pytest.raises(MessageUnreadable) as caught:
        parse_message(raw)
    assert caught.value.reason


def test_headers_only_message_is_readable():
    parsed = parse_message(b"From: jane@example.org\r\nSubject: only headers\r\n")
    assert parsed.subject == "only headers" and parsed.text == "" and parsed.attachments == []
