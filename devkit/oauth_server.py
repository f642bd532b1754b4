"""A throw-away OAuth 2.0 authorisation server on a loopback port, standing in for Google and Microsoft.

Built with Authlib's server side (``authlib.integrations.flask_oauth2``): the
authorisation-code grant with PKCE required, refresh tokens, revocation
(RFC 7009) and introspection (RFC 7662), the last for the test Dovecot's
``oauth2`` passdb. A consent page lets a browser test click **Allow** or
**Deny**, as a person does at accounts.google.com.

Usage::

    with OAuthServer() as server:
        client = server.add_client("rolsync", "s3cret", "http://127.0.0.1:5000/oauth/callback/google")
        # point the app at server.authorize_url, server.token_url, server.revoke_url;
        # point Dovecot at server.introspection_url (with server.introspection_client).
        server.revoke_user("alice@example.com")   # the person withdraws consent

Tokens live in memory; ``token_lifetime`` sets how long new access tokens
last (seconds), so a test can make them expire quickly. Every access and
refresh token ever issued is kept in ``issued`` so tests can look for them
where they must not be (databases, logs, job arguments).

This module imports nothing from pytest: it is a plain helper, like dovecot.py.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6749.models import AuthorizationCodeMixin
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, request
from markupsafe import escape
from werkzeug.serving import make_server

INTROSPECTION_CLIENT = ("dovecot", "dovecot-introspection-secret")
"""The client id and secret Dovecot authenticates with at the introspection endpoint."""


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    scope: str = ""

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope):
        return scope or ""

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method, endpoint):
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    issued_at: float = field(default_factory=time.time)

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def is_expired(self):
        return time.time() > self.issued_at + 300


@dataclass
class Token(TokenMixin):
    client_id: str
    user: str
    scope: str
    access_token: str
    refresh_token: str | None
    expires_in: int
    issued_at: float = field(default_factory=time.time)
    revoked: bool = False
    """The whole grant is gone: neither this access token nor its refresh token works."""
    access_ended: bool = False
    """Only this access token was ended early; the refresh token still works."""

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def is_expired(self):
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self):
        return self.revoked or self.access_ended

    def get_user(self):
        return self.user

    def get_client(self):
        return None


class OAuthServer:
    """An Authlib authorisation server in a thread, on 127.0.0.1 and a free port."""

    host = "127.0.0.1"

    def __init__(self, token_lifetime: int = 3600) -> None:
        self.token_lifetime = token_lifetime
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.tokens: list[Token] = []
        self.revocations: list[str] = []
        """Tokens the client asked to revoke at the revocation endpoint, in order."""
        self.introspections = 0
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = self._build_app()
        self.add_client(*INTROSPECTION_CLIENT, redirect_uri=None)

    # -- addresses ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def revoke_url(self) -> str:
        return f"{self.base_url}/revoke"

    @property
    def introspection_url(self) -> str:
        """The introspection endpoint with Dovecot's client credentials in the URL (HTTP Basic)."""
        user, secret = INTROSPECTION_CLIENT
        return f"http://{user}:{secret}@{self.host}:{self.port}/introspect"

    @property
    def issued(self) -> list[str]:
        """Every access and refresh token issued so far."""
        with self._lock:
            return [t for token in self.tokens for t in (token.access_token, token.refresh_token) if t]

    # -- lifecycle ------------------------------------------------------------

    def __enter__(self) -> OAuthServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self._server = make_server(self.host, 0, self.app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="oauth-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # -- what a test changes ----------------------------------------------------

    def add_client(self, client_id: str, client_secret: str, redirect_uri: str | None) -> Client:
        """Register an application, as an admin does in Google Cloud or Entra ID."""
        client = Client(client_id, client_secret, [redirect_uri] if redirect_uri else [])
        self.clients[client_id] = client
        return client

    def revoke_user(self, user: str) -> None:
        """The person withdraws the app's access (Google Account > Security > Third-party apps)."""
        with self._lock:
            for token in self.tokens:
                if token.user == user:
                    token.revoked = True

    def end_access_tokens(self, user: str) -> None:
        """End the user's access tokens before their time, keeping the consent (a provider may do so)."""
        with self._lock:
            for token in self.tokens:
                if token.user == user:
                    token.access_ended = True

    def tokens_of(self, user: str) -> list[Token]:
        with self._lock:
            return [token for token in self.tokens if token.user == user]

    # -- the Flask app ------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("oauth-test-server")
        server = AuthorizationServer(
            app,
            query_client=self.clients.get,
            save_token=self._save_token,
        )
        server.register_token_generator("default", self._token_generator())
        owner = self

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code, req):
                owner.codes[code] = AuthorizationCode(
                    code=code, client_id=req.client.get_client_id(), redirect_uri=req.payload.redirect_uri,
                    scope=req.payload.scope, user=req.user,
                    code_challenge=req.payload.data.get("code_challenge"),
                    code_challenge_method=req.payload.data.get("code_challenge_method"))

            def query_authorization_code(self, code, client):
                found = owner.codes.get(code)
                if found and found.client_id == client.get_client_id() and not found.is_expired():
                    return found
                return None

            def delete_authorization_code(self, authorization_code):
                owner.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code):
                return authorization_code.user

        class RefreshGrant(grants.RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
            INCLUDE_NEW_REFRESH_TOKEN = False  # like Google: the refresh token stays

            def authenticate_refresh_token(self, refresh_token):
                with owner._lock:
                    for token in owner.tokens:
                        if token.refresh_token == refresh_token and not token.revoked:
                            return token
                return None

            def authenticate_user(self, refresh_token):
                return refresh_token.user

            def revoke_old_credential(self, refresh_token):
                pass

        class Revocation(RevocationEndpoint):
            CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def query_token(self, token_string, token_type_hint):
                return owner._find(token_string)

            def revoke_token(self, token, req):
                owner.revocations.append(req.form.get("token"))
                # Google revokes the whole grant: the refresh token and its access tokens.
                owner.revoke_user(token.user)

        class Introspection(IntrospectionEndpoint):
            CLIENT_AUTH_METHODS = ["client_secret_basic"]

            def query_token(self, token_string, token_type_hint):
                owner.introspections += 1
                return owner._find(token_string)

            def check_permission(self, token, client, req):
                return client.get_client_id() == INTROSPECTION_CLIENT[0]

            def introspect_token(self, token):
                return {"active": True, "client_id": token.client_id, "token_type": "Bearer",
                        "username": token.user, "scope": token.scope,
                        "exp": int(token.issued_at + token.expires_in), "iat": int(token.issued_at)}

        server.register_grant(CodeGrant, [CodeChallenge(required=True), _IdToken()])
        server.register_grant(RefreshGrant)
        server.register_endpoint(Revocation)
        server.register_endpoint(Introspection)

        @app.route("/authorize", methods=["GET"])
        def authorize_page():
            grant = server.get_consent_grant(end_user=None)
            hint = request.args.get("login_hint", "")
            return CONSENT_PAGE.format(
                client=escape(grant.client.get_client_id()), scope=escape(grant.request.payload.scope or ""),
                query=escape(request.query_string.decode()), login_hint=escape(hint))

        @app.route("/authorize", methods=["POST"])
        def authorize_decision():
            user = request.form["account"].strip().lower() if request.form.get("decision") == "allow" else None
            grant = server.get_consent_grant(end_user=user)
            return server.create_authorization_response(grant_user=user, grant=grant)

        @app.route("/token", methods=["POST"])
        def issue_token():
            return server.create_token_response()

        @app.route("/revoke", methods=["POST"])
        def revoke_token():
            return server.create_endpoint_response(RevocationEndpoint.ENDPOINT_NAME)

        @app.route("/introspect", methods=["POST"])
        def introspect_token():
            return server.create_endpoint_response(IntrospectionEndpoint.ENDPOINT_NAME)

        return app

    def _token_generator(self):
        from authlib.common.security import generate_token
        from authlib.oauth2.rfc6750 import BearerTokenGenerator

        return BearerTokenGenerator(
            access_token_generator=lambda *args, **kwargs: "at-" + generate_token(40),
            refresh_token_generator=lambda *args, **kwargs: "rt-" + generate_token(44),
            expires_generator=lambda client, grant_type: self.token_lifetime,
        )

    def _save_token(self, token: dict, req) -> None:
        # A refresh answers without a new refresh token (like Google): the grant's first one stays valid.
        with self._lock:
            self.tokens.append(Token(
                client_id=req.client.get_client_id(), user=req.user, scope=token.get("scope", ""),
                access_token=token["access_token"], refresh_token=token.get("refresh_token"),
                expires_in=int(token["expires_in"])))

    def _find(self, token_string: str) -> Token | None:
        with self._lock:
            for token in self.tokens:
                if token_string in (token.access_token, token.refresh_token):
                    return token
        return None


class _IdToken:
    """Adds an OpenID Connect id_token carrying the account's e-mail, as Google and Microsoft do for
    the ``openid email`` scopes. Unsigned (alg none): rolsync reads it straight from the token endpoint
    over the connection it opened itself (OpenID Connect Core §3.1.3.7), so no signature is checked."""

    def __call__(self, grant) -> None:
        grant.register_hook("after_create_token_response", self._add)

    @staticmethod
    def _add(grant, result) -> None:
        _status, token, _headers = result
        if "openid" not in (token.get("scope") or "").split():
            return

        def part(data: dict) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        claims = {"iss": "rolsync-test-oauth", "sub": grant.request.user, "email": grant.request.user,
                  "email_verified": True, "aud": grant.request.client.get_client_id(), "iat": int(time.time()),
                  "exp": int(time.time()) + 300}
        token["id_token"] = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - Test Accounts</title></head>
<body>
<h1>Test Accounts</h1>
<p>The application <b>{client}</b> wants to read, compose, send and permanently delete all your e-mail
(scope <code>{scope}</code>).</p>
<form method="post" action="/authorize?{query}">
  <label for="account">Account</label>
  <input id="account" name="account" value="{login_hint}">
  <button type="submit" name="decision" value="allow">Allow</button>
  <button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>
"""
