"""The panel's error pages: plain words for every HTTP error, JSON for the pages' scripts."""
from __future__ import annotations

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from rolsync.extensions import db

ERROR_TEXTS = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Not allowed", "You do not have access to this page."),
    404: ("Not found", "There is nothing here. It may have been removed, or the link is wrong."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    413: ("Too large", "The upload is too large."),
    429: ("Too many attempts", "Too many attempts. Wait a little and try again."),
    500: ("Something went wrong", "The panel hit an internal error. Try again; if it keeps happening, tell an admin."),
}


def init_error_pages(app: Flask) -> None:
    """Render every error (and an expired form) as a page of the panel, never a traceback."""

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return render_template("errors/error.html", code=400, title="The form has expired",
                               message="The page was open too long or came from elsewhere. "
                                       "Go back, reload the page and try again."), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        title, message = ERROR_TEXTS.get(error.code, (error.name, error.description or ""))
        if request.path.endswith(".json") or request.accept_mimetypes.best == "application/json":
            return {"error": title, "message": message}, error.code
        return render_template("errors/error.html", code=error.code, title=title, message=message), error.code

    @app.errorhandler(500)
    def internal_error(error):
        db.session.rollback()
        title, message = ERROR_TEXTS[500]
        return render_template("errors/error.html", code=500, title=title, message=message), 500
