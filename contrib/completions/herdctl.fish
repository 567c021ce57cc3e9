# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_herdctl_global_optspecs
    string join \n socket= dbus= json timeout= h/help V/version
end

function __fish_herdctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_herdctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_herdctl_using_subcommand
    set -l cmd (__fish_herdctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c herdctl -n "__fish_herdctl_needs_command" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_needs_command" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_needs_command" -l timeout -d 'Give herdd this long (`500ms`, `10s`) to take the connection and to answer, then exit 6 [default: 30s; 0: no limit]. Given before the verb; a verb\'s own `--timeout` (join, event wait, pool join, sem acquire) is how long herdd may wait for what was asked, and this comes on top of it; such waits, start/stop/restart and followed streams have no limit otherwise' -r
complete -c herdctl -n "__fish_herdctl_needs_command" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_needs_command" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_needs_command" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "status" -d 'Show units and their instances, with the memory, CPU time and processes of each running one, and the last and next run of each timer; exit 3 if a named unit is not running'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "start" -d 'Start units or instances, waiting until they are running (or exited, for tasks); a task with a timer runs now'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "stop" -d 'Stop units or instances, waiting until their processes are gone (a timer\'s run under way; the timer goes on)'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "restart" -d 'Stop, then start units or instances again (--rolling: a batch at a time, without downtime)'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "kill" -d 'Send a signal to the process group of every running instance'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "scale" -d 'Change the number of instances of a service at run time'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "shutdown" -d 'Stop everything gracefully (daemon/join semantics); waits until herdd has exited'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "reload" -d 'Re-read the config: start new units, stop removed ones, restart changed ones'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "daemon-reexec" -d 'Re-execute herdd in place, keeping every child (e.g. after installing a new binary); waits until the new herdd answers'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "submit" -d 'Queue a task in a pool and print its id (or, with --from-file, one task per line of a file, in one request)'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "join" -d 'Wait for tasks to end, print how they ended and exit with the task\'s exit code'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "map" -d 'Run CMD once per line of stdin in a pool, `{}` replaced by the line; print the outputs in input order'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "tasks" -d 'List pool tasks: queued, running and recently ended'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "output" -d 'Print a task\'s captured stdout (or stderr)'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "cancel" -d 'Remove queued tasks from their pool; stop running ones'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "pool" -d 'Close, terminate or wait for a task pool'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "sem" -d 'List herd\'s semaphores, or run a command holding a slot of one'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "event" -d 'List, set, clear or wait for herd\'s events'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "events" -d 'Print herd\'s lifecycle events: the recent ones, or with -f also new ones as they happen'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "logs" -d 'Print units\' stdout and stderr from their log files'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "metrics" -d 'Print herd\'s metrics in Prometheus text format: per instance state, restarts, uptime, memory, CPU, processes and health probe verdict; per pool tasks by state, totals and a task duration histogram; semaphores, events, and herdd itself. The same text `[herd] metrics_listen` serves on GET /metrics. With --json: {"text": "..."}'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "top" -d 'A live view of every instance and pool, busiest first: CPU %, memory, processes, state, restarts, uptime; pools with running and queued tasks. Keys: c/m/p/n sort by CPU, memory, processes, name; q or Ctrl-C quits. Not on a terminal, or with -b, plain frames go to stdout'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "completions" -d 'Print a shell completion script on stdout'
complete -c herdctl -n "__fish_herdctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herdctl -n "__fish_herdctl_using_subcommand status" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand status" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand status" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand status" -l no-usage -d 'Leave out what each process costs (MEMORY, CPU, TASKS): herdd then reads no cgroup or /proc file, a quicker answer with many instances'
complete -c herdctl -n "__fish_herdctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand status" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand start" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand start" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand start" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand start" -l no-block -d 'Return as soon as herdd accepted the request instead of waiting'
complete -c herdctl -n "__fish_herdctl_using_subcommand start" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand start" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand stop" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand stop" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand stop" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand stop" -l no-block -d 'Return as soon as herdd accepted the request instead of waiting'
complete -c herdctl -n "__fish_herdctl_using_subcommand stop" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand stop" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand restart" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand restart" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand restart" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand restart" -l no-block -d 'Return as soon as herdd accepted the request instead of waiting'
complete -c herdctl -n "__fish_herdctl_using_subcommand restart" -l rolling -d 'Restart each named service\'s instances a batch of `max_unavailable` at a time, each batch ready before the next; stop at the first that does not become ready within `start_timeout` (exit 1, the rest keep running). On a terminal, each step is printed as it happens. A `daemon-reexec` meanwhile does not stop it'
complete -c herdctl -n "__fish_herdctl_using_subcommand restart" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand restart" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand kill" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand kill" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand kill" -s s -l signal -d 'Signal to send: a name (`SIGHUP`, `HUP`) or a number' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand kill" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand kill" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand kill" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand scale" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand scale" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand scale" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand scale" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand scale" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand shutdown" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand shutdown" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand shutdown" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand shutdown" -l no-block -d 'Return as soon as the shutdown has begun instead of waiting for herdd to exit'
complete -c herdctl -n "__fish_herdctl_using_subcommand shutdown" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand shutdown" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand reload" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand reload" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand reload" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand reload" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand reload" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand daemon-reexec" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand daemon-reexec" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand daemon-reexec" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand daemon-reexec" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand daemon-reexec" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -l name -d 'A label for the task, shown by `tasks`' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -l from-file -d 'Queue one task per line of FILE (`-`: stdin), each line split into words as a shell would (quotes, backslashes; `#` starts a comment; no variables or globs), all in one request; print their ids, one per line, in file order. Nothing is queued if a line cannot be split' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -l timeout -d 'Stop the task once it ran this long (`30s`, `5m`): stop signal, then SIGKILL after the pool\'s `stop_timeout`; it ends `timed out` and `join` exits 124' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -l retries -d 'Run the task again up to N times when it exits non-zero, is killed or times out; every attempt shows in `tasks` and `output --stderr`' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -l retry-delay -d 'Wait this long before the first retry, twice as long before each next' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -l priority -d 'Higher priorities leave the queue first; equal ones in submission order' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -l after -d 'Do not start the task before this long from now (`10s`, `1h`)' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -l unique -d 'While a task of this `--name` is queued or running in the pool, print its id instead of queueing another (submission that may run twice)'
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -l wait -d 'Wait until the task has ended, print how, and exit with its exit code (with --from-file: every task, and the first non-zero exit code)'
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand submit" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand join" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand join" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand join" -l timeout -d 'Give up after this long (`500ms`, `10s`, `2m`) and exit 1' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand join" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand join" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand join" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand map" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand map" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand map" -s j -l jobs -d 'At most N items submitted and not yet printed at once (the pool\'s `size` decides how many of them run; herdd holds their results for this map whatever the pool\'s `keep_finished`)' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand map" -l timeout -d 'Stop the task once it ran this long (`30s`, `5m`): stop signal, then SIGKILL after the pool\'s `stop_timeout`; it ends `timed out` and `join` exits 124' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand map" -l retries -d 'Run the task again up to N times when it exits non-zero, is killed or times out; every attempt shows in `tasks` and `output --stderr`' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand map" -l retry-delay -d 'Wait this long before the first retry, twice as long before each next' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand map" -l priority -d 'Higher priorities leave the queue first; equal ones in submission order' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand map" -l after -d 'Do not start the task before this long from now (`10s`, `1h`)' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand map" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand map" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herdctl -n "__fish_herdctl_using_subcommand map" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand tasks" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand tasks" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand tasks" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand tasks" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand tasks" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand output" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand output" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand output" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand output" -l stderr -d 'Print what the task wrote to stderr instead of stdout'
complete -c herdctl -n "__fish_herdctl_using_subcommand output" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand output" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand cancel" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand cancel" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand cancel" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand cancel" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand cancel" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and not __fish_seen_subcommand_from close terminate join help" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and not __fish_seen_subcommand_from close terminate join help" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and not __fish_seen_subcommand_from close terminate join help" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and not __fish_seen_subcommand_from close terminate join help" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and not __fish_seen_subcommand_from close terminate join help" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and not __fish_seen_subcommand_from close terminate join help" -f -a "close" -d 'Refuse new submissions; queued and running tasks go on'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and not __fish_seen_subcommand_from close terminate join help" -f -a "terminate" -d 'Cancel every queued task and stop every running one'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and not __fish_seen_subcommand_from close terminate join help" -f -a "join" -d 'Wait until nothing is queued or running in the pool'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and not __fish_seen_subcommand_from close terminate join help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from close" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from close" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from close" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from close" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from close" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from terminate" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from terminate" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from terminate" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from terminate" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from terminate" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from join" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from join" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from join" -l timeout -d 'Give up after this long (`500ms`, `10s`, `2m`) and exit 1' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from join" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from join" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from join" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from help" -f -a "close" -d 'Refuse new submissions; queued and running tasks go on'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from help" -f -a "terminate" -d 'Cancel every queued task and stop every running one'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from help" -f -a "join" -d 'Wait until nothing is queued or running in the pool'
complete -c herdctl -n "__fish_herdctl_using_subcommand pool; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and not __fish_seen_subcommand_from list acquire help" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and not __fish_seen_subcommand_from list acquire help" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and not __fish_seen_subcommand_from list acquire help" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and not __fish_seen_subcommand_from list acquire help" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and not __fish_seen_subcommand_from list acquire help" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and not __fish_seen_subcommand_from list acquire help" -f -a "list" -d 'Show each semaphore\'s capacity, holders and waiters'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and not __fish_seen_subcommand_from list acquire help" -f -a "acquire" -d 'Wait for a slot of a semaphore, run CMD holding it, and release it when CMD exits'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and not __fish_seen_subcommand_from list acquire help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from list" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from list" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from list" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from acquire" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from acquire" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from acquire" -l timeout -d 'Give up waiting for a slot after this long (`500ms`, `10s`, `2m`) and exit 1' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from acquire" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from acquire" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from acquire" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from help" -f -a "list" -d 'Show each semaphore\'s capacity, holders and waiters'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from help" -f -a "acquire" -d 'Wait for a slot of a semaphore, run CMD holding it, and release it when CMD exits'
complete -c herdctl -n "__fish_herdctl_using_subcommand sem; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and not __fish_seen_subcommand_from list set clear wait help" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and not __fish_seen_subcommand_from list set clear wait help" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and not __fish_seen_subcommand_from list set clear wait help" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and not __fish_seen_subcommand_from list set clear wait help" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and not __fish_seen_subcommand_from list set clear wait help" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and not __fish_seen_subcommand_from list set clear wait help" -f -a "list" -d 'Show each event and whether it is set'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and not __fish_seen_subcommand_from list set clear wait help" -f -a "set" -d 'Set an event (creating it if needed); wakes its waiters and the units gated on it'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and not __fish_seen_subcommand_from list set clear wait help" -f -a "clear" -d 'Clear an event (creating it if needed)'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and not __fish_seen_subcommand_from list set clear wait help" -f -a "wait" -d 'Wait until an event is set; exit 0 when it is, 1 on timeout'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and not __fish_seen_subcommand_from list set clear wait help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from list" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from list" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from list" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from set" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from set" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from set" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from set" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from clear" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from clear" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from clear" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from clear" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from clear" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from wait" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from wait" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from wait" -l timeout -d 'Give up after this long (`500ms`, `10s`, `2m`) and exit 1' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from wait" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from wait" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from wait" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from help" -f -a "list" -d 'Show each event and whether it is set'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from help" -f -a "set" -d 'Set an event (creating it if needed); wakes its waiters and the units gated on it'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from help" -f -a "clear" -d 'Clear an event (creating it if needed)'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from help" -f -a "wait" -d 'Wait until an event is set; exit 0 when it is, 1 on timeout'
complete -c herdctl -n "__fish_herdctl_using_subcommand event; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herdctl -n "__fish_herdctl_using_subcommand events" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand events" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand events" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand events" -s f -l follow -d 'After the recent events, keep printing new ones until interrupted'
complete -c herdctl -n "__fish_herdctl_using_subcommand events" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herdctl -n "__fish_herdctl_using_subcommand events" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand logs" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand logs" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand logs" -s n -l lines -d 'Show only the last N lines (all kept lines by default; 10 with -f)' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand logs" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand logs" -s f -l follow -d 'After the last lines, keep printing new ones until interrupted'
complete -c herdctl -n "__fish_herdctl_using_subcommand logs" -s t -l timestamps -d 'Start each line with the time herdd read it (UTC)'
complete -c herdctl -n "__fish_herdctl_using_subcommand logs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c herdctl -n "__fish_herdctl_using_subcommand logs" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand metrics" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand metrics" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand metrics" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand metrics" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand metrics" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand top" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand top" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand top" -s n -l iterations -d 'Stop after N frames (default: until quit or interrupted)' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand top" -s d -l delay -d 'Seconds between frames (fractions allowed)' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand top" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand top" -s b -l batch -d 'Batch mode: print plain text frames to stdout, no screen handling'
complete -c herdctl -n "__fish_herdctl_using_subcommand top" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand top" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand completions" -l socket -d 'herdd\'s control socket [default: /run/herd/herd.sock as root, $XDG_RUNTIME_DIR/herd/herd.sock otherwise]' -r -F
complete -c herdctl -n "__fish_herdctl_using_subcommand completions" -l dbus -d 'Talk to herdd over D-Bus instead of the socket: on the system bus (`--dbus` alone), the session bus, or the bus at ADDRESS' -r
complete -c herdctl -n "__fish_herdctl_using_subcommand completions" -l json -d 'Print one JSON document on stdout instead of human output'
complete -c herdctl -n "__fish_herdctl_using_subcommand completions" -s h -l help -d 'Print help'
complete -c herdctl -n "__fish_herdctl_using_subcommand completions" -s V -l version -d 'Print version'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "status" -d 'Show units and their instances, with the memory, CPU time and processes of each running one, and the last and next run of each timer; exit 3 if a named unit is not running'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "start" -d 'Start units or instances, waiting until they are running (or exited, for tasks); a task with a timer runs now'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "stop" -d 'Stop units or instances, waiting until their processes are gone (a timer\'s run under way; the timer goes on)'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "restart" -d 'Stop, then start units or instances again (--rolling: a batch at a time, without downtime)'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "kill" -d 'Send a signal to the process group of every running instance'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "scale" -d 'Change the number of instances of a service at run time'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "shutdown" -d 'Stop everything gracefully (daemon/join semantics); waits until herdd has exited'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "reload" -d 'Re-read the config: start new units, stop removed ones, restart changed ones'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "daemon-reexec" -d 'Re-execute herdd in place, keeping every child (e.g. after installing a new binary); waits until the new herdd answers'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "submit" -d 'Queue a task in a pool and print its id (or, with --from-file, one task per line of a file, in one request)'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "join" -d 'Wait for tasks to end, print how they ended and exit with the task\'s exit code'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "map" -d 'Run CMD once per line of stdin in a pool, `{}` replaced by the line; print the outputs in input order'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "tasks" -d 'List pool tasks: queued, running and recently ended'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "output" -d 'Print a task\'s captured stdout (or stderr)'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "cancel" -d 'Remove queued tasks from their pool; stop running ones'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "pool" -d 'Close, terminate or wait for a task pool'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "sem" -d 'List herd\'s semaphores, or run a command holding a slot of one'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "event" -d 'List, set, clear or wait for herd\'s events'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "events" -d 'Print herd\'s lifecycle events: the recent ones, or with -f also new ones as they happen'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "logs" -d 'Print units\' stdout and stderr from their log files'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "metrics" -d 'Print herd\'s metrics in Prometheus text format: per instance state, restarts, uptime, memory, CPU, processes and health probe verdict; per pool tasks by state, totals and a task duration histogram; semaphores, events, and herdd itself. The same text `[herd] metrics_listen` serves on GET /metrics. With --json: {"text": "..."}'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "top" -d 'A live view of every instance and pool, busiest first: CPU %, memory, processes, state, restarts, uptime; pools with running and queued tasks. Keys: c/m/p/n sort by CPU, memory, processes, name; q or Ctrl-C quits. Not on a terminal, or with -b, plain frames go to stdout'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "completions" -d 'Print a shell completion script on stdout'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart kill scale shutdown reload daemon-reexec submit join map tasks output cancel pool sem event events logs metrics top completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and __fish_seen_subcommand_from pool" -f -a "close" -d 'Refuse new submissions; queued and running tasks go on'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and __fish_seen_subcommand_from pool" -f -a "terminate" -d 'Cancel every queued task and stop every running one'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and __fish_seen_subcommand_from pool" -f -a "join" -d 'Wait until nothing is queued or running in the pool'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and __fish_seen_subcommand_from sem" -f -a "list" -d 'Show each semaphore\'s capacity, holders and waiters'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and __fish_seen_subcommand_from sem" -f -a "acquire" -d 'Wait for a slot of a semaphore, run CMD holding it, and release it when CMD exits'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and __fish_seen_subcommand_from event" -f -a "list" -d 'Show each event and whether it is set'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and __fish_seen_subcommand_from event" -f -a "set" -d 'Set an event (creating it if needed); wakes its waiters and the units gated on it'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and __fish_seen_subcommand_from event" -f -a "clear" -d 'Clear an event (creating it if needed)'
complete -c herdctl -n "__fish_herdctl_using_subcommand help; and __fish_seen_subcommand_from event" -f -a "wait" -d 'Wait until an event is set; exit 0 when it is, 1 on timeout'
