"""herd's Python client: task pools, semaphores and events of a herdd, with
``multiprocessing``'s names.

    import herd
    client = herd.connect()                      # $HERD_SOCKET or herd's default
    result = client.pool("convert").submit(["convert", "a.png", "a.jpg"])
    print(result.get(timeout=60))                # the task's stdout
    for out in client.pool("convert").imap(["sha256sum", "{}"], paths):
        print(out, end="")
    with client.semaphore("disk"):
        ...
    client.event("go").wait(timeout=5)

Pure standard library; speaks herd's JSON-lines protocol on its Unix socket.
"""

from .client import Client, connect
from .connection import default_socket
from .errors import (
    BadRequest,
    Failed,
    HerdError,
    NoSuchPool,
    NoSuchTask,
    NoSuchUnit,
    PermissionDenied,
    Refused,
    ShuttingDown,
    TaskFailed,
    TimeoutError,
    TooBusy,
    TooLarge,
    UnknownCommand,
    Unreachable,
    UnsupportedVersion,
)
from .pool import AsyncResult, Pool
from .sync import Event, Semaphore

__version__ = "0.1.0"

__all__ = [
    "connect",
    "default_socket",
    "Client",
    "Pool",
    "AsyncResult",
    "Semaphore",
    "Event",
    "HerdError",
    "BadRequest",
    "UnsupportedVersion",
    "UnknownCommand",
    "TooLarge",
    "NoSuchUnit",
    "NoSuchPool",
    "NoSuchTask",
    "Refused",
    "PermissionDenied",
    "Failed",
    "ShuttingDown",
    "TooBusy",
    "Unreachable",
    "TimeoutError",
    "TaskFailed",
]
