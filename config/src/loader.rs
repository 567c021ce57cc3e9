//! Reading the main file and everything it includes, one file at a time.
//!
//! Each file is parsed and checked on its own, its named tables (units, pools,
//! semaphores, events) are kept, and only then are its includes read (depth
//! first, in order). Checks across tables run in `validate.rs` once every file
//! is in.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// How deep includes may nest (the main file is level 0): a chain beyond it
/// is refused with an error at the `include` that goes too deep, so that no
/// config can exhaust the stack.
pub const MAX_INCLUDE_DEPTH: usize = 16;

use toml::de::DeTable;

use crate::errors::{ConfigErrors, Errors, Location};
use crate::model::{
    Config, EventConfig, HerdSettings, PoolConfig, SemaphoreConfig, SocketConfig, UnitKind,
};
use crate::named::Parsed;
use crate::paths::directory_of;
use crate::pool::parse_pools;
use crate::socket::parse_sockets;
use crate::source::{self, Source};
use crate::sync::{parse_events, parse_semaphores};
use crate::unit::{parse_units, ParsedUnit};
use crate::value::{unknown_key, Cx};
use crate::{herd, include, validate};

const TOP_LEVEL_KEYS: &[&str] = &[
    "include",
    "herd",
    "semaphore",
    "event",
    "service",
    "task",
    "pool",
    "socket",
];

/// Everything read so far.
pub(crate) struct Loader {
    main: PathBuf,
    errors: Errors,
    /// Files in the order they were read, as they are named in errors.
    files: Vec<PathBuf>,
    /// Canonical paths of files already read: a file included twice (or an
    /// include loop) is read once.
    seen: HashSet<PathBuf>,
    tables: Tables,
    herd: Option<HerdSettings>,
    /// False once a file could not be read or parsed: what it defines is
    /// unknown, so "unknown unit" (or semaphore, event) errors about names it
    /// may define would be false alarms.
    complete: bool,
}

/// The named tables of one file, or of every file read so far, each kind in
/// the order read.
#[derive(Default)]
pub(crate) struct Tables {
    pub units: Vec<ParsedUnit>,
    pub pools: Vec<Parsed<PoolConfig>>,
    pub semaphores: Vec<Parsed<SemaphoreConfig>>,
    pub events: Vec<Parsed<EventConfig>>,
    pub sockets: Vec<Parsed<SocketConfig>>,
}

impl Tables {
    fn append(&mut self, mut other: Tables) {
        self.units.append(&mut other.units);
        self.pools.append(&mut other.pools);
        self.semaphores.append(&mut other.semaphores);
        self.events.append(&mut other.events);
        self.sockets.append(&mut other.sockets);
    }
}

/// What one file contributes.
#[derive(Default)]
struct FileContents {
    herd: Option<HerdSettings>,
    tables: Tables,
    includes: Vec<PathBuf>,
    /// Where the `include` key is, for errors about the files it names.
    include_at: Option<Location>,
}

impl Loader {
    pub fn new(main: &Path) -> Loader {
        Loader {
            main: main.to_path_buf(),
            errors: Errors::default(),
            files: Vec::new(),
            seen: HashSet::new(),
            tables: Tables::default(),
            herd: None,
            complete: true,
        }
    }
    /// Reads `path` from disk, unless it has been read already.
    pub fn read_file(&mut self, path: &Path) {
        self.read_file_at(path, 0, None);
    }

    /// Reads `path`, included `depth` levels below the main file by the
    /// `include` at `included_at`. A file that cannot be read is an error
    /// there (or at its own start, for the main file).
    fn read_file_at(&mut self, path: &Path, depth: usize, included_at: Option<&Location>) {
        if !self.first_visit(path) {
            return;
        }
        match source::read_file(path) {
            Ok(text) => self.read_text_at(path, &text, depth),
            Err(message) => {
                self.files.push(path.to_path_buf());
                match included_at {
                    Some(at) => {
                        let message = format!("{}: {message}", path.display());
                        self.errors.push(at, "include", message);
                    }
                    None => self.errors.push(&Location::start_of(path), "", message),
                }
                self.complete = false;
            }
        }
    }

    /// Reads a file whose text is already at hand, then its includes.
    pub fn read_text(&mut self, path: &Path, text: &str) {
        self.read_text_at(path, text, 0);
    }

    fn read_text_at(&mut self, path: &Path, text: &str, depth: usize) {
        // Already recorded when called from `read_file`; for `parse`, this
        // keeps an include of the main file from reading it again.
        self.first_visit(path);
        self.files.push(path.to_path_buf());
        let source = Source { path, text };
        let root = match DeTable::parse(text) {
            Ok(root) => root,
            Err(error) => {
                let at = error
                    .span()
                    .map_or_else(|| Location::start_of(path), |span| source.locate(span));
                self.errors.push(&at, "", error.message().trim_end());
                self.complete = false;
                return;
            }
        };
        let is_main = path == self.main;
        let mut cx = Cx {
            source,
            errors: &mut self.errors,
        };
        let contents = read_root(&mut cx, root.get_ref(), is_main);
        if contents.herd.is_some() {
            self.herd = contents.herd;
        }
        self.tables.append(contents.tables);
        let at = contents
            .include_at
            .unwrap_or_else(|| Location::start_of(path));
        if depth >= MAX_INCLUDE_DEPTH && !contents.includes.is_empty() {
            let message = format!(
                "includes are nested more than {MAX_INCLUDE_DEPTH} levels deep; not reading {}",
                contents.includes[0].display()
            );
            self.errors.push(&at, "include", message);
            self.complete = false;
            return;
        }
        for included in &contents.includes {
            self.read_file_at(included, depth + 1, Some(&at));
        }
    }

    /// The validated config, or every error found in every file.
    pub fn finish(mut self) -> Result<Config, ConfigErrors> {
        validate::check(&self.tables, self.complete, &mut self.errors);
        if !self.errors.is_empty() {
            return Err(self.errors.into_sorted(&self.files));
        }
        let Tables {
            units,
            pools,
            semaphores,
            events,
            sockets,
        } = self.tables;
        Ok(Config {
            path: self.main,
            herd: self.herd.unwrap_or_else(herd::defaults),
            units: in_name_order(units),
            pools: in_name_order(pools),
            semaphores: in_name_order(semaphores),
            events: in_name_order(events),
            sockets: in_name_order(sockets),
        })
    }

    /// Records `path` as read; false if it had been already.
    fn first_visit(&mut self, path: &Path) -> bool {
        let identity = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.seen.insert(identity)
    }
}

/// Dispatches the top-level keys of one file.
fn read_root(cx: &mut Cx, root: &DeTable, is_main: bool) -> FileContents {
    let dir = directory_of(cx.source.path);
    let mut contents = FileContents::default();
    let tables = &mut contents.tables;
    for (key, value) in root.iter() {
        let name: &str = key.get_ref();
        match name {
            "include" => {
                contents.include_at = Some(cx.source.locate(key.span()));
                contents.includes = include::expand(cx, value);
            }
            "herd" if is_main => contents.herd = Some(herd::parse(cx, value, &dir)),
            "herd" => cx.error(
                key.span(),
                name,
                "`[herd]` is only allowed in the main config file, not in an included one",
            ),
            "semaphore" => tables.semaphores = parse_semaphores(cx, value),
            "event" => tables.events = parse_events(cx, value),
            "service" => tables
                .units
                .extend(parse_units(cx, UnitKind::Service, value, &dir)),
            "task" => tables
                .units
                .extend(parse_units(cx, UnitKind::Task, value, &dir)),
            "pool" => tables.pools = parse_pools(cx, value, &dir),
            "socket" => tables.sockets = parse_sockets(cx, value),
            _ => cx.error(key.span(), name, unknown_key(name, TOP_LEVEL_KEYS)),
        }
    }
    // Services and tasks are read table by table; restore the order of the
    // file so that "defined twice" errors point at the later definition.
    tables.units.sort_by_key(|unit| unit.definition.position());
    contents
}

/// The models of `parsed`, in name order.
fn in_name_order<T>(mut parsed: Vec<Parsed<T>>) -> Vec<T> {
    parsed.sort_by(|a, b| a.definition.name.cmp(&b.definition.name));
    parsed.into_iter().map(|parsed| parsed.config).collect()
}
