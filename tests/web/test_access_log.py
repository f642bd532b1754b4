"""The development server's access log (make run, the demo) never shows an OAuth callback's code or state."""
from __future__ import annotations

import logging
import threading
import urllib.request

from werkzeug.serving import make_server

from rolsync.redact import redact_query


def test_the_access_log_redacts_the_callback_code_and_state(sqlite_app, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    server = make_server("127.0.0.1", 0, sqlite_app)  # werkzeug's own request handler, which writes the log
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.port}/oauth/google/callback?code=4%2F0AbCdEfSeCrEt&state=st4te-value&scope=x"
        with urllib.request.urlopen(url) as response:  # not signed in: sent to the sign-in page
            assert response.status == 200
    finally:
        server.shutdown()
        thread.join()
    lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    callback = [line for line in lines if "/oauth/google/callback" in line]
    assert callback, lines
    assert "code=[redacted]&state=[redacted]&scope=x" in callback[0]
    # Not signed in: the sign-in page's `next` carries the callback URL, encoded; redacted too.
    sign_in_page = [line for line in lines if "GET /login?next=" in line]
    assert sign_in_page and "code%3D[redacted]%26state%3D[redacted]%26scope%3Dx" in sign_in_page[0]
    assert not any("SeCrEt" in line or "st4te-value" in line for line in lines)


def test_only_oauth_values_are_redacted():
    assert redact_query("GET /records?q=code&page=2 HTTP/1.1") == "GET /records?q=code&page=2 HTTP/1.1"
    assert redact_query('"GET /cb?error=access_denied&state=abc HTTP/1.1" 302 -') == \
        '"GET /cb?error=access_denied&state=[redacted] HTTP/1.1" 302 -'
