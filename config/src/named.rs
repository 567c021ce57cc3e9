//! What the named tables (`[service.NAME]`, `[task.NAME]`, `[pool.NAME]`,
//! `[semaphore.NAME]` and `[event.NAME]`) have in common: each is a table
//! under a name that must be valid and defined only once among its kind, each
//! refuses keys it does not know, and units and pools name other units,
//! semaphores and events, which may be defined in any file.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use herd_common::names::is_valid_unit_name;
use toml::de::DeTable;
use toml::Spanned;

use crate::errors::{Errors, Location};
use crate::value::{key_path, unknown_key, Cx, Value};

/// A key of a table, with its span.
pub(crate) type Key<'i> = Spanned<Cow<'i, str>>;

/// Where a named table is defined, for errors reported once every file is read.
#[derive(Debug)]
pub(crate) struct Definition {
    /// `web` in `[service.web]`.
    pub name: String,
    /// Where the name is written.
    pub at: Location,
    /// `service.web`: the key prefix of errors about it.
    pub key: String,
}

impl Definition {
    /// `(line, column)`: sorts definitions of one file in the file's order.
    pub fn position(&self) -> (usize, usize) {
        (self.at.line, self.at.column)
    }
}

/// A named table as read from one file: its model, where it is defined, and
/// the names it refers to.
#[derive(Debug)]
pub(crate) struct Parsed<T> {
    pub config: T,
    pub definition: Definition,
    /// In the order they are written.
    pub refs: Vec<Reference>,
}

/// What a [`Reference`] names. Each kind has names of its own: a semaphore,
/// an event and a unit may all be called `db`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Namespace {
    /// A service or task (`after`).
    Unit,
    Semaphore,
    Event,
    /// A `[socket]` (`sockets`).
    Socket,
    /// A `[pool]` (a timer's `pool`).
    Pool,
}

/// A name written in a unit or pool that must be defined somewhere; whether it
/// is, is checked once every file has been read.
#[derive(Debug)]
pub(crate) struct Reference {
    pub namespace: Namespace,
    pub name: String,
    pub at: Location,
    /// The key it is written in: `service.web.after`.
    pub key: String,
}

/// Reads every table of `[TABLE]` (`value`) in one file, in the file's order.
/// Each name is checked (`noun` names what it is in the error: "unit",
/// "pool"), then the table is handed to `read_one` with its name, its key
/// prefix and where to record the names it refers to; a value that is not a
/// table is reported and skipped.
pub(crate) fn read_tables<T>(
    cx: &mut Cx,
    table: &str,
    noun: &str,
    value: &Value,
    mut read_one: impl FnMut(&mut Cx, &Key, &str, &DeTable, &mut Vec<Reference>) -> T,
) -> Vec<Parsed<T>> {
    let Some(tables) = cx.table(table, value) else {
        return Vec::new();
    };
    let mut read = Vec::new();
    for (name, value) in tables.iter() {
        let key = key_path(table, name.get_ref());
        let Some(fields) = cx.table(&key, value) else {
            continue;
        };
        if !is_valid_unit_name(name.get_ref()) {
            let message = format!(
                "invalid {noun} name `{}` (use at most 128 ASCII letters, digits, '-', '_' \
                 and '.', not starting with '-' or '.')",
                name.get_ref()
            );
            cx.error(name.span(), &key, message);
        }
        let mut refs = Vec::new();
        let config = read_one(cx, name, &key, fields, &mut refs);
        let definition = Definition {
            name: name.get_ref().to_string(),
            at: cx.source.locate(name.span()),
            key,
        };
        read.push(Parsed {
            config,
            definition,
            refs,
        });
    }
    // Tables are stored by key; restore the order of the file so that
    // "defined twice" errors point at the later definition.
    read.sort_by_key(|parsed| parsed.definition.position());
    read
}

/// Hands each key of `table` (whose own key is `table_key`) to `read` with its
/// full path; `read` returns false for a key it does not know, which is then
/// reported as unknown, listing `known`.
pub(crate) fn read_keys(
    cx: &mut Cx,
    table_key: &str,
    table: &DeTable,
    known: &[&str],
    mut read: impl FnMut(&mut Cx, &Key, &str, &Value) -> bool,
) {
    for (field, value) in table.iter() {
        let key = key_path(table_key, field.get_ref());
        if !read(cx, field, &key, value) {
            cx.error(field.span(), &key, unknown_key(field.get_ref(), known));
        }
    }
}

/// "missing required key `size`", reported at the table's name.
pub(crate) fn missing_key(cx: &mut Cx, name: &Key, table_key: &str, missing: &str) {
    let message = format!("missing required key `{missing}`");
    cx.error(name.span(), table_key, message);
}

/// Reads `value` (at `key`), an array of names of `namespace`, into the
/// model's list: each name once, in order, also recorded in `refs`. `own`,
/// when given, is the name of the unit being read, which must not be listed
/// (a unit cannot be `after` itself).
pub(crate) fn references(
    cx: &mut Cx,
    key: &str,
    value: &Value,
    namespace: Namespace,
    own: Option<&str>,
    refs: &mut Vec<Reference>,
) -> Option<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for (name, span) in cx.string_array(key, value)? {
        if Some(name) == own {
            cx.error(span, key, format!("`{name}` cannot be after itself"));
        } else if !names.iter().any(|known| known == name) {
            refs.push(reference_at(cx, key, namespace, name, span));
            names.push(name.to_string());
        }
    }
    Some(names)
}

/// Reads `value` (at `key`), one name of `namespace`, also recorded in `refs`.
pub(crate) fn reference(
    cx: &mut Cx,
    key: &str,
    value: &Value,
    namespace: Namespace,
    refs: &mut Vec<Reference>,
) -> Option<String> {
    let name = cx.non_empty_string(key, value)?;
    refs.push(reference_at(cx, key, namespace, name, value.span()));
    Some(name.to_string())
}

fn reference_at(
    cx: &Cx,
    key: &str,
    namespace: Namespace,
    name: &str,
    span: Range<usize>,
) -> Reference {
    Reference {
        namespace,
        name: name.to_string(),
        at: cx.source.locate(span),
        key: key.to_string(),
    }
}

/// Maps each name in `definitions` to the index of its first definition, and
/// reports every later one at its name: `what(first)` says what is already
/// defined (e.g. "unit `web` is already defined as a service"), the error
/// adds where.
pub(crate) fn first_definitions<'d>(
    definitions: impl IntoIterator<Item = &'d Definition>,
    what: impl Fn(usize) -> String,
    errors: &mut Errors,
) -> HashMap<&'d str, usize> {
    let mut firsts: HashMap<&str, (usize, &Definition)> = HashMap::new();
    for (index, definition) in definitions.into_iter().enumerate() {
        let Some(&(first, first_definition)) = firsts.get(definition.name.as_str()) else {
            firsts.insert(&definition.name, (index, definition));
            continue;
        };
        let at = &first_definition.at;
        let message = format!(
            "{} at {}:{}:{}",
            what(first),
            at.file.display(),
            at.line,
            at.column,
        );
        errors.push(&definition.at, &definition.key, message);
    }
    firsts
        .into_iter()
        .map(|(name, (index, _))| (name, index))
        .collect()
}
