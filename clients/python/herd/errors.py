"""Exceptions: one per error code of herd's protocol, plus the client's own.

Every exception herd raises is a :class:`HerdError`. Errors herdd replies
with are named after their protocol code (``no_such_pool`` ->
:class:`NoSuchPool`) and keep it in ``.code``.
"""

import builtins


class HerdError(Exception):
    """Base of every herd exception. ``code`` is the protocol error code
    (``"no_such_pool"``, ...) or, for errors of the client itself,
    ``"unreachable"``, ``"timeout"`` or ``"task_failed"``."""

    code = "error"

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(HerdError, ValueError):
    code = "bad_request"


class UnsupportedVersion(HerdError):
    code = "unsupported_version"


class UnknownCommand(HerdError):
    code = "unknown_command"


class TooLarge(HerdError, ValueError):
    code = "too_large"


class NoSuchUnit(HerdError, LookupError):
    code = "no_such_unit"


class NoSuchPool(HerdError, LookupError):
    code = "no_such_pool"


class NoSuchTask(HerdError, LookupError):
    code = "no_such_task"


class Refused(HerdError):
    code = "refused"


class PermissionDenied(HerdError, PermissionError):
    code = "permission_denied"


class Failed(HerdError):
    code = "failed"


class ShuttingDown(HerdError):
    code = "shutting_down"


class TooBusy(HerdError):
    code = "too_busy"


class Unreachable(HerdError, ConnectionError):
    """herdd cannot be reached: no socket, nobody listening, or the
    connection was lost. The message names the socket."""

    code = "unreachable"


class TimeoutError(HerdError, builtins.TimeoutError):
    """A wait with a timeout ran out (``AsyncResult.get(timeout)``), as
    ``multiprocessing.TimeoutError``."""

    code = "timeout"


class TaskFailed(HerdError):
    """A task did not exit 0: ``AsyncResult.get()`` raises it, as
    ``multiprocessing`` re-raises a worker's exception. ``task`` is the
    task's status (``state``, ``exit``, ``reason``, ...), ``stderr`` what it
    wrote there."""

    code = "task_failed"

    def __init__(self, message, task, stderr=""):
        super().__init__(message)
        self.task = task
        self.stderr = stderr

    @property
    def returncode(self):
        """The exit code, or ``-N`` if signal N killed it (as ``subprocess``);
        ``None`` if it never ran (cancelled, or its program could not start)."""
        exit = self.task.get("exit") or {}
        if "code" in exit:
            return exit["code"]
        if "signal" in exit:
            from signal import Signals

            try:
                return -Signals[exit["signal"]].value
            except KeyError:
                return None
        return None


_BY_CODE = {
    cls.code: cls
    for cls in (
        BadRequest,
        UnsupportedVersion,
        UnknownCommand,
        TooLarge,
        NoSuchUnit,
        NoSuchPool,
        NoSuchTask,
        Refused,
        PermissionDenied,
        Failed,
        ShuttingDown,
        TooBusy,
    )
}


def from_reply(error):
    """The exception for an ``{"error": {"code", "message"}}`` reply."""
    code = error.get("code", "error")
    message = error.get("message", code)
    cls = _BY_CODE.get(code, HerdError)
    return cls(message, code=code)
