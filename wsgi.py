"""The WSGI entry point: `flask --app wsgi …` and web servers load `app` from here."""
from rolsync import create_app

app = create_app()
