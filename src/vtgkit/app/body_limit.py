"""A size limit on request bodies other than uploads: a JSON query never needs more than a few kB.

FastAPI reads a JSON body whole before validating it, so without this a client could make the server buffer an
unbounded body on ``/api/ground``. An ASGI middleware: bodies announced larger than the limit are refused before
they are read; streamed ones raise Starlette's ``HTTPException(413)`` from ``receive`` as soon as the count passes
the limit, which FastAPI's body parsing lets through to the app's exception handler. (FastAPI >= 0.16x has its own
``max_body_size``; this works with every version the ``app`` extra allows.)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyLimit:
    """Wraps an ASGI app: HTTP request bodies over ``max_bytes`` get 413, except on ``exempt_paths``."""

    def __init__(self, app: Any, max_bytes: int, exempt_paths: frozenset[str] = frozenset()) -> None:
        self.app, self.max_bytes, self.exempt_paths = app, max_bytes, exempt_paths

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self.message)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except HTTPException as error:  # raised by counting_receive outside FastAPI's body parsing
            if started or error.status_code != 413:
                raise
            await self._refuse(send)

    @property
    def message(self) -> str:
        return f"request body larger than {self.max_bytes} bytes (only video uploads, to /api/videos, may be large)"

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": self.message}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
