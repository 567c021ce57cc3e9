"""Shared harness of bench/pools and bench/sync.

Both reuse bench/run's `Bench` (temp dir, herdd in its own process group,
process-group and pid bookkeeping, cleanup on any exit, `bare_spawn time`,
the table) and its helpers, loaded from bench/run itself so that there is one
copy of them. This module adds what the protocol-level figures need: a client
for herd's control protocol, the `bare_server` baseline (bare_server.c), and a
common `main`.
"""

import importlib.machinery
import importlib.util
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

_loader = importlib.machinery.SourceFileLoader("herd_bench_run", os.path.join(HERE, "run"))
_spec = importlib.util.spec_from_loader(_loader.name, _loader)
run = importlib.util.module_from_spec(_spec)
sys.modules[_loader.name] = run
_loader.exec_module(run)

# Re-exported for the scripts.
Bench = run.Bench
BenchError = run.BenchError
log, median, pct, summary = run.log, run.median, run.pct, run.summary
children, stat_fields, start_time = run.children, run.stat_fields, run.start_time
status_field, status_kb, alive = run.status_field, run.status_kb, run.alive
HERDD, HERDCTL, NEW_GROUP = run.HERDD, run.HERDCTL, run.NEW_GROUP


def request(**fields):
    """One request line of herd's protocol, compact JSON (bare_server relies
    on `"cmd":"verb"` without a space)."""
    return (json.dumps({"v": 1, **fields}, separators=(",", ":")) + "\n").encode()


class Client:
    """One connection to herdd (or to bare_server, which answers the same
    requests with replies of the same shape)."""

    def __init__(self, path, timeout=60):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def recv_line(self):
        """One reply line (without the newline). Big replies (a join of
        10,000 tasks is megabytes) are gathered in chunks, each scanned once."""
        nl = self.buf.find(b"\n")
        if nl < 0:
            parts = [self.buf]
            while True:
                try:
                    chunk = self.sock.recv(1 << 16)
                except socket.timeout:
                    raise BenchError(f"no reply within {self.sock.gettimeout():g} s")
                if not chunk:
                    raise BenchError("the server closed the connection")
                k = chunk.find(b"\n")
                if k >= 0:
                    parts.append(chunk[:k])
                    line = b"".join(parts)
                    self.buf = chunk[k + 1:]
                    return line
                parts.append(chunk)
        line, self.buf = self.buf[:nl], self.buf[nl + 1:]
        return line

    def reply(self, allow_error=False):
        r = json.loads(self.recv_line())
        if "error" in r and not allow_error:
            raise BenchError(f"error reply: {r['error']}")
        return r

    def call(self, **fields):
        self.send(request(**fields))
        return self.reply()["ok"]

    def close(self):
        self.sock.close()


def raise_nofile(want):
    """Raises our RLIMIT_NOFILE (soft and hard) to at least want, as far as
    we may; children (herdd, bare_server) inherit it. Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    for new in ((max(want, hard), max(want, hard)), (min(want, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, new)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def all_ticks(pid):
    """utime + stime + cutime + cstime of pid (its own CPU and that of the
    children it reaped), in clock ticks."""
    f = stat_fields(pid)
    return int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])


def own_ticks(pid):
    f = stat_fields(pid)
    return int(f[11]) + int(f[12])


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "-"


def verdict(ok):
    return "PASS" if ok else "MISS"


class SubBench(Bench):
    """A Bench with its own config, an optional environment for herdd, the
    bare_server baseline, and a herdd shutdown check at the end."""

    title = "herd benchmark"

    def __init__(self, quick):
        super().__init__(quick)
        self.bare_sock = os.path.join(self.tmp, "bare.sock")
        self.bare_server = None
        self.herdd_env = {}

    # ------------------------------------------------------------ setup

    def compile_bare(self):
        super().compile_bare()
        cc = os.environ.get("CC", "gcc")
        self.server_bin = os.path.join(self.tmp, "bare_server")
        subprocess.run([cc, "-O2", "-Wall", "-o", self.server_bin,
                        os.path.join(HERE, "bare_server.c")], check=True)

    def config_lines(self):
        raise NotImplementedError

    def write_config(self):
        lines = [
            "[herd]",
            f'socket = "{self.sock}"',
            f'log_dir = "{self.tmp}/log"',
            f'state_dir = "{self.tmp}/state"',
            'shutdown_timeout = "5s"',
            "",
        ] + self.config_lines()
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run([HERDD, "--check-config", "-c", self.config],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"herdd --check-config failed:\n{r.stdout}{r.stderr}")

    def ready(self):
        """Whether herdd is up as the config wants it (override)."""
        return True

    def start_herdd(self):
        env = dict(os.environ, HERD_LOG="warn", **self.herdd_env)
        self.herdd_log = os.path.join(self.tmp, "herdd.log")
        with open(self.herdd_log, "a") as err:  # one log for every herdd of the run
            self.herdd = subprocess.Popen([HERDD, "-c", self.config], env=env,
                                          stdin=subprocess.DEVNULL,
                                          stdout=err, stderr=err, **NEW_GROUP)
        self.owned[self.herdd.pid] = start_time(self.herdd.pid)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            self.check_herdd()
            if os.path.exists(self.sock):
                try:
                    self.status_json()
                    if self.ready():
                        self.remember_children()
                        return
                except (BenchError, json.JSONDecodeError):
                    pass
            time.sleep(0.02)
        raise BenchError("herdd did not come up within 15 s")

    def start_bare_server(self):
        p = self.popen_group([self.server_bin, self.bare_sock],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.helpers.append(p)
        self.owned[p.pid] = start_time(p.pid)
        if p.stdout.readline().strip() != b"ready":
            raise BenchError(f"bare_server did not start: {p.stderr.read().decode()}")
        self.bare_server = p
        return p

    def stop_bare_server(self):
        p = self.bare_server
        p.kill()
        p.wait(timeout=5)
        self.helpers.remove(p)
        self.bare_server = None

    def client(self, herd=True):
        return Client(self.sock if herd else self.bare_sock)

    # ------------------------------------------------------------ end

    def shutdown_herdd(self):
        """herdctl shutdown, timed; checks herdd exits 0 and that nothing it
        started outlived it. Returns the ms herdctl took."""
        self.remember_children()
        [(shut_ms, code)] = self.timed(1, [HERDCTL, "--socket", self.sock, "shutdown"])
        try:
            rc = self.herdd.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise BenchError("herdctl shutdown returned but herdd is still running after 15 s")
        leftovers = [p for p, st in self.owned.items()
                     if st is not None and start_time(p) == st
                     and (self.bare_server is None or p != self.bare_server.pid)]
        log(f"herdctl shutdown: {shut_ms:.1f} ms (exit {code}); herdd exit status {rc}; "
            f"{len(leftovers)} of our processes left")
        if code != 0 or rc != 0:
            self.problems.append(f"shutdown: herdctl exit {code}, herdd exit status {rc}")
        if leftovers:
            self.problems.append(f"{len(leftovers)} processes outlived herdd's shutdown: "
                                 f"{sorted(leftovers)[:10]}")
        self.herdd = None
        return shut_ms

    def print_table(self):
        print(f"\n{self.title}", end="")
        super().print_table()


def main(cls, doc):
    """bench/run's main, for a SubBench class."""
    args = sys.argv[1:]
    if "-h" in args or "--help" in args:
        print(doc.strip())
        return 0
    json_out = None
    if "--json" in args:
        k = args.index("--json")
        if k + 1 >= len(args):
            print("--json needs a FILE", file=sys.stderr)
            return 2
        json_out = args[k + 1]
        del args[k:k + 2]
    unknown = [a for a in args if a not in ("--quick", "--strict")]
    if unknown:
        print(f"{sys.argv[0]}: unknown argument {unknown[0]} (see --help)", file=sys.stderr)
        return 2

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    bench = cls(quick="--quick" in args)
    status = 0
    try:
        bench.run()
        bench.print_table()
        if json_out:
            with open(json_out, "w") as f:
                json.dump({"rows": bench.rows, "raw": bench.raw, "problems": bench.problems},
                          f, indent=1)
        if "--strict" in args and any(r[5] == "MISS" for r in bench.rows):
            status = 1
    except BenchError as e:
        print(f"{sys.argv[0]}: {e}", file=sys.stderr)
        tail = bench.log_tail()
        if tail.strip():
            print(f"herdd log:\n{tail}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print(f"{sys.argv[0]}: interrupted", file=sys.stderr)
        status = 130
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # let cleanup finish
        bench.cleanup()
    return status
