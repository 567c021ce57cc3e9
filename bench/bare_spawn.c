/*
 * bare_spawn: the raw baselines for herd's benchmark (bench/run compiles it
 * with gcc into a temp dir at run time).
 *
 *   bare_spawn spawn N [--confirm] -- PROG ARGS...
 *       fork+execv N children in a loop and print, on stdout, two numbers:
 *       the nanoseconds from before the first fork until the last fork
 *       returned in the parent, and until every child had exec'd (all
 *       children share the write end of one CLOEXEC pipe, which reaches EOF
 *       once the last of them has exec'd or died; the parent closes its own
 *       copy after the loop). The second is "all running" in herd's sense:
 *       herdd reports an instance running once its exec has happened.
 *       With --confirm the parent also waits, per child, until its exec
 *       succeeded (a CLOEXEC pipe of its own reaching EOF) before the next
 *       fork -- which is what a supervisor that spawns one at a time does.
 *       Then SIGKILLs every child and reaps them all (not timed).
 *       Each child sets PR_SET_PDEATHSIG (as herdd does for its daemon
 *       services) so that none outlives bare_spawn if it is killed midway.
 *
 *   bare_spawn time N [--stdin FILE] -- PROG ARGS...
 *       run PROG N times one after another (stdin/stdout/stderr on /dev/null;
 *       with --stdin, stdin reads FILE from its start on every run),
 *       printing one line per run: "<ns> <exit status>", the wall time from
 *       before fork until waitpid returned. (The child also sets
 *       PR_SET_PDEATHSIG, so it does not outlive bare_spawn.)
 *
 *   bare_spawn supervise -- PROG ARGS...
 *       a minimal supervisor: fork+exec PROG (with PR_SET_PDEATHSIG, as herdd
 *       does for daemon services), block in waitpid, and restart it at once
 *       whenever it exits. SIGTERM/SIGINT: kill the child, reap it, exit 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(111);
}

static void usage(void) {
    fprintf(stderr,
            "usage: bare_spawn spawn N [--confirm] -- PROG ARGS...\n"
            "       bare_spawn time N [--stdin FILE] -- PROG ARGS...\n"
            "       bare_spawn supervise -- PROG ARGS...\n");
    exit(2);
}

/* Index of the argument after "--", or usage error. */
static int after_dashes(int argc, char **argv, int from) {
    for (int i = from; i < argc; i++)
        if (strcmp(argv[i], "--") == 0) {
            if (i + 1 >= argc) usage();
            return i + 1;
        }
    usage();
    return -1;
}

/* In a child before exec: default SIGPIPE again (main() ignores it, and
 * ignored signals survive exec), and die with the parent (pid `parent`). */
static void die_with_parent(pid_t parent) {
    signal(SIGPIPE, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent) _exit(1);
}

static int spawn_mode(int argc, char **argv) {
    if (argc < 3) usage();
    int n = atoi(argv[2]);
    int confirm = 0;
    for (int i = 3; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--confirm") == 0) confirm = 1;
    int cmd = after_dashes(argc, argv, 3);
    char **child_argv = argv + cmd;
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    if (!pids) die("calloc");
    pid_t parent = getpid();
    int all_execd[2];
    if (pipe2(all_execd, O_CLOEXEC) < 0) die("pipe2");

    long long t0 = now_ns();
    for (int i = 0; i < n; i++) {
        int fds[2] = {-1, -1};
        if (confirm && pipe2(fds, O_CLOEXEC) < 0) die("pipe2");
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            die_with_parent(parent);
            execv(child_argv[0], child_argv);
            _exit(127);
        }
        pids[i] = pid;
        if (confirm) {
            close(fds[1]);
            char c;
            while (read(fds[0], &c, 1) < 0 && errno == EINTR) {
            }
            close(fds[0]);
        }
    }
    long long t1 = now_ns();
    close(all_execd[1]);
    char c;
    ssize_t got;
    while ((got = read(all_execd[0], &c, 1)) < 0 && errno == EINTR) {
    }
    if (got != 0) die("read of the exec pipe");
    long long t2 = now_ns();
    printf("%lld %lld\n", t1 - t0, t2 - t0);
    fflush(stdout);

    for (int i = 0; i < n; i++) kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR) {
        }
    return 0;
}

static int time_mode(int argc, char **argv) {
    if (argc < 3) usage();
    int n = atoi(argv[2]);
    int cmd = after_dashes(argc, argv, 3);
    char **child_argv = argv + cmd;
    const char *input = NULL;
    for (int i = 3; i + 1 < cmd; i++)
        if (strcmp(argv[i], "--stdin") == 0) input = argv[i + 1];
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) die("/dev/null");
    int in = input ? open(input, O_RDONLY | O_CLOEXEC) : devnull;
    if (in < 0) die(input);
    pid_t parent = getpid();
    for (int i = 0; i < n; i++) {
        if (input && lseek(in, 0, SEEK_SET) < 0) die("lseek");
        long long t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            die_with_parent(parent);
            dup2(in, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
            execvp(child_argv[0], child_argv);
            _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
            if (errno != EINTR) die("waitpid");
        long long t1 = now_ns();
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        printf("%lld %d\n", t1 - t0, code);
    }
    return 0;
}

static volatile sig_atomic_t stopping = 0;
static void on_stop(int sig) {
    (void)sig;
    stopping = 1;
}

static int supervise_mode(int argc, char **argv) {
    int cmd = after_dashes(argc, argv, 2);
    char **child_argv = argv + cmd;
    pid_t parent = getpid();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop; /* no SA_RESTART: waitpid returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pid_t child = -1;
    while (!stopping) {
        if (child < 0) {
            child = fork();
            if (child < 0) die("fork");
            if (child == 0) {
                die_with_parent(parent);
                execv(child_argv[0], child_argv);
                _exit(127);
            }
        }
        if (waitpid(child, NULL, 0) == child) child = -1;
    }
    if (child > 0) {
        kill(child, SIGKILL);
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    /* A reader that went away must not stop us from killing our children. */
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(argv[1], "spawn") == 0) return spawn_mode(argc, argv);
    if (strcmp(argv[1], "time") == 0) return time_mode(argc, argv);
    if (strcmp(argv[1], "supervise") == 0) return supervise_mode(argc, argv);
    usage();
    return 2;
}
