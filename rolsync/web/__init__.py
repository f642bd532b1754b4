"""The web panel's blueprints."""
from flask import Flask


def register_blueprints(app: Flask) -> None:
    """The panel itself arrives with the web issue; the factory already calls this."""
