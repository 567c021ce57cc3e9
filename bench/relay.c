/*
 * relay: the least a log capturer must do, in C (bench/logs compiles it
 * with gcc into a temp dir at run time) -- the floor for herdd's figure.
 *
 *   relay FILE -- PROG ARGS...
 *       runs PROG with its stdout on a pipe (grown to 1 MiB, as herdd grows
 *       a busy one), reads it 256 KiB at a time and appends each line to
 *       FILE with the prefix herdd writes ("2026-11-29T17:00:00.123Z stdout
 *       ", the time taken once per read), keeping an unfinished line for
 *       the next read; exits with PROG's status once the pipe is at EOF.
 *       No event loop, no other pipes, no rotation, one process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READ (256 * 1024)
#define PREFIX 32

static char in[READ];
static char out[READ * 2 + 2 * 65536];
static char partial[65536 * 2];
static size_t partial_len;

static void write_all(int fd, const char *p, size_t left) {
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            perror("relay: write");
            exit(1);
        }
        p += w;
        left -= (size_t)w;
    }
}

static void stamp(char *prefix) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(prefix, 96, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ stdout ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, ts.tv_nsec / 1000000);
}

int main(int argc, char **argv) {
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: relay FILE -- PROG ARGS...\n");
        return 2;
    }
    int file = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0640);
    if (file < 0) {
        perror(argv[1]);
        return 1;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        perror("pipe2");
        return 1;
    }
    fcntl(p[0], F_SETPIPE_SZ, 1024 * 1024);
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        dup2(p[1], 1);
        execv(argv[3], argv + 3);
        _exit(127);
    }
    close(p[1]);
    char prefix[96];
    for (;;) {
        ssize_t n = read(p[0], in, READ);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        stamp(prefix);
        char *o = out, *s = in, *end = in + n;
        char *nl;
        while ((nl = memchr(s, '\n', (size_t)(end - s))) != NULL) {
            memcpy(o, prefix, PREFIX);
            o += PREFIX;
            if (partial_len) {
                memcpy(o, partial, partial_len);
                o += partial_len;
                partial_len = 0;
            }
            size_t len = (size_t)(nl - s) + 1;
            memcpy(o, s, len);
            o += len;
            s = nl + 1;
        }
        size_t rest = (size_t)(end - s);
        if (rest && partial_len + rest <= sizeof partial) {
            memcpy(partial + partial_len, s, rest);
            partial_len += rest;
        }
        write_all(file, out, (size_t)(o - out));
    }
    int status;
    if (waitpid(child, &status, 0) < 0) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
