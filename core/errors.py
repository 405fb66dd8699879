"""Errors a user can act on. The CLI prints their message as one sentence, no traceback."""

from __future__ import annotations


class PhiopsError(Exception):
    """A failure caused by input, configuration or the environment, not by a bug.

    `exit_code` lets a command distinguish, e.g., "invalid rows found" (1) from usage (2).
    """

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(PhiopsError):
    """phiops.toml cannot be read or holds a value of the wrong kind."""


class NotFoundError(PhiopsError):
    """A job, model, endpoint or file named by the user does not exist."""


class UnreadableRecord(NotFoundError):
    """A record phiops keeps on disk (a job's, an endpoint's) cannot be read; the message
    names the file and what is wrong with it. Listings skip it and report it."""
