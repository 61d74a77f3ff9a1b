"""Open-file limit of a serving process: every SSE stream is a socket (two in the proxy)."""

from __future__ import annotations

import logging
import resource

logger = logging.getLogger("skiff.broker")


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (many distributions default the soft one
    to 1,024, a few hundred streams); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as err:
            logger.warning("could not raise the open-files limit from %d: %s", soft, err)
    return soft
