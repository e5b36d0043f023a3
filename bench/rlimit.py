"""Open-file limits: 10,000 sockets need far more than the usual soft limit of 1,024 descriptors.

Kept apart from `bench.common` so the swarm child process starts without importing the app.
"""

from __future__ import annotations

import resource


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; returns it. Also used as a child's `preexec_fn`."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
