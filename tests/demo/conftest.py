"""The demo's browser test drives the same headless Chromium as the panel's tests."""
from tests.web.conftest import browser  # noqa: F401
