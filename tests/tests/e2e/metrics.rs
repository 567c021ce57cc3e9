//! Prometheus metrics: `herdctl metrics` and a scrape of `[herd]
//! metrics_listen`, read back with a parser of the text format.

use crate::harness::*;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A herdd whose `[herd]` table (written by the harness) also has `metrics_listen`.
fn with_metrics_listen(units: &str, address: &str) -> Herd {
    let herd = Herd::configure(units);
    let config = herd.path("herd.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "[herd]\n",
        &format!("[herd]\nmetrics_listen = {address:?}\n"),
    );
    std::fs::write(&config, text).unwrap();
    herd
}

/// One HTTP request; returns the status line and the body.
fn http(port: u16, request_line: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics_listen");
    write!(stream, "{request_line}\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|line| Ok(line.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text exposition")
}

/// The value of the sample `name` whose labels include `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match &sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        other => panic!("{name} is {other:?}"),
    }
}

/// Family names: `# TYPE` lines as the parser read them.
fn families(scrape: &prometheus_parse::Scrape) -> BTreeSet<String> {
    scrape.docs.keys().cloned().collect()
}

#[test]
fn herdctl_and_a_scrape_agree_and_pools_count_exactly_the_tasks_run() {
    let port = free_port();
    let herd = with_metrics_listen(
        r#"
[service.web]
command = ["sleep", "600"]
instances = 2
[pool.p]
size = 2
[semaphore.disk]
capacity = 3
[event.go]
set = true
"#,
        &format!("127.0.0.1:{port}"),
    )
    .launch();
    herd.wait_state("web@1", "running");
    let mut ids = Vec::new();
    for command in ["true", "true", "true", "false", "false"] {
        ids.push(herd.ok(&["submit", "p", "--", command]).trim().to_string());
    }
    let mut join = vec!["join"];
    join.extend(ids.iter().map(String::as_str));
    herd.ctl(&join);

    let from_ctl = parse(&herd.ok(&["metrics"]));
    let (status, body) = http(port, "GET /metrics HTTP/1.1");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let scraped = parse(&body);
    assert_eq!(families(&from_ctl), families(&scraped));
    for family in [
        "herd_instance_state",
        "herd_instance_memory_bytes",
        "herd_instance_cpu_seconds_total",
        "herd_pool_task_duration_seconds",
        "herd_semaphore_capacity",
        "herd_event_set",
        "herd_daemon_open_fds",
    ] {
        assert!(families(&scraped).contains(family), "no {family}");
    }

    for scrape in [&from_ctl, &scraped] {
        let pool = [("pool", "p")];
        assert_eq!(value(scrape, "herd_pool_submitted_total", &pool), 5.0);
        assert_eq!(value(scrape, "herd_pool_completed_total", &pool), 3.0);
        assert_eq!(value(scrape, "herd_pool_failed_total", &pool), 2.0);
        assert_eq!(value(scrape, "herd_pool_queue_depth", &pool), 0.0);
        let running = [("instance", "web@1"), ("state", "running")];
        assert_eq!(value(scrape, "herd_instance_state", &running), 1.0);
        let web = [("instance", "web@0")];
        assert!(value(scrape, "herd_instance_memory_bytes", &web) > 0.0);
        assert_eq!(value(scrape, "herd_instance_processes", &web), 1.0);
        assert_eq!(
            value(scrape, "herd_semaphore_capacity", &[("semaphore", "disk")]),
            3.0
        );
        assert_eq!(value(scrape, "herd_event_set", &[("event", "go")]), 1.0);
        assert!(value(scrape, "herd_daemon_resident_memory_bytes", &[]) > 0.0);
        let histogram = scrape
            .samples
            .iter()
            .find(|s| s.metric == "herd_pool_task_duration_seconds")
            .expect("the duration histogram");
        let prometheus_parse::Value::Histogram(buckets) = &histogram.value else {
            panic!("not a histogram: {histogram:?}");
        };
        let inf = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
        assert_eq!(inf.count, 5.0, "every task that ran is in the histogram");
    }

    let (status, _) = http(port, "GET / HTTP/1.1");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http(port, "DELETE /metrics HTTP/1.1");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
}

#[test]
fn a_metrics_listen_that_cannot_be_bound_stops_herdd_with_its_name() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let herd = with_metrics_listen(
        "[service.web]\ncommand = [\"sleep\", \"600\"]\n",
        &format!("127.0.0.1:{port}"),
    );
    let out = std::process::Command::new(bin("herdd"))
        .arg("--config")
        .arg(herd.path("herd.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("metrics_listen"), "{err}");
    assert!(err.contains(&port.to_string()), "{err}");
    assert!(!herd.socket.exists(), "herdd must not have started");
}

#[test]
fn a_metrics_listen_that_is_not_an_address_is_a_config_error() {
    let herd = with_metrics_listen(
        "[service.web]\ncommand = [\"sleep\", \"600\"]\n",
        "localhost",
    );
    let out = std::process::Command::new(bin("herdd"))
        .arg("--check-config")
        .arg("--config")
        .arg(herd.path("herd.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("herd.metrics_listen"), "{err}");
    assert!(err.contains("invalid address `localhost`"), "{err}");
}

/// The buckets of histogram `name` whose labels include `labels`, as
/// (upper bound, cumulative count).
fn buckets(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Vec<(f64, f64)> {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no histogram {name} {labels:?}"));
    let prometheus_parse::Value::Histogram(buckets) = &sample.value else {
        panic!("{name} is not a histogram: {sample:?}");
    };
    buckets.iter().map(|b| (b.less_than, b.count)).collect()
}

#[test]
fn semaphore_waits_are_counted_once_per_slot_granted() {
    let port = free_port();
    let herd = with_metrics_listen(
        r#"
[semaphore.disk]
capacity = 1
[semaphore.idle]
capacity = 1
[pool.p]
size = 3
semaphores = ["disk"]
"#,
        &format!("127.0.0.1:{port}"),
    )
    .launch();
    // The first task takes the one slot at once and keeps it until `go`
    // exists; the second queues for it meanwhile (at least 0.3 s, below),
    // and holds it 0.3 s, which the third spends in line.
    let go = herd.path("go");
    let hold = format!("while [ ! -e {} ]; do sleep 0.02; done", go.display());
    let mut ids = vec![herd.ok(&["submit", "p", "--", "sh", "-c", &hold])];
    for _ in 0..2 {
        ids.push(herd.ok(&["submit", "p", "--", "sleep", "0.3"]));
    }
    let ids: Vec<&str> = ids.iter().map(|id| id.trim()).collect();
    herd.wait_for("both in line for the slot", |herd| {
        let list: serde_json::Value =
            serde_json::from_str(&herd.ok(&["--json", "sem", "list"])).unwrap();
        list["semaphores"][0]["waiters"].as_array().map(Vec::len) == Some(1)
            && herd.task(ids[2].parse().unwrap())["state"] == "queued"
    });
    // Not a wait for something to happen: the length of the wait measured.
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(&go, "").unwrap();
    let mut join = vec!["join"];
    join.extend(ids.iter().copied());
    herd.ok(&join);

    let (status, body) = http(port, "GET /metrics HTTP/1.1");
    assert_eq!(status, "HTTP/1.1 200 OK");
    for scrape in [parse(&herd.ok(&["metrics"])), parse(&body)] {
        let disk = [("semaphore", "disk")];
        let name = "herd_semaphore_wait_seconds";
        let disk_buckets = buckets(&scrape, name, &disk);
        let le = |bound: f64| {
            disk_buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .unwrap_or_else(|| panic!("no bucket {bound}: {disk_buckets:?}"))
                .1
        };
        assert_eq!(le(0.005), 1.0, "only the first was granted at once");
        assert_eq!(le(0.25), 1.0, "the others waited at least 0.3 s");
        assert_eq!(le(f64::INFINITY), 3.0, "one count per grant");
        assert_eq!(value(&scrape, &format!("{name}_count"), &disk), 3.0);
        let sum = value(&scrape, &format!("{name}_sum"), &disk);
        assert!(sum >= 0.6, "two waits of at least 0.3 s each: {sum}");
        let idle = [("semaphore", "idle")];
        assert_eq!(value(&scrape, &format!("{name}_count"), &idle), 0.0);
        assert_eq!(value(&scrape, &format!("{name}_sum"), &idle), 0.0);
    }
}
