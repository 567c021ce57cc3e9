"""The client against a real herdd: ``$HERDD`` (default: the workspace's
target/debug/herdd), started on a config of the test's own in a temp dir."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
sys.path.insert(0, PACKAGE_ROOT)

import herd  # noqa: E402

DEADLINE = 15.0

CONFIG = """
[herd]
socket = "{dir}/herd.sock"
state_dir = "{dir}/state"
log_dir = "{dir}/log"
shutdown_timeout = "3s"

[pool.convert]
size = 2

[semaphore.disk]
capacity = 1

[event.go]

[service.web]
command = ["/bin/sleep", "1000"]
"""


def herdd_path():
    path = os.environ.get("HERDD") or os.path.join(PACKAGE_ROOT, "..", "..", "target", "debug", "herdd")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest("no herdd at %s: build it (cargo build) or set HERDD" % path)
    return path


def wait_until(what, check):
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > DEADLINE:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


class HerdTest(unittest.TestCase):
    """One herdd for the class, in its own temp dir."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="herd-python-")
        os.chmod(cls.dir, 0o755)  # other users reach the socket (permission test)
        cls.socket = os.path.join(cls.dir, "herd.sock")
        config = os.path.join(cls.dir, "herd.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(dir=cls.dir))
        cls.log = open(os.path.join(cls.dir, "herdd.log"), "w")
        cls.daemon = subprocess.Popen(
            [herdd_path(), "--config", config],
            stdin=subprocess.DEVNULL,
            stdout=cls.log,
            stderr=cls.log,
        )
        wait_until("herdd's socket", lambda: cls._answers())
        cls.client = herd.connect(cls.socket)

    @classmethod
    def _answers(cls):
        if cls.daemon.poll() is not None:
            raise AssertionError("herdd exited: " + open(cls.log.name).read())
        try:
            herd.connect(cls.socket).close()
            return True
        except herd.Unreachable:
            return False

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.daemon.send_signal(signal.SIGTERM)
        try:
            cls.daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cls.daemon.kill()
            cls.daemon.wait()
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def holders(self):
        listing = self.client.request("sem-list")["semaphores"]
        return [s for s in listing if s["name"] == "disk"][0]["holders"]


class Connecting(unittest.TestCase):
    def test_a_socket_without_herdd_raises_unreachable_naming_it(self):
        missing = os.path.join(tempfile.gettempdir(), "no-herd-here-%d.sock" % os.getpid())
        with self.assertRaises(herd.Unreachable) as caught:
            herd.connect(missing)
        self.assertIn(missing, str(caught.exception))
        self.assertIsInstance(caught.exception, ConnectionError)
        self.assertEqual(caught.exception.code, "unreachable")

    def test_the_default_socket_follows_herd_socket(self):
        os.environ["HERD_SOCKET"] = "/x/y.sock"
        try:
            self.assertEqual(herd.default_socket(), "/x/y.sock")
        finally:
            del os.environ["HERD_SOCKET"]


class Pools(HerdTest):
    def test_submit_returns_an_async_result_with_the_tasks_stdout(self):
        result = self.client.pool("convert").submit(["/bin/sh", "-c", "echo converted $0", "a.png"])
        self.assertEqual(result.get(timeout=DEADLINE), "converted a.png\n")
        self.assertTrue(result.ready())
        self.assertTrue(result.successful())

    def test_a_failed_task_raises_task_failed_from_get(self):
        result = self.client.pool("convert").submit(["/bin/sh", "-c", "echo oops >&2; exit 3"])
        with self.assertRaises(herd.TaskFailed) as caught:
            result.get(timeout=DEADLINE)
        self.assertEqual(caught.exception.returncode, 3)
        self.assertEqual(caught.exception.stderr, "oops\n")
        self.assertIn("exit code 3", str(caught.exception))
        self.assertFalse(result.successful())

    def test_get_with_a_timeout_raises_timeout_error_and_cancel_ends_it(self):
        result = self.client.pool("convert").submit(["/bin/sleep", "1000"])
        with self.assertRaises(herd.TimeoutError):
            result.get(timeout=0.2)
        self.assertFalse(result.ready())
        with self.assertRaises(ValueError):
            result.successful()
        self.assertTrue(result.cancel())
        with self.assertRaises(herd.TaskFailed):
            result.get(timeout=DEADLINE)

    def test_submit_many_queues_every_command_in_one_request(self):
        pool = self.client.pool("convert")
        results = pool.submit_many([["/bin/echo", str(n)] for n in range(5)])
        self.assertEqual([r.get(timeout=DEADLINE) for r in results], ["%d\n" % n for n in range(5)])
        with self.assertRaises(herd.BadRequest):
            pool.submit_many([["/bin/true"], []])

    def test_map_keeps_the_order_of_the_items(self):
        # Later items finish first: the results still come in input order.
        template = ["/bin/sh", "-c", "sleep 0.$((3 - $0)); echo $0", "{}"]
        outputs = self.client.pool("convert").map(template, [1, 2, 3])
        self.assertEqual(outputs, ["1\n", "2\n", "3\n"])

    def test_imap_streams_with_a_window_over_an_endless_iterator(self):
        def naturals():
            n = 0
            while True:
                n += 1
                yield n

        results = self.client.pool("convert").imap(["/bin/echo"], naturals(), window=2)
        self.assertEqual([next(results) for _ in range(5)], ["%d\n" % n for n in range(1, 6)])
        results.close()
        # Closing it cancelled what was outstanding: nothing of it stays queued.
        wait_until(
            "the outstanding tasks to end",
            lambda: all(t["state"] not in ("queued", "running") for t in self.client.tasks("convert")),
        )

    def test_imap_unordered_yields_what_ends_first(self):
        # "slow" never ends on its own: only an unordered iterator yields "fast".
        command = ["/bin/sh", "-c", "[ $0 = slow ] && exec sleep 1000; echo $0", "{}"]
        results = self.client.pool("convert").imap_unordered(command, ["slow", "fast"], window=2)
        self.assertEqual(next(results), "fast\n")
        results.close()
        wait_until(
            "slow to be cancelled",
            lambda: all(t["state"] not in ("queued", "running") for t in self.client.tasks("convert")),
        )

    def test_a_failing_item_raises_from_map(self):
        with self.assertRaises(herd.TaskFailed):
            self.client.pool("convert").map(["/bin/sh", "-c", "exit $0"], [0, 4, 0])

    def test_an_unknown_pool_raises_no_such_pool_naming_it(self):
        with self.assertRaises(herd.NoSuchPool) as caught:
            self.client.pool("nope").submit(["/bin/true"])
        self.assertIn("nope", str(caught.exception))
        self.assertEqual(caught.exception.code, "no_such_pool")
        self.assertIsInstance(caught.exception, herd.HerdError)

    def test_a_command_must_be_a_list(self):
        with self.assertRaises(TypeError):
            self.client.pool("convert").submit("echo hi")


class Semaphores(HerdTest):
    def test_the_context_manager_holds_a_slot_for_the_block(self):
        with self.client.semaphore("disk"):
            self.assertEqual(len(self.holders()), 1)
            self.assertFalse(self.client.semaphore("disk").acquire(timeout=0.1))
        self.assertEqual(self.holders(), [])

    def test_the_slot_is_released_when_the_holding_process_dies(self):
        script = textwrap.dedent(
            """
            import sys, time
            sys.path.insert(0, %r)
            import herd
            client = herd.connect(%r)
            client.semaphore("disk").acquire()
            print("held", flush=True)
            time.sleep(1000)
            """
            % (PACKAGE_ROOT, self.socket)
        )
        holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        try:
            self.assertEqual(holder.stdout.readline(), b"held\n")
            self.assertEqual(len(self.holders()), 1)
        finally:
            holder.kill()
            holder.wait()
            holder.stdout.close()
        wait_until("the slot to be released", lambda: self.holders() == [])
        self.assertTrue(self.client.semaphore("disk").acquire(blocking=False))
        self.client.semaphore("disk").release()
        self.assertEqual(self.holders(), [])


class Events(HerdTest):
    def test_set_wait_clear_is_set(self):
        event = self.client.event("go")
        event.clear()
        self.assertFalse(event.is_set())
        self.assertFalse(event.wait(timeout=0.1))
        event.set()
        self.assertTrue(event.is_set())
        self.assertTrue(event.wait(timeout=DEADLINE))
        event.clear()
        self.assertFalse(event.is_set())

    def test_the_event_stream_follows(self):
        import threading

        seen = []

        def follow():
            stream = self.client.events(follow=True)
            for event in stream:
                if event.get("type") == "event_changed" and event.get("event") == "stream-test":
                    seen.append(event)
                    break
            stream.close()

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        self.client.event("stream-test").set()
        follower.join(DEADLINE)
        self.assertFalse(follower.is_alive(), "the stream did not show the event")
        self.assertEqual(seen[0]["set"], True)
        self.assertIn("time", seen[0])


class Status(HerdTest):
    def test_status_lists_units(self):
        wait_until(
            "web to run",
            lambda: self.client.status("web")["units"][0]["state"] == "running",
        )
        units = self.client.status()["units"]
        self.assertEqual([u["name"] for u in units], ["web"])

    def test_an_unknown_unit_raises_no_such_unit(self):
        with self.assertRaises(herd.NoSuchUnit) as caught:
            self.client.status("nope")
        self.assertIn("nope", str(caught.exception))


class Permissions(HerdTest):
    def test_another_user_may_read_but_not_control(self):
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            self.skipTest("needs root and setpriv to run a client as nobody")
        # A copy of the package that nobody can read, wherever the sources are.
        package = os.path.join(self.dir, "package")
        if not os.path.exists(package):
            shutil.copytree(os.path.join(PACKAGE_ROOT, "herd"), os.path.join(package, "herd"))
            for root, dirs, files in os.walk(package):
                os.chmod(root, 0o755)
                for name in files:
                    os.chmod(os.path.join(root, name), 0o644)
        script = textwrap.dedent(
            """
            import sys
            sys.path.insert(0, %r)
            import herd
            client = herd.connect(%r)
            client.status()
            try:
                client.event("go").set()
            except herd.PermissionDenied as err:
                print("denied:", err)
            try:
                herd.connect(%r)
            except herd.PermissionDenied as err:
                print("connect denied:", err)
            """
            % (package, self.socket, self.private_socket())
        )
        # The system's python3 where there is one: nobody may not reach ours.
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        out = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", python, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("denied:", out.stdout)
        self.assertIn("event-set", out.stdout)
        self.assertIn("connect denied: cannot connect to herdd at %s" % self.private_socket(), out.stdout)

    def private_socket(self):
        """A socket path in a directory only root may enter."""
        private = os.path.join(self.dir, "private")
        os.makedirs(private, mode=0o700, exist_ok=True)
        return os.path.join(private, "herd.sock")


if __name__ == "__main__":
    unittest.main()
