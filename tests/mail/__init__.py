"""Tests of rolsync.mail (the mail builders are in `devkit.builders`)."""
