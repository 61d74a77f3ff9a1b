"""Reading request bodies: size- and time-bounded, then parsed as JSON, failing as 4xx
HttpErrors."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request

from broker.http.errors import HttpError
from broker.json_bytes import JsonDecodeError, loads
from broker.types import Json

_NO_DEFAULT: Any = object()

#: How long a request body may take to arrive whole, by default (ServeConfig and ProxyConfig
#: `body_timeout_s`): 1 MiB, the default size limit, at 35 KB/s.
BODY_TIMEOUT_S = 30.0


async def read_body(request: Request, limit: int, within_s: float = BODY_TIMEOUT_S) -> bytes:
    """The whole body, or 413 once it exceeds `limit` bytes, or 408 when it is not complete
    `within_s` seconds after the head (a client trickling a body would otherwise hold its
    connection and this request for as long as it likes; the head has its own deadline,
    broker/http/guarded_protocol.py). The 408 closes the connection: the rest of the body
    may still be on its way, and would be read as the next request.

    Content-Length is checked first so an honest oversized request is refused unread; the
    streamed bytes are counted too, because the header may be absent (chunked) or lie.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
            raise HttpError(400, "malformed Content-Length header")
        if int(declared) > limit:
            raise HttpError(413, f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(within_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HttpError(413, f"request body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise HttpError(
            408, f"request body not complete within {within_s:g} s", headers={"Connection": "close"}
        ) from None
    return b"".join(chunks)


async def read_json(
    request: Request, limit: int, *, empty: Json = _NO_DEFAULT, within_s: float = BODY_TIMEOUT_S
) -> Json:
    """The body parsed as JSON; an empty body gives `empty` when one is provided."""
    body = await read_body(request, limit, within_s)
    if not body.strip() and empty is not _NO_DEFAULT:
        return empty
    try:
        return loads(body)
    except JsonDecodeError as err:
        raise HttpError(400, f"malformed JSON: {err}") from err
