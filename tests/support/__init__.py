"""Test-only helpers run as processes of their own (the development servers are in `devkit`)."""
