"""The node's edge: the one table choosing the HTTP status of every error a request can end in.

Every error body is `{"error": "<message>"}`:
- 400: malformed JSON, a PATCH body that is not a list of `[key, [values]]` entries, keys or
  values that are not JSON, JSON nested too deeply to key on, params a resource rejects.
- 401: a write, a delete, a stream creation naming its id, or an admin request without the
  configured control token; with identity tokens on, a token that is not valid, or none where
  one is needed (broker/http/access.py).
- 403: a valid token that may not do this: a write its scope does not grant, or params the
  resource refuses for this caller (graph.ForbiddenError).
- 404: unknown collection, resource, stream id or route.
- 406: `GET /v1/streams/{id}` without `Accept: text/event-stream`.
- 409: `X-Skiff-Stream-Id` names an existing stream of another resource instance.
- 413: a body, params, key or value over its limit.
- 422: the request was well formed but user code (a mapper, reducer or lazy compute) raised on
  it; the message names the mapper and the key. Like every rejection, the tick is rolled back
  and the state is exactly as before.
- 429: the node (or the resource instance) holds as many streams as it may.
- 502: an external resource the resource reads (graph/external.py) could not be subscribed to,
  or its content broke the resource.
- 503: the node cannot do it now — draining, not the leader, Redis unreachable, an external
  resource still loading — and changed nothing: the client may retry.

Domain code raises what happened (graph's and broker's errors); request plumbing that decides a
status itself (bodies, limits, the control token) raises broker.http.errors.HttpError.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from broker.errors import (
    ExternalResourceError,
    OverloadedError,
    StreamIdConflictError,
    UnavailableError,
    UnknownStreamError,
)
from broker.http.errors import HttpError, error_response, shared_handlers
from graph import (
    CycleError,
    ForbiddenError,
    InvalidWriteError,
    KeyLookupError,
    NotJsonError,
    ParamsRejectedError,
    UnknownCollectionError,
    UnknownResourceError,
    UserCodeError,
)

STATUS: Final[dict[type[Exception], int]] = {
    UnknownCollectionError: 404,
    UnknownResourceError: 404,
    UnknownStreamError: 404,
    InvalidWriteError: 400,
    NotJsonError: 400,
    ParamsRejectedError: 400,
    ForbiddenError: 403,
    UserCodeError: 422,
    KeyLookupError: 422,
    CycleError: 422,
    StreamIdConflictError: 409,
    OverloadedError: 429,
    ExternalResourceError: 502,
    UnavailableError: 503,
}
#: What a request handler may raise and be answered for (anything else is a 500).
ANSWERED: Final[tuple[type[Exception], ...]] = (HttpError, *STATUS)


def status_of(exc: Exception) -> int:
    if isinstance(exc, HttpError):
        return exc.status
    return next(code for cls, code in STATUS.items() if isinstance(exc, cls))


def error_for(exc: Exception) -> Response:
    """The response answering `exc`, one of ANSWERED."""
    message = exc.message if isinstance(exc, HttpError) else str(exc)
    return error_response(status_of(exc), message)


async def _mapped(request: Request, exc: Exception) -> Response:
    return error_for(exc)


def exception_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """Starlette's exception handlers of a node's app."""
    return {**{cls: _mapped for cls in STATUS}, **shared_handlers()}
