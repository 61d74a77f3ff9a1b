"""HttpError: a request answered with a status and `{"error": message}`, by a node or the proxy.

Raised by request handlers and the plumbing they call (bodies, limits, the control token), and
turned into a response at the edge (broker/serving/errors.py on a node, proxy/app.py at the
proxy); it never escapes an app. Domain errors (an unknown stream, a leader that cannot take a
write) are not HttpErrors: each edge maps them to a status in one table.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse, Response

from broker.errors import BrokerError


class HttpError(BrokerError):
    """A request answered with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON error body every 4xx and 5xx of skiff carries."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)
