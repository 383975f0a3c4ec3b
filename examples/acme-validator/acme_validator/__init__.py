"""Example third-party plugins for validator (see the project README)."""
