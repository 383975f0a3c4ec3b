"""uvicorn's HTTP protocol, answering requests it cannot parse with a vAPI error body.

A request line or header block that is not HTTP/1.1, or a header block larger than the
parser accepts (h11: 16 KiB by default), never reaches the application: uvicorn answers it
itself, ``400`` with the plain text ``Invalid HTTP request received.``.  The class made
here answers the same ``400`` (and closes the connection, as uvicorn does) with the
``invalid_argument`` error body of the ``/api`` form, like every other error of the server.
"""

from __future__ import annotations

import asyncio
from typing import Any


def vapi_protocol(body: bytes) -> type[asyncio.Protocol]:
    """The HTTP protocol class uvicorn picks by itself, answering parse errors with ``body``."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    head = (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode("ascii") + b"\r\n"
        b"connection: close\r\n\r\n"
    )

    def send_400_response(self: Any, msg: str) -> None:
        # Both of uvicorn's parsers call this for a request they cannot parse, then stop
        # reading the connection; the parser's state does not matter once it is closed.
        self.transport.write(head + body)
        self.transport.close()

    if not callable(getattr(AutoHTTPProtocol, "send_400_response", None)):
        return AutoHTTPProtocol  # another uvicorn: its own plain-text answer
    name = "Vapi" + AutoHTTPProtocol.__name__
    return type(name, (AutoHTTPProtocol,), {"send_400_response": send_400_response})
