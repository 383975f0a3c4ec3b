"""The built-in adapters of validator, installed under the import name ``validator_plugins``.

Each sub-package is a plugin registered through the ``validator.plugins``
entry-point group, exactly as a third-party plugin is.
"""
