"""Keeping identity tokens out of logs.

A browser's stream read may carry its token in the URL (`?access_token=`, since EventSource
cannot set headers), and uvicorn's access log writes each request's path with its query. This
filter rewrites the value to `[redacted]` in every record of the loggers it is installed on,
before any handler formats it. Tokens travelling in headers or cookies are never logged.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from broker.http.access import TOKEN_QUERY

_IN_QUERY: Final = re.compile(rf"((?:^|[?&;\s\"']){TOKEN_QUERY}=)[^&\s\"';]*", re.IGNORECASE)
REDACTED: Final = "[redacted]"
#: The loggers that may see a request's URL: uvicorn's access and error logs, skiff's own.
LOGGERS: Final = ("uvicorn.access", "uvicorn.error", "skiff.broker", "skiff.proxy", "skiff.auth")


def redact(text: str) -> str:
    """`text` with every `access_token=` value replaced."""
    if TOKEN_QUERY not in text.lower():
        return text
    return _IN_QUERY.sub(rf"\g<1>{REDACTED}", text)


class RedactTokens(logging.Filter):
    """Rewrites `access_token=` values in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        elif isinstance(args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in args.items()}
        return True


_FILTER: Final = RedactTokens()


def install() -> None:
    """Put the filter on every logger in LOGGERS (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
