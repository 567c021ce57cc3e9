"""One connection to herdd: JSON lines over its Unix socket (protocol v1).

herdd answers the requests of a connection in order, one at a time, so a
request that waits (``join``, ``event-wait``, ``sem-acquire``) holds its
connection: the client opens a connection of its own for each of those.
"""

import errno
import json
import os
import socket as _socket

from .errors import PermissionDenied, Unreachable, from_reply

PROTOCOL_VERSION = 1


def default_socket():
    """Where herdctl looks too: ``$HERD_SOCKET``, else
    ``/run/herd/herd.sock`` as root, else ``$XDG_RUNTIME_DIR/herd/herd.sock``
    (``$TMPDIR/herd-UID/herd.sock`` without it)."""
    configured = os.environ.get("HERD_SOCKET")
    if configured:
        return configured
    if os.geteuid() == 0:
        return "/run/herd/herd.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "herd", "herd.sock")
    import tempfile

    return os.path.join(tempfile.gettempdir(), "herd-%d" % os.geteuid(), "herd.sock")


class Connection:
    """A connection to herdd's socket at ``path``."""

    def __init__(self, path):
        self.path = os.fspath(path)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as err:
            sock.close()
            raise _connect_error(self.path, err) from err
        self._sock = sock
        self._reader = sock.makefile("rb")

    def send(self, cmd, **fields):
        """Sends one request; fields that are ``None`` are left out."""
        request = {"v": PROTOCOL_VERSION, "cmd": cmd}
        request.update({key: value for key, value in fields.items() if value is not None})
        line = json.dumps(request, separators=(",", ":")) + "\n"
        try:
            self._sock.sendall(line.encode("utf-8"))
        except OSError as err:
            raise self._lost(err) from err

    def receive(self):
        """The next reply line, as a dict (raises on end of stream)."""
        try:
            line = self._reader.readline()
        except OSError as err:
            raise self._lost(err) from err
        if not line:
            raise self._lost(None)
        return json.loads(line)

    def call(self, cmd, **fields):
        """Sends a request and returns its ``ok`` payload, or raises the
        exception named after its error code."""
        self.send(cmd, **fields)
        return payload(self.receive())

    def close(self):
        try:
            self._reader.close()
        finally:
            self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _lost(self, err):
        why = ": %s" % err.strerror if err is not None and err.strerror else ""
        return Unreachable("lost the connection to herdd at %s%s" % (self.path, why))


def payload(reply):
    """The ``ok`` payload of a reply, or the error it carries, raised."""
    if "error" in reply:
        raise from_reply(reply["error"])
    return reply.get("ok")


def _connect_error(path, err):
    if err.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied("cannot connect to herdd at %s: %s" % (path, err.strerror))
    if err.errno in (errno.ENOENT, errno.ECONNREFUSED):
        return Unreachable(
            "herdd is not running at %s (%s); start herdd, or pass the right socket "
            "to herd.connect() or set HERD_SOCKET" % (path, err.strerror)
        )
    return Unreachable("cannot connect to herdd at %s: %s" % (path, err.strerror or err))
