//! `logs`: units' and instances' output, read back from their log files for
//! the connection's own task, on blocking threads — the core is not
//! involved, a slow disk never holds up the event loop, and a slow reader
//! only ever waits for its own socket.
//!
//! The reply is one `{"log": LogLine}` line per line: the history (all kept
//! lines, or the last `lines`), merged across instances by time; then
//! `{"ok": {"count": N}}`, or with `follow` the lines written from then on,
//! across rotations, until the client closes. A follower that fell behind
//! by whole deleted files is told `{"missed": {"instance", "files"}}`.

use crate::shell::logs::read::{self, Cursor, LineReader, Merge};
use crate::shell::logs::LogHub;
use herd_common::names::{is_valid_unit_name, Selector, INSTANCE_SEPARATOR};
use herd_common::protocol::{ErrorBody, ErrorCode, LogGap, LogLine, Reply, Request};
use herd_config::LogMode;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite};
use tokio::sync::{mpsc, watch};

use super::framing;
use super::listener::Closing;

/// Encoded lines are sent once this many bytes are ready.
const FLUSH_AT: usize = 32 * 1024;

/// Bytes of new log all cursors together read before the lines are sent.
const FOLLOW_BUFFER: usize = 256 * 1024;

/// Batches of encoded history a reading thread may have ready ahead of the
/// client: a slow client holds the thread back, not herdd's memory.
const BATCHES_AHEAD: usize = 4;

/// How reading the history ended.
enum History {
    /// The names cannot be served (the reply says why); the connection goes on.
    Rejected(ErrorBody),
    /// A file could not be read.
    Failed(std::io::Error),
    /// Every line was sent: how many, and where following goes on from.
    Done {
        count: u64,
        sources: Sources,
        cursors: Vec<Cursor>,
    },
}

/// Streams the reply to a `logs` request. Returns whether the connection
/// may go on (only without `follow`). Files are read, and lines encoded,
/// on blocking threads: a slow disk never holds up herdd's event loop.
pub async fn stream(
    hub: &Arc<LogHub>,
    request: Request,
    reader: &mut (impl AsyncBufRead + Unpin),
    write: &mut (impl AsyncWrite + Unpin),
    closing: &mut watch::Receiver<Closing>,
) -> bool {
    let Request::Logs {
        names,
        lines,
        follow,
    } = request
    else {
        return false;
    };
    // Subscribed before the files are looked at: no later write is missed.
    let mut changes = hub.subscribe();
    let (batches_tx, mut batches) = mpsc::channel(BATCHES_AHEAD);
    let reading = {
        let hub = hub.clone();
        tokio::task::spawn_blocking(move || read_history(&hub, &names, lines, &batches_tx))
    };
    while let Some(batch) = batches.recv().await {
        if !framing::write(write, &batch).await {
            // Dropping `batches` stops the thread at its next batch.
            return false;
        }
    }
    let (count, sources, cursors) = match reading.await {
        Ok(History::Done {
            count,
            sources,
            cursors,
        }) => (count, sources, cursors),
        Ok(History::Rejected(body)) => return framing::send(write, &Reply::Error(body)).await,
        Ok(History::Failed(err)) => return failed(write, &err).await,
        Err(_) => return false,
    };
    if !follow {
        let end = Reply::ok(serde_json::json!({ "count": count }));
        return framing::send(write, &end).await;
    }
    let follow = Follow {
        hub: hub.clone(),
        dir: hub.dir(),
        units: sources.units,
        known: cursors.iter().map(|c| c.instance.clone()).collect(),
        cursors,
    };
    follow_logs(follow, &mut changes, reader, write, closing).await
}

/// On a blocking thread: resolves `names`, then reads and encodes the kept
/// lines (all, or the last `lines`), merged across instances by time, and
/// hands them over in batches.
fn read_history(
    hub: &LogHub,
    names: &[String],
    lines: Option<u64>,
    batches: &mpsc::Sender<Vec<u8>>,
) -> History {
    let dir = hub.dir();
    let sources = match resolve(hub, &dir, names) {
        Ok(sources) => sources,
        Err(body) => return History::Rejected(body),
    };
    // One step: the files as they are now, and where following goes on
    // from (see shell/logs/read.rs).
    let snapshots: Vec<_> = sources
        .instances
        .iter()
        .map(|(instance, unit)| read::snapshot(hub, &dir, unit, instance))
        .collect();
    let chunk = ((1 << 20) / snapshots.len().max(1)).clamp(4096, 64 * 1024);
    let mut readers = Vec::with_capacity(snapshots.len());
    let mut cursors = Vec::with_capacity(snapshots.len());
    let mut total = 0;
    for snapshot in snapshots {
        let history = match lines {
            Some(n) => {
                let (segments, count) = read::tail(snapshot.history, n);
                total += count;
                segments
            }
            None => snapshot.history,
        };
        readers.push((
            snapshot.cursor.instance.clone(),
            LineReader::new(history, chunk),
        ));
        cursors.push(snapshot.cursor);
    }
    let skip = lines.map_or(0, |n| total.saturating_sub(n));
    let mut merge = match Merge::new(readers, skip) {
        Ok(merge) => merge,
        Err(err) => return History::Failed(err),
    };
    let mut out = Vec::with_capacity(FLUSH_AT * 2);
    let mut count = 0u64;
    loop {
        let line = match merge.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(err) => return History::Failed(err),
        };
        encode_line(&mut out, &line);
        count += 1;
        if out.len() >= FLUSH_AT {
            let batch = std::mem::replace(&mut out, Vec::with_capacity(FLUSH_AT * 2));
            if batches.blocking_send(batch).is_err() {
                // The client has gone.
                break;
            }
        }
    }
    if !out.is_empty() {
        let _ = batches.blocking_send(out);
    }
    History::Done {
        count,
        sources,
        cursors,
    }
}

/// What following reads, handed to a blocking thread and back each round.
struct Follow {
    hub: Arc<LogHub>,
    dir: PathBuf,
    /// Units asked for whole: their new instances are followed too.
    units: Vec<String>,
    known: BTreeSet<String>,
    cursors: Vec<Cursor>,
}

impl Follow {
    /// One round on a blocking thread: the new lines of every cursor,
    /// encoded; and whether some cursor has more ready.
    fn poll(&mut self) -> (Vec<u8>, bool) {
        // Instances of a followed unit that started logging since.
        for unit in &self.units {
            for instance in self.hub.instances_of(unit) {
                if self.known.insert(instance.clone()) {
                    self.cursors
                        .push(Cursor::from_start(&self.dir, unit, &instance));
                }
            }
        }
        let budget = (FOLLOW_BUFFER / self.cursors.len().max(1)).max(4096);
        let mut batch = Vec::new();
        let mut out = Vec::new();
        let mut more = false;
        for cursor in &mut self.cursors {
            let polled = cursor.poll(&self.hub, budget, &mut batch);
            more |= polled.more;
            if polled.missed_files > 0 {
                let gap = LogGap {
                    instance: cursor.instance.clone(),
                    files: polled.missed_files,
                };
                out.extend_from_slice(b"{\"missed\":");
                let _ = serde_json::to_writer(&mut out, &gap);
                out.extend_from_slice(b"}\n");
            }
        }
        // Each cursor's lines are in order; interleave instances by time.
        batch.sort_by(|a, b| a.time.cmp(&b.time));
        for line in &batch {
            encode_line(&mut out, line);
        }
        (out, more)
    }
}

/// `-f`: new lines as they are written, until the client closes or herdd exits.
async fn follow_logs(
    mut follow: Follow,
    changes: &mut watch::Receiver<u64>,
    reader: &mut (impl AsyncBufRead + Unpin),
    write: &mut (impl AsyncWrite + Unpin),
    closing: &mut watch::Receiver<Closing>,
) -> bool {
    loop {
        let round = tokio::task::spawn_blocking(move || {
            let polled = follow.poll();
            (follow, polled)
        });
        let Ok((back, (out, more))) = round.await else {
            return false;
        };
        follow = back;
        if !out.is_empty() && !framing::write(write, &out).await {
            return false;
        }
        if more {
            continue;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() {
                return false;
            },
            // Whatever the client sends now is ignored; its end ends the stream.
            read = reader.fill_buf() => match read {
                Ok([]) | Err(_) => return false,
                Ok(bytes) => {
                    let n = bytes.len();
                    reader.consume(n);
                }
            },
            _ = closing.wait_for(|closing| *closing != Closing::Open) => return false,
        }
    }
}

/// What a `logs` request reads.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sources {
    /// Instance → its unit, in name order.
    instances: BTreeMap<String, String>,
    /// Units asked for whole: their new instances are followed too.
    units: Vec<String>,
}

impl Sources {
    fn add_unit(&mut self, hub: &LogHub, dir: &Path, unit: &str) {
        for instance in read::instances_on_disk(dir, unit)
            .into_iter()
            .chain(hub.instances_of(unit))
        {
            self.instances.insert(instance, unit.to_string());
        }
        if !self.units.iter().any(|u| u == unit) {
            self.units.push(unit.to_string());
        }
    }
}

/// Turns names (units, `unit@N` instances, globs) into what to read.
fn resolve(hub: &LogHub, dir: &Path, names: &[String]) -> Result<Sources, ErrorBody> {
    if names.is_empty() {
        return Err(ErrorBody::new(
            ErrorCode::BadRequest,
            "logs needs at least one unit, instance or task name",
        ));
    }
    let mut sources = Sources::default();
    for name in names {
        match Selector::parse(name) {
            Selector::Unit(unit) => {
                check_unit(hub, dir, &unit)?;
                sources.add_unit(hub, dir, &unit);
            }
            Selector::Instance { unit, index } => {
                check_unit(hub, dir, &unit)?;
                let instance = format!("{unit}{INSTANCE_SEPARATOR}{index}");
                sources.instances.insert(instance, unit);
            }
            Selector::Glob(pattern) => {
                let glob = glob::Pattern::new(&pattern).map_err(|err| {
                    ErrorBody::new(
                        ErrorCode::BadRequest,
                        format!("bad pattern {pattern:?}: {err}"),
                    )
                })?;
                let mut matched = false;
                for unit in known_units(hub, dir) {
                    if pattern.contains(INSTANCE_SEPARATOR) {
                        let mut instances = read::instances_on_disk(dir, &unit);
                        instances.extend(hub.instances_of(&unit));
                        for instance in instances.into_iter().filter(|i| glob.matches(i)) {
                            sources.instances.insert(instance, unit.clone());
                            matched = true;
                        }
                    } else if glob.matches(&unit) {
                        sources.add_unit(hub, dir, &unit);
                        matched = true;
                    }
                }
                if !matched {
                    return Err(no_such_unit(name));
                }
            }
        }
    }
    Ok(sources)
}

/// Units of the config, and units that have a log directory (perhaps from
/// before a reload that removed them).
fn known_units(hub: &LogHub, dir: &Path) -> BTreeSet<String> {
    let mut units: BTreeSet<String> = hub.units().into_iter().collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        units.extend(
            entries
                .flatten()
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| is_valid_unit_name(name)),
        );
    }
    units
}

/// A unit has logs to read if it is configured with `log = "file"` or has
/// a log directory.
fn check_unit(hub: &LogHub, dir: &Path, unit: &str) -> Result<(), ErrorBody> {
    // Also keeps names like `../x` from becoming paths.
    if !is_valid_unit_name(unit) {
        return Err(no_such_unit(unit));
    }
    if dir.join(unit).is_dir() {
        return Ok(());
    }
    match hub.mode_of(unit) {
        None => Err(no_such_unit(unit)),
        Some(LogMode::File) => Ok(()),
        Some(LogMode::Inherit) => Err(ErrorBody::new(
            ErrorCode::Failed,
            format!(
                "{unit} has log = \"inherit\": its output goes to herdd's own stdout and \
                 stderr, not to a log file"
            ),
        )),
        Some(LogMode::Off) => Err(ErrorBody::new(
            ErrorCode::Failed,
            format!("{unit} has log = \"off\": its output is discarded"),
        )),
        Some(LogMode::Journal) => Err(ErrorBody::new(
            ErrorCode::Failed,
            format!(
                "{unit} has log = \"journal\": its lines go to journald, not to a log file \
                 (journalctl SYSLOG_IDENTIFIER={unit})"
            ),
        )),
        Some(LogMode::Console) => Err(ErrorBody::new(
            ErrorCode::Failed,
            format!(
                "{unit} has log = \"console\": its lines go to herdd's own stdout, not to a \
                 log file"
            ),
        )),
    }
}

fn no_such_unit(name: &str) -> ErrorBody {
    ErrorBody::new(ErrorCode::NoSuchUnit, format!("no such unit: {name}"))
}

fn encode_line(out: &mut Vec<u8>, line: &LogLine) {
    out.extend_from_slice(b"{\"log\":");
    // Writing a plain struct into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, line);
    out.extend_from_slice(b"}\n");
}

async fn failed(write: &mut (impl AsyncWrite + Unpin), err: &std::io::Error) -> bool {
    let reply = Reply::error(ErrorCode::Failed, format!("cannot read the log: {err}"));
    framing::send(write, &reply).await;
    false
}
