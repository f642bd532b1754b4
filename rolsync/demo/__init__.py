"""`python -m rolsync.demo`: the whole product on one machine, with a sample mailbox, CRM and users."""
