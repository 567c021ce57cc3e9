/*
 * flood: a process that writes log lines as fast as it can (bench/logs
 * compiles it with gcc into a temp dir at run time).
 *
 *   flood [-p] BYTES LINE [FILE]
 *       writes BYTES bytes of LINE-byte lines (LINE - 1 printable bytes and
 *       a newline; BYTES is rounded down to whole lines) to stdout, or to
 *       FILE (created or truncated) when given, in 64 KiB write(2)s; then
 *       exits 0. The lines are built once, so the cost is the writes alone:
 *       the worst case for whoever reads them.
 *       With -p, each line is formatted with snprintf (a sequence number
 *       and a few fields, padded to LINE) into a 64 KiB buffer first, as a
 *       program that logs with printf does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

/* Writes all of buf[0..len) to fd. */
static int write_all(int fd, const char *p, size_t left) {
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            perror("flood: write");
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv) {
    int formatted = argc > 1 && strcmp(argv[1], "-p") == 0;
    if (formatted) {
        argv++;
        argc--;
    }
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: flood [-p] BYTES LINE [FILE]\n");
        return 2;
    }
    long long total = atoll(argv[1]);
    int line = atoi(argv[2]);
    if (total <= 0 || line < 2 || line > CHUNK) {
        fprintf(stderr, "flood: bad BYTES or LINE\n");
        return 2;
    }
    int fd = 1;
    if (argc == 4) {
        fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            perror(argv[3]);
            return 1;
        }
    }
    static char buf[CHUNK];
    int per = CHUNK / line;
    long long lines = total / line;
    if (formatted) {
        long long seq = 0;
        while (lines > 0) {
            long long n = lines < per ? lines : per;
            for (long long i = 0; i < n; i++, seq++) {
                char *at = buf + i * line;
                int k = snprintf(at, (size_t)line, "%lld GET /api/items/%lld status=%d bytes=%lld ",
                                 seq, seq % 9973, 200 + (int)(seq % 3), seq * 7 % 100000);
                if (k < 0 || k > line - 1) k = line - 1;
                memset(at + k, '.', (size_t)(line - 1 - k));
                at[line - 1] = '\n';
            }
            if (write_all(fd, buf, (size_t)(n * line)) < 0) return 1;
            lines -= n;
        }
        return 0;
    }
    for (int i = 0; i < per; i++) {
        memset(buf + i * line, 'a' + i % 26, line - 1);
        buf[i * line + line - 1] = '\n';
    }
    while (lines > 0) {
        long long n = lines < per ? lines : per;
        if (write_all(fd, buf, (size_t)(n * line)) < 0) return 1;
        lines -= n;
    }
    return 0;
}
