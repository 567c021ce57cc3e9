"""The client: ``herd.connect()`` and what it hands out."""

import os
import threading

from .connection import Connection, default_socket, payload
from .pool import Pool
from .sync import Event, Semaphore


def connect(socket=None):
    """Connects to herdd at ``socket`` (default: ``$HERD_SOCKET``, else
    herd's default socket) and returns a :class:`Client`. Raises
    :class:`herd.Unreachable` (naming the socket) when herdd is not running
    there, :class:`herd.PermissionDenied` when the socket may not be used."""
    return Client(default_socket() if socket is None else socket)


class Client:
    """A connection to herdd. Thread-safe: quick requests share one
    connection (one at a time); those that wait get their own."""

    def __init__(self, socket):
        self.socket = os.fspath(socket)
        self._lock = threading.Lock()
        self._connection = Connection(self.socket)
        # Semaphore name -> the connections holding its slots (see Semaphore).
        self._held_slots = {}

    # -- plumbing ---------------------------------------------------------

    def request(self, cmd, **fields):
        """Sends one protocol request (``cmd`` and its fields, see herd's
        docs/protocol.md) and returns its ``ok`` payload; errors are raised
        as the exception named after their code."""
        with self._lock:
            return self._connection.call(cmd, **fields)

    def waiting_request(self, cmd, **fields):
        """As :meth:`request`, on a connection of its own, for requests that
        may wait (``join``, ``event-wait``, ``pool-join``): others are not
        held up meanwhile."""
        with Connection(self.socket) as connection:
            return connection.call(cmd, **fields)

    def close(self):
        """Closes the connection, and with it every semaphore slot it holds."""
        for connections in self._held_slots.values():
            while connections:
                connections.pop().close()
        self._connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "herd.Client(%r)" % self.socket

    # -- what it hands out ------------------------------------------------

    def pool(self, name):
        """The task pool ``[pool.NAME]``: ``submit``, ``map``, ``imap``."""
        return Pool(self, name)

    def semaphore(self, name):
        """The semaphore ``[semaphore.NAME]``, used as ``with``."""
        return Semaphore(self, name)

    def event(self, name):
        """The event ``[event.NAME]``: ``set``, ``clear``, ``is_set``, ``wait``."""
        return Event(self, name)

    def status(self, *names):
        """The status of the named units (all when none are named): the
        protocol's StatusReport, ``{"units": [...], "pools": [...]}``."""
        return self.request("status", names=list(names) or None)

    def tasks(self, pool=None):
        """Every task herd keeps (of ``pool``, or of every pool)."""
        return self.request("tasks", pool=pool)["tasks"]

    def events(self, follow=False):
        """herd's event stream, as dicts (``{"time", "type", ...}``): the
        recent history, then, with ``follow=True``, every new event as it
        happens, for as long as the iterator is used. Closing the iterator
        (or leaving a ``for`` loop) closes its connection."""
        connection = Connection(self.socket)
        try:
            connection.send("events", follow=follow)
            while True:
                reply = connection.receive()
                if "event" in reply:
                    yield reply["event"]
                else:
                    payload(reply)
                    return
        finally:
            connection.close()
