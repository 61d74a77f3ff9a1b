"""HttpError: a request answered with a status and `{"error": message}`, by a node or the proxy.

Raised by request handlers and the plumbing they call (bodies, limits, the control token), and
turned into a response at the edge (broker/serving/errors.py on a node, proxy/app.py at the
proxy); it never escapes an app. Domain errors (an unknown stream, a leader that cannot take a
write) are not HttpErrors: each edge maps them to a status in one table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from broker.errors import BrokerError


class HttpError(BrokerError):
    """A request answered with `status` and `{"error": message}` (and `headers`, such as a
    429's Retry-After)."""

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON error body every 4xx and 5xx of skiff carries."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    return error_response(exc.status, exc.message, exc.headers)


async def _starlette_error(request: Request, exc: Exception) -> Response:
    # Starlette's own: 404 for an unknown route, 405 for a method the route does not take.
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # ServerErrorMiddleware still logs the traceback and re-raises to the server.
    return error_response(500, "internal server error")


def shared_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """The exception handlers nodes and the proxy share: HttpError, Starlette's, and 500."""
    return {HttpError: _http_error, HTTPException: _starlette_error, 500: _internal_error}
