"""The reference update-session server (issue 5); not implemented yet."""
