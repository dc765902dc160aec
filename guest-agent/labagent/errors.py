"""Engine errors carry their HTTP status, so the API maps them without guessing."""

from __future__ import annotations


class EngineError(Exception):
    """An error the API reports as `{"message": ...}` with `status`."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadParameter(EngineError):
    status = 400


class NotFound(EngineError):
    status = 404


class Conflict(EngineError):
    status = 409


class NotModified(EngineError):
    """Docker answers 304 with no body when start/stop would change nothing."""

    status = 304
