"""Mail access: IMAP connection and folders, and parsing raw messages."""
