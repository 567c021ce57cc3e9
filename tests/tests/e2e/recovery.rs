//! Nothing lost: `daemon-reexec` (also onto a new binary) and recovery after
//! herdd is SIGKILLed.

use crate::harness::*;
use std::collections::BTreeMap;

const SETUP: &str = r#"
[semaphore.lock]
capacity = 1

[event.ready]

[service.web]
command = ["/bin/sleep", "1000"]
instances = 20

[service.keeper]
command = ["/bin/sleep", "1000"]
semaphores = ["lock"]
daemon = false

[pool.jobs]
size = 1
"#;

/// Everything that must survive: every instance's pid and state, every task's id and state.
fn fingerprint(herd: &Herd) -> BTreeMap<String, (String, Option<u64>)> {
    let mut all = BTreeMap::new();
    for instance in herd.instances() {
        all.insert(
            instance["name"].as_str().unwrap().to_string(),
            (
                instance["state"].as_str().unwrap().to_string(),
                instance["pid"].as_u64(),
            ),
        );
    }
    let tasks: serde_json::Value = serde_json::from_str(&herd.ok(&["--json", "tasks"])).unwrap();
    for task in tasks["tasks"].as_array().unwrap() {
        all.insert(
            format!("task {}", task["id"]),
            (
                task["state"].as_str().unwrap().to_string(),
                task["pid"].as_u64(),
            ),
        );
    }
    all
}

fn holders(herd: &Herd) -> Vec<String> {
    let list: serde_json::Value =
        serde_json::from_str(&herd.ok(&["--json", "sem", "list"])).unwrap();
    list["semaphores"][0]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect()
}

fn event_is_set(herd: &Herd) -> bool {
    let list: serde_json::Value =
        serde_json::from_str(&herd.ok(&["--json", "event", "list"])).unwrap();
    list["events"][0]["set"] == true
}

/// The common setup: 20 instances, a running task (that finishes with 3 once
/// `$DIR/go` exists), a queued task, a held slot, a set event.
fn set_up(herd: &Herd) -> (u64, u64) {
    herd.wait_for("everything up", |h| {
        h.instances().iter().all(|i| i["state"] == "running")
    });
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.02; done; echo done; exit 3",
        herd.path("go").display()
    );
    let running: u64 = herd
        .ok(&["submit", "jobs", "--", "/bin/sh", "-c", &script])
        .trim()
        .parse()
        .unwrap();
    let queued: u64 = herd
        .ok(&["submit", "jobs", "--", "/bin/sh", "-c", "echo second"])
        .trim()
        .parse()
        .unwrap();
    herd.ok(&["event", "set", "ready"]);
    assert_eq!(holders(herd), ["keeper"]);
    (running, queued)
}

fn reexec_keeps_everything(herd: &Herd) {
    let (running, queued) = set_up(herd);
    let before = fingerprint(herd);
    let daemon = herd.daemon_pid();
    herd.ok(&["daemon-reexec"]);
    assert_eq!(fingerprint(herd), before, "same pids, states and task ids");
    assert_eq!(holders(herd), ["keeper"]);
    assert!(event_is_set(herd));
    assert_eq!(herd.daemon_pid(), daemon);
    // The running task is still herdd's child: its real exit code and output are seen.
    std::fs::write(herd.path("go"), "").unwrap();
    let out = herd.ctl(&["join", &running.to_string(), &queued.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert_eq!(herd.ok(&["output", &running.to_string()]), "done\n");
    assert_eq!(herd.ok(&["output", &queued.to_string()]), "second\n");
}

#[test]
fn daemon_reexec_keeps_every_pid_state_id_slot_and_event() {
    let herd = Herd::start(SETUP);
    reexec_keeps_everything(&herd);
}

#[test]
fn daemon_reexec_onto_a_new_binary_on_disk() {
    let mut herd = Herd::configure(SETUP);
    let installed = herd.path("herdd");
    std::fs::copy(bin("herdd"), &installed).unwrap();
    herd.herdd = installed.clone();
    let herd = herd.launch();
    let exe = |herd: &Herd| std::fs::read_link(format!("/proc/{}/exe", herd.daemon_pid())).unwrap();
    // Install a "new version": a new file renamed over the old path.
    let staged = herd.path("herdd.new");
    std::fs::copy(bin("herdd"), &staged).unwrap();
    std::fs::rename(&staged, &installed).unwrap();
    assert!(
        exe(&herd).display().to_string().ends_with("(deleted)"),
        "still the old binary"
    );
    reexec_keeps_everything(&herd);
    assert_eq!(exe(&herd), installed, "now running the new file");
}

#[test]
fn after_sigkill_a_new_herdd_adopts_survivors_and_starts_nothing_twice() {
    let mut herd = Herd::start(SETUP);
    let (running, queued) = set_up(&herd);
    let keeper = herd.pid_of("keeper");
    let web: Vec<u32> = (0..20).map(|i| herd.pid_of(&format!("web@{i}"))).collect();
    // The journal follows changes within 100 ms: wait until it has them all.
    wait_until("the journal to record the setup", || {
        let journal = journal_text(&herd);
        journal.contains(&format!("\"id\":{queued},")) && journal.contains("[\"ready\",true]")
    });
    herd.kill_daemon();
    // daemon = true children die with herdd; keeper and the task live on.
    for pid in &web {
        wait_until("a daemon child to die with herdd", || !alive(*pid));
    }
    assert!(alive(keeper));
    herd.relaunch();
    let sleepers = |h: &Herd| {
        h.instances()
            .iter()
            .filter(|i| i["state"] == "running")
            .count()
    };
    herd.wait_for("web to be back", |h| sleepers(h) == 21);
    let status = herd.instance("keeper");
    assert_eq!(
        status["pid"].as_u64(),
        Some(keeper as u64),
        "re-adopted, not started again"
    );
    assert_eq!(status["adopted"], true);
    let out = stdout(&herd.ctl(&["status", "keeper"]));
    assert!(out.contains("adopted"), "{out}");
    // No duplicates: exactly one `sleep 1000` per instance, 21 in all.
    let daemon = herd.daemon_pid();
    let ours: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c == "/bin/sleep\x001000\x00")
        })
        .filter(|pid| *pid == keeper || children(daemon).contains(pid))
        .collect();
    assert_eq!(ours.len(), 21, "20 web + keeper, no duplicate");
    assert_eq!(
        holders(&herd),
        ["keeper"],
        "the surviving holder keeps its slot"
    );
    assert!(event_is_set(&herd));
    // The adopted task finishes: its status is unknown; the queued one then runs.
    std::fs::write(herd.path("go"), "").unwrap();
    let out = herd.ctl(&["join", &running.to_string()]);
    assert!(stdout(&out).contains("status unknown"), "{}", stdout(&out));
    assert_eq!(
        herd.ctl(&["join", &queued.to_string()]).status.code(),
        Some(0)
    );
    assert_eq!(herd.ok(&["output", &queued.to_string()]), "second\n");
    // An adopted process can be stopped.
    herd.ok(&["stop", "keeper"]);
    assert!(
        !alive(keeper),
        "stopped (herdd is not its parent, so it is not ours to reap)"
    );
    for child in children(daemon) {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        assert_ne!(process_state(&stat), Some('Z'), "zombie {child}");
    }
}

#[test]
fn a_corrupt_journal_is_survived_with_a_warning() {
    let mut herd = Herd::configure(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
"#,
    );
    std::fs::create_dir_all(herd.path("state")).unwrap();
    std::fs::write(
        herd.path("state/journal.json"),
        "{\"version\": 1, \"units\": [tru",
    )
    .unwrap();
    herd = herd.launch();
    herd.wait_state("web", "running");
    assert!(herd.log().contains("corrupt journal"), "{}", herd.log());
}

/// Runs `herdctl map` on `p` in the background with `items` as its input.
fn map_in_background(herd: &Herd, items: &str, script: &str) -> std::process::Child {
    std::fs::write(herd.path("items"), items).unwrap();
    std::process::Command::new(bin("herdctl"))
        .arg("--socket")
        .arg(&herd.socket)
        .args(["map", "p", "--", "/bin/sh", "-c", script, "sh", "{}"])
        .stdin(std::fs::File::open(herd.path("items")).unwrap())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run herdctl map")
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A task's start is recorded before its spawn, so a herdd killed in the
/// middle of a busy pool never has a task run a second time by the next one.
#[test]
fn after_sigkill_no_task_of_a_busy_pool_runs_twice() {
    let mut herd = Herd::start(
        r#"
[pool.p]
size = 4
"#,
    );
    let ran = herd.path("ran");
    let script = format!("echo $1 >> {}; sleep 0.03", ran.display());
    let items: String = (1..=200).map(|i| format!("{i}\n")).collect();
    let mut map = map_in_background(&herd, &items, &script);
    // Kill herdd in full flight: tasks start every few ms, the journal's
    // snapshot is rewritten at most every 100 ms.
    wait_until("the pool to be busy", || lines(&ran).len() >= 40);
    herd.kill_daemon();
    let _ = map.kill();
    let _ = map.wait();
    let before = lines(&ran).len();
    herd.relaunch();
    herd.ok(&["pool", "join", "p"]);
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for item in lines(&ran) {
        *seen.entry(item).or_default() += 1;
    }
    let twice: Vec<&String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| i)
        .collect();
    assert!(twice.is_empty(), "ran twice: {twice:?}\n{}", herd.log());
    // The recovered herdd did run the queued rest.
    assert!(seen.len() > before, "{} then {}", before, seen.len());
}

/// The journal's snapshot and its task logs (where queued tasks are), as text.
fn journal_text(herd: &Herd) -> String {
    let state = herd.path("state");
    let mut text = std::fs::read_to_string(state.join("journal.json")).unwrap_or_default();
    for entry in std::fs::read_dir(&state).into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("journal.tasks.")
        {
            text += &std::fs::read_to_string(entry.path()).unwrap_or_default();
        }
    }
    text
}

/// The next task id the journal on disk knows of (0 without a journal).
fn journaled_next_task(herd: &Herd) -> u64 {
    std::fs::read(herd.path("state").join("journal.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|journal| journal["next_task"].as_u64())
        .unwrap_or(0)
}

/// A long queue through two kills of herdd, each in the middle of a busy
/// pool: the journal holds every queued task (in its task log), start records of the first herdd are still in `journal.starts`
/// when the second starts recording, and after both recoveries no task has
/// run twice and none is lost: each one either ran once (ended before a
/// kill, the journal has it no more) or, started just before a kill, ended
/// `failed` with its exit unknown.
#[test]
fn after_two_sigkills_a_long_queue_is_neither_lost_nor_run_twice() {
    const TASKS: usize = 600;
    let mut herd = Herd::start(
        r#"
[pool.p]
size = 2
keep_finished = 1000
max_queue = 1000
"#,
    );
    let ran = herd.path("ran");
    let commands: String = (1..=TASKS)
        .map(|i| format!("/bin/sh -c 'echo {i} >> {}'\n", ran.display()))
        .collect();
    let out = herd.ctl_with_input(&["submit", "p", "--from-file", "-"], &commands);
    assert!(out.status.success(), "{}", stderr(&out));
    let ids: Vec<u64> = stdout(&out).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ids.len(), TASKS);
    let last = *ids.last().unwrap();
    wait_until("the journal to hold the whole queue", || {
        journaled_next_task(&herd) > last
    });
    // Tasks each recovery ends as "may have run" (or whose process was
    // gone): the next kill forgets them (the journal leaves ended tasks
    // out), so they are noted now.
    let mut settled = std::collections::BTreeSet::new();
    for at_least in [50, 200] {
        herd.wait_for("the pool to get on", |_| lines(&ran).len() >= at_least);
        herd.kill_daemon();
        herd.relaunch();
        let tasks: serde_json::Value =
            serde_json::from_str(&herd.ok(&["--json", "tasks"])).unwrap();
        for task in tasks["tasks"].as_array().unwrap() {
            if task["exit"] == "unknown" {
                settled.insert(task["id"].as_u64().unwrap());
            }
        }
    }
    let join = herd.ctl(&["pool", "join", "p"]);
    let tasks: serde_json::Value = serde_json::from_str(&herd.ok(&["--json", "tasks"])).unwrap();
    let tasks = tasks["tasks"].as_array().unwrap();
    let ended = |t: &&serde_json::Value| t["state"] != "queued" && t["state"] != "running";
    assert!(tasks.iter().all(|t| ended(&t)), "{}", stderr(&join));
    let mut runs = BTreeMap::<u64, usize>::new();
    for line in lines(&ran) {
        *runs.entry(line.parse().unwrap()).or_default() += 1;
    }
    for (item, id) in (1..=TASKS as u64).zip(&ids) {
        let times = runs.get(&item).copied().unwrap_or(0);
        // The journal leaves ended tasks out: one that ended before a kill
        // is unknown afterwards, and ran once, unless a recovery ended it.
        let Some(task) = tasks.iter().find(|t| t["id"] == *id) else {
            let expected = if settled.contains(id) { 0..=1 } else { 1..=1 };
            assert!(
                expected.contains(&times),
                "item {item} (task {id}, forgotten) ran {times} times"
            );
            continue;
        };
        match task["state"].as_str() {
            Some("exited") => assert_eq!(times, 1, "item {item} ran {times} times: {task}"),
            // Started just before a kill: adopted, or its start recorded
            // and its spawn unconfirmed ("may have run").
            Some("failed") => {
                assert!(times <= 1, "item {item} ran {times} times: {task}");
                assert_eq!(task["exit"], "unknown", "item {item}: {task}");
            }
            _ => panic!("item {item} did not end: {task}"),
        }
    }
}

/// Queued tasks are written once, to the journal's task log, not into each
/// snapshot: tasks queued after the journal had a snapshot, which only the
/// log holds, survive a SIGKILL like the first ones, and each runs once.
#[test]
fn tasks_queued_after_a_journal_snapshot_survive_a_sigkill_and_run_once() {
    let mut herd = Herd::start(
        r#"
[pool.p]
size = 1
max_queue = 1000
"#,
    );
    let ran = herd.path("ran");
    // The first task holds the pool's only slot until `go` exists.
    let hold = format!(
        "while [ ! -e {} ]; do sleep 0.02; done; echo 0 >> {}",
        herd.path("go").display(),
        ran.display()
    );
    herd.ok(&["submit", "p", "--", "/bin/sh", "-c", &hold]);
    let mut ids = Vec::new();
    for batch in [1..=100, 101..=200] {
        let commands: String = batch
            .map(|i| format!("/bin/sh -c 'echo {i} >> {}'\n", ran.display()))
            .collect();
        let out = herd.ctl_with_input(&["submit", "p", "--from-file", "-"], &commands);
        assert!(out.status.success(), "{}", stderr(&out));
        ids.extend(stdout(&out).lines().map(|l| l.parse::<u64>().unwrap()));
        let last = *ids.last().unwrap();
        wait_until("the journal to hold the batch", || {
            journaled_next_task(&herd) > last
        });
    }
    let snapshot = std::fs::read_to_string(herd.path("state/journal.json")).unwrap();
    assert!(
        !snapshot.contains("echo 150 "),
        "a queued task is in the task log, not the snapshot"
    );
    herd.kill_daemon();
    herd.relaunch();
    let tasks: serde_json::Value = serde_json::from_str(&herd.ok(&["--json", "tasks"])).unwrap();
    let queued: Vec<u64> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "queued")
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(queued, ids, "every queued task is back, in order");
    std::fs::write(herd.path("go"), "").unwrap();
    let join = herd.ctl(&["pool", "join", "p"]);
    let mut runs = BTreeMap::<u64, usize>::new();
    for line in lines(&ran) {
        *runs.entry(line.parse().unwrap()).or_default() += 1;
    }
    for item in 1..=200 {
        assert_eq!(runs.get(&item), Some(&1), "item {item}: {}", stderr(&join));
    }
}

/// Runs herdctl, failing the test (not hanging it) if no answer comes
/// within the deadline.
fn ctl_within(herd: &Herd, args: &[&str]) -> String {
    let mut child = std::process::Command::new(bin("herdctl"))
        .arg("--socket")
        .arg(&herd.socket)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run herdctl");
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("herdctl {args:?}: no answer from herdd\n{}", herd.log());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "herdctl {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// The journal is written off the event loop: a state dir that hangs (here
/// a FIFO where the journal's temp file goes, which blocks whoever opens it)
/// stalls neither requests nor services, and herdd still exits cleanly.
#[test]
fn a_hung_journal_write_does_not_stall_herdd() {
    let mut herd = Herd::configure(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
"#,
    );
    std::fs::create_dir_all(herd.path("state")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(herd.path("state/journal.json.tmp"))
        .status()
        .unwrap();
    assert!(status.success());
    herd = herd.launch();
    let running = |herd: &Herd| ctl_within(herd, &["status", "web"]).contains("running");
    let started = std::time::Instant::now();
    while !running(&herd) {
        assert!(started.elapsed() < DEADLINE, "web did not start");
    }
    // Every change asks for a journal write; the loop answers regardless.
    for _ in 0..5 {
        ctl_within(&herd, &["restart", "web"]);
        ctl_within(&herd, &["status"]);
    }
    ctl_within(&herd, &["shutdown"]);
    assert_eq!(herd.wait_exit(), 0, "{}", herd.log());
}

/// A task the killed herdd was starting, still between its clone and its
/// exec, holds copies of the socket lock's descriptor and of the listening
/// socket until the exec: connections to the socket succeed, but nothing
/// answers them. A herdd started meanwhile waits for it instead of exiting
/// with "another herdd is already running". The test plays that task: it
/// holds the lock and a listener on the socket, and lets go a little later.
#[test]
fn a_herdd_started_after_a_kill_waits_for_a_child_that_still_holds_the_lock() {
    use std::os::fd::AsRawFd;
    let mut herd = Herd::start(SETUP);
    herd.kill_daemon();
    let mut path = herd.socket.as_os_str().to_owned();
    path.push(".lock");
    let lock = std::fs::File::open(&path).expect("the lock file");
    // SAFETY: flock on a descriptor this test owns.
    let taken = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(taken, 0, "the killed herdd's lock is free");
    std::fs::remove_file(&herd.socket).expect("the killed herdd's socket");
    let listener = std::os::unix::net::UnixListener::bind(&herd.socket).expect("listen");
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        drop(lock);
        drop(listener);
    });
    herd.relaunch();
    release.join().unwrap();
    herd.ok(&["status"]);
}
