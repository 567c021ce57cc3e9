#!/usr/bin/env python3
"""A web worker behind a socket herd holds (see web-pool.toml).

herd binds the listening socket and passes it as descriptor 3 with
LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES (the systemd convention), so any
number of these workers accept from one socket, and connections wait in the
socket's backlog while a worker restarts: nothing is refused.

On SIGTERM a worker finishes the request in hand, then exits. It tells herd
it is ready with READY=1 on NOTIFY_SOCKET (`ready = "notify"`).

With HEALTH_PORT set, it also answers GET /healthz on that port of
127.0.0.1, its own: herd's `health` probe then checks this very worker, not
whichever one takes a connection from the shared socket.
"""

import http.server
import os
import select
import signal
import socket
import sys
import threading

SD_LISTEN_FDS_START = 3


def listening_socket():
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        sys.exit("LISTEN_PID is not this process: the sockets are not for us")
    if int(os.environ.get("LISTEN_FDS", "0")) < 1:
        sys.exit("no socket passed (LISTEN_FDS)")
    # The family (TCP or Unix) is read from the descriptor itself.
    return socket.socket(fileno=SD_LISTEN_FDS_START)


def notify(message):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify_socket:
        notify_socket.sendto(message.encode(), path)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = "pid={} listen_pid={} fdnames={} version={}\n".format(
            os.getpid(),
            os.environ.get("LISTEN_PID"),
            os.environ.get("LISTEN_FDNAMES"),
            os.environ.get("VERSION", "1"),
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self):
        # A Unix socket's peer has no address.
        return "client"

    def log_message(self, format, *args):
        pass


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


def serve_health():
    port = os.environ.get("HEALTH_PORT")
    if not port:
        return
    server = http.server.HTTPServer(("127.0.0.1", int(port)), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main():
    listener = listening_socket()
    serve_health()
    stopping = []
    # SIGTERM only sets a flag and wakes the select below: a worker never
    # dies between accepting a connection and answering it.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    # Shared with the other workers: whoever is quicker takes a connection.
    listener.setblocking(False)
    notify("READY=1")
    while not stopping:
        readable, _, _ = select.select([listener, wake_read], [], [])
        if listener not in readable:
            continue
        try:
            connection, address = listener.accept()
        except (BlockingIOError, InterruptedError):
            continue
        connection.setblocking(True)
        try:
            Handler(connection, address or ("client", 0), None)
        except OSError:
            pass
        finally:
            connection.close()


if __name__ == "__main__":
    main()
