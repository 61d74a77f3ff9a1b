"""Reading request bodies: size-bounded, then parsed as JSON, failing as 4xx ApiErrors."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from broker.http.errors import HttpError
from broker.json_bytes import JsonDecodeError, loads
from broker.types import Json

_NO_DEFAULT: Any = object()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 once it exceeds `limit` bytes.

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
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int, *, empty: Json = _NO_DEFAULT) -> Json:
    """The body parsed as JSON; an empty body gives `empty` when one is provided."""
    body = await read_body(request, limit)
    if not body.strip() and empty is not _NO_DEFAULT:
        return empty
    try:
        return loads(body)
    except JsonDecodeError as err:
        raise HttpError(400, f"malformed JSON: {err}") from err
