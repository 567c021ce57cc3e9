"""Semaphores and events owned by herdd, with ``threading``'s names."""

import os

from .connection import Connection


def _timeout_ms(timeout):
    return None if timeout is None else max(0, int(timeout * 1000))


class Semaphore:
    """``[semaphore.NAME]``: ``with client.semaphore("disk"): ...`` holds one
    slot for the block. Each slot belongs to a connection of its own, kept by
    the client until :meth:`release` (from this or any other handle of the
    same name): herdd releases it when the process ends, however it ends, or
    when the client is closed."""

    def __init__(self, client, name):
        self._client = client
        self.name = name
        self._held = client._held_slots.setdefault(name, [])

    def __repr__(self):
        return "herd.Semaphore(%r)" % self.name

    def acquire(self, blocking=True, timeout=None):
        """Takes a slot, waiting (FIFO) if none is free: for ever, up to
        ``timeout`` seconds, or not at all with ``blocking=False``. Whether
        it got one."""
        if not blocking:
            timeout = 0
        connection = Connection(self._client.socket)
        try:
            reply = connection.call(
                "sem-acquire", name=self.name, timeout_ms=_timeout_ms(timeout), pid=os.getpid()
            )
        except BaseException:
            connection.close()
            raise
        if not reply["acquired"]:
            connection.close()
            return False
        self._held.append(connection)
        return True

    def release(self):
        """Gives back the slot taken last."""
        if not self._held:
            raise ValueError("semaphore %s released more times than acquired" % self.name)
        connection = self._held.pop()
        try:
            connection.call("sem-release", name=self.name)
        finally:
            connection.close()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class Event:
    """``[event.NAME]``, a flag herdd owns (``threading.Event``'s names)."""

    def __init__(self, client, name):
        self._client = client
        self.name = name

    def __repr__(self):
        return "herd.Event(%r)" % self.name

    def is_set(self):
        for event in self._client.request("event-list")["events"]:
            if event["name"] == self.name:
                return event["set"]
        return False

    def set(self):
        self._client.request("event-set", name=self.name)

    def clear(self):
        self._client.request("event-clear", name=self.name)

    def wait(self, timeout=None):
        """Waits until it is set, or ``timeout`` seconds; whether it is set."""
        reply = self._client.waiting_request("event-wait", name=self.name, timeout_ms=_timeout_ms(timeout))
        return not reply["timed_out"]
