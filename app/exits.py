"""The exit codes of `bookmarks` (README, "Exit codes"), and the error that ends a command with one.

0 to 9 say how the command's work ended (for `bookmarks import`: how its job ended). 64 and up are
problems to fix before the work could start, numbered as in BSD's sysexits.h, so a script can tell "the
import failed" from "the server was down" or "the token was refused".
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    """Done (`bookmarks import`: every video is ready, or there was nothing new to fetch)."""
    COMPLETED_WITH_ERRORS = 3
    """`bookmarks import`: the job completed, but some videos failed."""
    JOB_FAILED = 4
    """`bookmarks import`: the job failed (its videos all failed, or it was stopped) or was cancelled."""
    USAGE = 64
    """An unknown option, a missing argument, or a prompt with no terminal to answer it."""
    DATA = 65
    """The input was refused: an import with nothing valid or over the limits, an unknown user or token."""
    NO_INPUT = 66
    """The file to import is missing or unreadable (or a folder)."""
    UNAVAILABLE = 69
    """The server or the database cannot be reached, or answered with a server error; `run` cannot listen
    on its port or start the app."""
    TEMPORARY = 75
    """Rate limited: try again shortly."""
    NO_PERMISSION = 77
    """The server refused the token (unknown, revoked) or the action."""
    CONFIG = 78
    """A setting (or `run`'s certificate) has a value the app cannot use, or the database has no tables."""
    INTERRUPTED = 130
    """Ctrl-C."""


class CommandError(Exception):
    """A problem the user can fix; `bookmarks` prints its message as one line and exits with its code."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = code
