/*
 * bare_server: the raw baseline for herd's protocol-level benchmarks
 * (bench/pools and bench/sync compile it with gcc into a temp dir at run time).
 *
 *   bare_server SOCKET_PATH
 *
 * A single-threaded epoll server on a Unix stream socket with herdd's framing
 * (one request line in, one reply line out, requests on a connection
 * answered in order) doing the least work a server can do per request. It
 * keeps one event flag and one semaphore of capacity 1, like the ones herdd
 * owns, and recognises herd's requests by their "cmd" (no JSON parsing, names
 * ignored), so a benchmark sends it exactly the bytes it sends herdd and
 * parses replies of the same shape:
 *
 *   "cmd":"event-wait"   answered when the flag is set (at once if it is)
 *   "cmd":"event-set"    set the flag, answer every waiter, then the setter
 *   "cmd":"event-clear"  clear the flag
 *   "cmd":"sem-acquire"  take the slot, or wait for it in line (FIFO)
 *   "cmd":"sem-release"  give the slot back (to the next in line)
 *   "cmd":"submit"       answered at once with a new id
 *   anything else        answered at once with {"ok":{}}
 *
 * Like herdd, a connection that is waiting is not read from until it is
 * answered, and a connection that closes gives up its slot and its place in
 * line. Prints "ready" on stdout once it listens. Runs until killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

struct conn {
    int open;
    int blocked;           /* waiting for the flag or the slot: not read from */
    size_t len;            /* bytes buffered in buf */
    char buf[LINE_MAX_BYTES];
};

static struct conn **conns; /* by fd */
static int nconns;
static int flag;
static int holder = -1;    /* fd holding the slot */
static int *line_q;        /* FIFO of fds waiting for the slot */
static int q_head, q_len, q_cap;
static int *waiters;       /* fds waiting for the flag */
static int n_waiters, cap_waiters;
static int ep;
static unsigned long long next_id;

#define SET "{\"ok\":{\"event\":{\"name\":\"e\",\"set\":true},\"timed_out\":false}}\n"
#define CLEAR "{\"ok\":{\"event\":{\"name\":\"e\",\"set\":false},\"timed_out\":false}}\n"
#define ACQUIRED "{\"ok\":{\"acquired\":true,\"name\":\"s\"}}\n"
#define RELEASED "{\"ok\":{\"acquired\":false,\"name\":\"s\"}}\n"

/* Whether the request line's "cmd" is verb (requests are compact JSON). */
static int is(const char *line, const char *verb) {
    char key[64];
    snprintf(key, sizeof key, "\"cmd\":\"%s\"", verb);
    return strstr(line, key) != NULL;
}

static void die(const char *what) {
    perror(what);
    exit(111);
}

static void reply(int fd, const char *text) {
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t w = write(fd, text + off, n - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { /* replies are tiny; wait for room */
                usleep(100);
                continue;
            }
            return; /* peer gone: the read side will see it */
        }
        off += (size_t)w;
    }
}

static struct conn *get(int fd) {
    if (fd >= nconns) {
        int n = nconns ? nconns : 1024;
        while (n <= fd) n *= 2;
        conns = realloc(conns, (size_t)n * sizeof *conns);
        if (!conns) die("realloc");
        memset(conns + nconns, 0, (size_t)(n - nconns) * sizeof *conns);
        nconns = n;
    }
    if (!conns[fd]) {
        conns[fd] = calloc(1, sizeof **conns);
        if (!conns[fd]) die("calloc");
    }
    return conns[fd];
}

static void push(int **arr, int *len, int *cap, int fd) {
    if (*len == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *arr = realloc(*arr, (size_t)*cap * sizeof **arr);
        if (!*arr) die("realloc");
    }
    (*arr)[(*len)++] = fd;
}

static void serve(int fd);

static void unblock(int fd) {
    conns[fd]->blocked = 0;
    serve(fd); /* requests that arrived meanwhile */
}

static void give_slot(void) {
    holder = -1;
    while (q_len > 0) {
        int fd = line_q[q_head];
        q_head++;
        q_len--;
        if (fd >= 0 && conns[fd]->open) {
            holder = fd;
            reply(fd, ACQUIRED);
            unblock(fd);
            return;
        }
    }
    q_head = 0;
}

static void close_conn(int fd) {
    struct conn *c = conns[fd];
    c->open = 0;
    c->blocked = 0;
    c->len = 0;
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    for (int i = 0; i < n_waiters; i++)
        if (waiters[i] == fd) waiters[i] = -1;
    for (int i = 0; i < q_len; i++)
        if (line_q[q_head + i] == fd) line_q[q_head + i] = -1;
    close(fd);
    if (holder == fd) give_slot();
}

/* Handles one complete line; returns 1 if the connection is now blocked. */
static int handle(int fd, char *line) {
    if (is(line, "event-wait")) {
        if (flag) {
            reply(fd, SET);
            return 0;
        }
        push(&waiters, &n_waiters, &cap_waiters, fd);
        conns[fd]->blocked = 1;
        return 1;
    }
    if (is(line, "event-set")) {
        flag = 1;
        int *woken = waiters, n = n_waiters;
        waiters = NULL;
        n_waiters = cap_waiters = 0;
        for (int i = 0; i < n; i++) {
            int w = woken[i];
            if (w >= 0 && conns[w]->open) {
                reply(w, SET);
                conns[w]->blocked = 0;
            }
        }
        reply(fd, SET);
        for (int i = 0; i < n; i++) /* serve what the woken ones sent meanwhile */
            if (woken[i] >= 0 && conns[woken[i]]->open && conns[woken[i]]->len)
                serve(woken[i]);
        free(woken);
        return 0;
    }
    if (is(line, "event-clear")) {
        flag = 0;
        reply(fd, CLEAR);
        return 0;
    }
    if (is(line, "sem-acquire")) {
        if (holder < 0) {
            holder = fd;
            reply(fd, ACQUIRED);
            return 0;
        }
        if (line_q && (q_head + q_len == q_cap || q_len == 0)) {
            /* compact before growing */
            memmove(line_q, line_q + q_head, (size_t)q_len * sizeof *line_q);
            q_head = 0;
        }
        int tail = q_head + q_len;
        push(&line_q, &tail, &q_cap, fd);
        q_len++;
        conns[fd]->blocked = 1;
        return 1;
    }
    if (is(line, "sem-release")) {
        if (holder == fd) give_slot();
        reply(fd, RELEASED);
        return 0;
    }
    if (is(line, "submit")) {
        char text[64];
        snprintf(text, sizeof text, "{\"ok\":{\"id\":%llu,\"state\":\"queued\"}}\n", ++next_id);
        reply(fd, text);
        return 0;
    }
    reply(fd, "{\"ok\":{}}\n");
    return 0;
}

/* Answers every complete line buffered for fd, unless it blocks. */
static void serve(int fd) {
    struct conn *c = conns[fd];
    while (c->open && !c->blocked) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (!nl) return;
        *nl = '\0';
        size_t used = (size_t)(nl - c->buf) + 1;
        char line[LINE_MAX_BYTES];
        memcpy(line, c->buf, used);
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        handle(fd, line);
    }
}

static void on_readable(int fd) {
    struct conn *c = conns[fd];
    for (;;) {
        if (c->len == sizeof c->buf) {
            if (c->blocked) return; /* read more once it is answered */
            close_conn(fd);         /* a line longer than the buffer */
            return;
        }
        ssize_t r = read(fd, c->buf + c->len, sizeof c->buf - c->len);
        if (r == 0) {
            close_conn(fd);
            return;
        }
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) close_conn(fd);
            return;
        }
        c->len += (size_t)r;
        serve(fd);
        if (!c->open) return;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: bare_server SOCKET_PATH\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls < 0) die("socket");
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(argv[1]) >= sizeof addr.sun_path) {
        fprintf(stderr, "bare_server: socket path too long\n");
        return 2;
    }
    strcpy(addr.sun_path, argv[1]);
    unlink(argv[1]);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(ls, 4096) < 0) die("listen");
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev) < 0) die("epoll_ctl");
    printf("ready\n");
    fflush(stdout);

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                for (;;) {
                    int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    struct conn *k = get(c);
                    k->open = 1;
                    k->blocked = 0;
                    k->len = 0;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) < 0) die("epoll_ctl");
                }
                continue;
            }
            /* A blocked connection's requests are buffered and answered
             * once it is unblocked; a close is noticed either way. */
            if (fd < nconns && conns[fd] && conns[fd]->open) on_readable(fd);
        }
    }
}
