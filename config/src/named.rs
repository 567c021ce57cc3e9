//! What `[service.NAME]`, `[task.NAME]` and `[pool.NAME]` have in common:
//! each is a table under a name that must be valid and defined only once, and
//! each refuses keys it does not know (or does not support yet).

use std::borrow::Cow;
use std::collections::HashMap;

use herd_common::names::is_valid_unit_name;
use toml::de::DeTable;
use toml::Spanned;

use crate::errors::{Errors, Location};
use crate::value::{key_path, not_supported_yet, unknown_key, Cx, Value};

/// A key of a table, with its span.
pub(crate) type Key<'i> = Spanned<Cow<'i, str>>;

/// Where a named table is defined, for errors reported once every file is read.
#[derive(Debug)]
pub(crate) struct Definition {
    /// Where the name is written (`web` in `[service.web]`).
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

/// Reads every table of `[TABLE]` (`value`) in one file. Each name is checked
/// (`noun` names what it is in the error: "unit", "pool"), then the table is
/// handed to `read_one` with its name and key prefix; a value that is not a
/// table is reported and skipped.
pub(crate) fn read_tables<T>(
    cx: &mut Cx,
    table: &str,
    noun: &str,
    value: &Value,
    mut read_one: impl FnMut(&mut Cx, &Key, String, &DeTable) -> T,
) -> Vec<T> {
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
        read.push(read_one(cx, name, key, fields));
    }
    read
}

/// Reports `field`, a key that its table does not accept: one that a later
/// release will implement (`not_yet`), or else an unknown one, listing `known`.
/// `key` is its full path.
pub(crate) fn reject_key(cx: &mut Cx, field: &Key, key: &str, not_yet: &[&str], known: &[&str]) {
    let name: &str = field.get_ref();
    let message = if not_yet.contains(&name) {
        not_supported_yet(&format!("`{name}`"))
    } else {
        unknown_key(name, known)
    };
    cx.error(field.span(), key, message);
}

/// Maps each name in `definitions` to the index of its first definition, and
/// reports every later one at its name: `what(first)` says what is already
/// defined (e.g. "unit `web` is already defined as a service"), the error
/// adds where.
pub(crate) fn first_definitions<'d>(
    definitions: impl IntoIterator<Item = (&'d str, &'d Definition)>,
    what: impl Fn(usize) -> String,
    errors: &mut Errors,
) -> HashMap<&'d str, usize> {
    let mut firsts: HashMap<&str, (usize, &Definition)> = HashMap::new();
    for (index, (name, definition)) in definitions.into_iter().enumerate() {
        let Some(&(first, first_definition)) = firsts.get(name) else {
            firsts.insert(name, (index, definition));
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
