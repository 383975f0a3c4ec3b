"""validator: validates content-library update sessions with pluggable type adapters.

Importing this package is cheap on purpose (the CLI's start-up time is a
feature): the engine, registry and plugins are imported on first use.
"""

__version__ = "0.1.0"
