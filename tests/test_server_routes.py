"""The server's route table (``validator.server.routes``): one entry per endpoint.

- The OpenAPI document stays what it was when the table replaced the four parallel tables
  (``tests/openapi/digests.json``: one digest per path and per component, so a change
  names the path or schema that moved; regenerate with ``python -m tests.test_server_routes``
  after a change to the document that is meant).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from validator.server.openapi import document

DIGESTS = Path(__file__).parent / "openapi" / "digests.json"
#: The document the digests are of: both built-in item types, the default upload bound.
ITEM_TYPES = ("iso", "ovf")
MAX_UPLOAD = 64 << 30


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def digests(doc: dict[str, Any]) -> dict[str, Any]:
    """Per path and method, per component, and of the rest: what must not move."""
    rest = {k: v for k, v in doc.items() if k not in ("paths", "components")}
    components = doc["components"]
    return {
        "paths": {
            path: {method: _digest(op) for method, op in sorted(ops.items())}
            for path, ops in sorted(doc["paths"].items())
        },
        "components": {
            group: {name: _digest(value) for name, value in sorted(components[group].items())}
            for group in sorted(components)
        },
        "rest": _digest(rest),
        "order": _digest([list(doc["paths"]), {g: list(v) for g, v in components.items()}]),
    }


def test_the_openapi_document_is_unchanged() -> None:
    want = json.loads(DIGESTS.read_text())
    got = digests(document(ITEM_TYPES, MAX_UPLOAD))
    assert got["paths"].keys() == want["paths"].keys()
    for path, ops in want["paths"].items():
        assert got["paths"][path] == ops, path
    assert got["components"] == want["components"]
    assert got == want


if __name__ == "__main__":  # regenerate the digests
    DIGESTS.write_text(json.dumps(digests(document(ITEM_TYPES, MAX_UPLOAD)), indent=1) + "\n")
    sys.exit(0)
