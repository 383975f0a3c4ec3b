"""The ``iso`` type adapter (ISO 9660 / Joliet / Rock Ridge / El Torito / UDF images).

Placeholder until issue 4 lands: it declares no item type yet.
"""
