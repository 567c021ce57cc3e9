/*
 * bare_client: the C baseline for `herdctl status` as a whole process
 * (bench/ctl compiles it with gcc into a temp dir at run time).
 *
 *   bare_client SOCKET [REQUEST]
 *       connect to herd's control socket, send one request line (default
 *       the very line `herdctl status` sends), read the reply line and write
 *       it to stdout unformatted. Exit 0 if the reply is `{"ok": ...}`, 1 if
 *       it is anything else, 6 if the socket cannot be reached (as herdctl).
 *
 * The same socket round trip as herdctl, with nothing around it: no
 * argument parsing beyond argv, no JSON decoding, no table. It is what any
 * client must pay to ask herdd, so herdctl's cost over it is herdctl's own.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* herdctl status's request line, byte for byte. */
static const char STATUS[] = "{\"cmd\":\"status\",\"names\":[],\"v\":1}\n";

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bare_client SOCKET [REQUEST]\n");
        return 2;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof addr.sun_path) {
        fprintf(stderr, "bare_client: socket path too long\n");
        return 2;
    }
    strcpy(addr.sun_path, argv[1]);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("bare_client: connect");
        return 6;
    }
    const char *req = argc == 3 ? argv[2] : STATUS;
    if (write_all(fd, req, strlen(req)) < 0) {
        perror("bare_client: write");
        return 6;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) return 1;
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) return 1;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            perror("bare_client: read");
            return 1;
        }
        if (n == 0) break;
        /* Only the bytes just read can hold the end of the line. */
        int done = memchr(buf + len, '\n', (size_t)n) != NULL;
        len += (size_t)n;
        if (done) break;
    }
    close(fd);
    if (write_all(1, buf, len) < 0) return 1;
    return len > 6 && memcmp(buf, "{\"ok\":", 6) == 0 ? 0 : 1;
}
