"""Task pools: ``multiprocessing.Pool``'s names for herd's ``[pool.NAME]``.

Tasks are commands (argv lists) run by herdd, not Python functions: a task's
result is what it wrote to stdout, and a task that does not exit 0 raises
:class:`herd.TaskFailed` from ``get()``.
"""

import collections
import queue
import threading

from .errors import NoSuchTask, Refused, TaskFailed, TimeoutError


def _argv(command):
    if isinstance(command, (str, bytes)):
        raise TypeError(
            "a command is a list of arguments, e.g. ['convert', 'in.png', 'out.jpg'] "
            "(no shell: use ['sh', '-c', 'CMD'] for one)"
        )
    return [str(arg) for arg in command]


def command_for(template, item):
    """``template`` with ``{}`` in each argument replaced by ``item``, or
    ``item`` appended when no argument has ``{}`` (as ``herdctl map``)."""
    item = str(item)
    template = _argv(template)
    if any("{}" in arg for arg in template):
        return [arg.replace("{}", item) for arg in template]
    return template + [item]


def _timeout_ms(timeout):
    if timeout is None:
        return None
    return max(0, int(timeout * 1000))


# The states of a task that has ended (herd.toml `task_timeout` ends one "timed_out").
_ENDED = ("exited", "failed", "cancelled", "timed_out")


class Pool:
    """The pool named ``name`` on herdd. It is herd's, shared with every
    other client: nothing here closes it unless asked (:meth:`close`)."""

    def __init__(self, client, name):
        self._client = client
        self.name = name

    def __repr__(self):
        return "herd.Pool(%r)" % self.name

    def submit(self, command, name=None):
        """Queues ``command`` (an argv list) and returns its
        :class:`AsyncResult` at once (``Pool.apply_async``)."""
        report = self._client.request("submit", pool=self.name, command=_argv(command), name=name)
        return AsyncResult(self._client, report["id"])

    apply_async = submit

    def submit_many(self, commands):
        """Queues every command of ``commands`` (argv lists) in one request
        (``submit-batch``) and returns their :class:`AsyncResult`s in order.
        A bad command queues none (BadRequest); a full queue takes the first
        ones that fit and raises Refused for the rest, after the others were
        queued: their results are in the exception's ``results``."""
        report = self._client.request(
            "submit-batch", pool=self.name, commands=[_argv(c) for c in commands]
        )
        results = [AsyncResult(self._client, id) for id in report["ids"]]
        if report.get("refused"):
            error = Refused(report["refused"], "refused")
            error.results = results
            raise error
        return results

    def apply(self, command):
        """Runs ``command`` and returns its stdout (raises TaskFailed)."""
        return self.submit(command).get()

    def imap(self, command, items, window=None):
        """Runs ``command`` once per item (``{}`` replaced by the item, see
        :func:`command_for`) and yields each task's stdout in the order of
        ``items``, as soon as it and those before it are done. At most
        ``window`` tasks are outstanding (default: the pool's size), so
        ``items`` may be a long or endless iterator. A task that fails
        raises TaskFailed; the tasks still outstanding are then cancelled,
        as they are when the iterator is closed early."""
        window = self._window(window)
        items = iter(items)
        outstanding = collections.deque()
        try:
            while True:
                while len(outstanding) < window:
                    item = next(items, _END)
                    if item is _END:
                        break
                    outstanding.append(self.submit(command_for(command, item)))
                if not outstanding:
                    return
                yield outstanding[0].get()
                outstanding.popleft()
        finally:
            self._cancel(outstanding)

    def _window(self, window):
        if window is None:
            window = self.status()["size"]
        return max(1, int(window))

    def _cancel(self, results):
        """Cancels what is left of an iteration that ended early (best effort:
        herdd may be gone, which ends the tasks' reason to exist anyway)."""
        ids = [result.id if isinstance(result, AsyncResult) else result for result in results]
        if ids:
            try:
                self._client.request("cancel", ids=ids)
            except Exception:
                pass

    def imap_unordered(self, command, items, window=None):
        """As :meth:`imap`, but yields each stdout as soon as its task is
        done, whatever the order of ``items``."""
        window = self._window(window)
        items = iter(items)
        done = queue.Queue()
        outstanding = {}
        try:
            while True:
                while len(outstanding) < window:
                    item = next(items, _END)
                    if item is _END:
                        break
                    result = self.submit(command_for(command, item))
                    outstanding[result.id] = result
                    threading.Thread(target=_wait_into, args=(result, done), daemon=True).start()
                if not outstanding:
                    return
                result = done.get()
                del outstanding[result.id]
                yield result.get()
        finally:
            self._cancel(outstanding)

    def map(self, command, items, window=None):
        """As :meth:`imap`, collected into a list (``Pool.map``)."""
        return list(self.imap(command, items, window))

    def status(self):
        """``{"name", "size", "running", "queued", "finished", ...}``."""
        return self._client.request("pool-join", pool=self.name, timeout_ms=0)["pool"]

    def close(self):
        """Refuses submissions from now on (``Pool.close``)."""
        return self._client.request("pool-close", pool=self.name)["pool"]

    def terminate(self):
        """Cancels queued tasks and stops running ones (``Pool.terminate``)."""
        return self._client.request("pool-terminate", pool=self.name)["pool"]

    def join(self, timeout=None):
        """Waits until nothing is queued or running (``Pool.join``); False
        if ``timeout`` (seconds) passed first."""
        report = self._client.waiting_request(
            "pool-join", pool=self.name, timeout_ms=_timeout_ms(timeout)
        )
        return not report["timed_out"]


_END = object()


def _wait_into(result, done):
    """Waits for ``result`` on a connection of its own, then hands it over."""
    try:
        result.wait()
    except Exception:
        pass  # get() raises it again for the caller
    done.put(result)


class AsyncResult:
    """A submitted task (``multiprocessing.pool.AsyncResult``)."""

    def __init__(self, client, task_id):
        self._client = client
        self.id = task_id
        self._final = None

    def __repr__(self):
        return "herd.AsyncResult(id=%d)" % self.id

    def wait(self, timeout=None):
        """Waits until the task has ended, or ``timeout`` seconds."""
        if self._final is not None:
            return
        report = self._client.waiting_request("join", ids=[self.id], timeout_ms=_timeout_ms(timeout))
        task = _only(report, self.id)
        if task["state"] in _ENDED:
            self._final = task

    def ready(self):
        """Whether the task has ended."""
        return self._status()["state"] in _ENDED

    def successful(self):
        """Whether it exited 0; ValueError if it has not ended yet."""
        state = self._status()["state"]
        if state not in _ENDED:
            raise ValueError("task %d is not ready (%s)" % (self.id, state))
        return state == "exited"

    def get(self, timeout=None):
        """Its stdout, once it has exited 0. Raises :class:`herd.TimeoutError`
        after ``timeout`` seconds, :class:`herd.TaskFailed` if it failed or
        was cancelled."""
        self.wait(timeout)
        if self._final is None:
            raise TimeoutError("task %d still running after %ss" % (self.id, timeout))
        if self._final["state"] != "exited":
            stderr = self.output("stderr") if self._final.get("exit") else ""
            raise TaskFailed(_describe(self._final), self._final, stderr)
        return self.output("stdout")

    def output(self, stream="stdout"):
        """What it wrote to ``stream`` so far (herd keeps the first 4 MiB)."""
        return self._client.request("output", id=self.id, stream=stream)["data"]

    def cancel(self):
        """Cancels it if queued or running; whether it was."""
        return self.id in self._client.request("cancel", ids=[self.id])["cancelled"]

    def status(self):
        """The task's TaskStatus: ``id``, ``pool``, ``state``, ``exit``, ..."""
        return self._status()

    def _status(self):
        if self._final is not None:
            return self._final
        report = self._client.request("join", ids=[self.id], timeout_ms=0)
        task = _only(report, self.id)
        if task["state"] in _ENDED:
            self._final = task
        return task


def _only(report, task_id):
    for task in report["tasks"]:
        if task["id"] == task_id:
            return task
    raise NoSuchTask("herdd's reply has no task %d" % task_id)


def _describe(task):
    exit = task.get("exit") or {}
    if "code" in exit:
        why = "exit code %d" % exit["code"]
    elif "signal" in exit:
        why = "killed by %s" % exit["signal"]
    else:
        why = task.get("reason") or task["state"]
    return "task %d (%s) %s: %s" % (task["id"], " ".join(task.get("command", [])), task["state"], why)
