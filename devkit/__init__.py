"""Development servers and samples, not shipped: the test Dovecot, the OAuth server, mail builders, sample files.

Used by tests/, bench/ and the demo (`python -m rolsync.demo` from a checkout);
rolsync/ itself never imports it.
"""
