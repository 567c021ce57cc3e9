/*
 * flood: a process that writes log lines as fast as it can (bench/logs
 * compiles it with gcc into a temp dir at run time).
 *
 *   flood BYTES LINE [FILE]
 *       writes BYTES bytes of LINE-byte lines (LINE - 1 printable bytes and
 *       a newline; BYTES is rounded down to whole lines) to stdout, or to
 *       FILE (created or truncated) when given, in 64 KiB write(2)s; then
 *       exits 0. The lines are built once, so the cost is the writes alone:
 *       the worst case for whoever reads them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: flood BYTES LINE [FILE]\n");
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
    for (int i = 0; i < per; i++) {
        memset(buf + i * line, 'a' + i % 26, line - 1);
        buf[i * line + line - 1] = '\n';
    }
    long long lines = total / line;
    while (lines > 0) {
        long long n = lines < per ? lines : per;
        const char *p = buf;
        size_t left = (size_t)(n * line);
        while (left > 0) {
            ssize_t w = write(fd, p, left);
            if (w < 0) {
                if (errno == EINTR) continue;
                perror("flood: write");
                return 1;
            }
            p += w;
            left -= (size_t)w;
        }
        lines -= n;
    }
    return 0;
}
