//! A child's environment as `exec` takes it: `KEY=VALUE` C strings.
//!
//! A child gets a base (herdd's own environment, or only `PATH` with
//! `clear_env`) with its own variables on top. The bases are encoded once
//! and shared by every child: a spawn encodes only its own variables (a
//! pool task's are a handful), not herdd's whole environment again.
//!
//! herdd's environment is read at its first spawn. herdd changes it only
//! before that (it takes out `NOTIFY_SOCKET` and what a previous image
//! handed over, which children must not see) and just before a re-exec (a
//! variable for the next image, which children must not see either), so
//! every child gets what it got when the environment was read per spawn.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::{Arc, OnceLock};

/// `PATH` of a `clear_env` process whose `env` sets none (systemd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The entries of one child's environment.
pub struct Environ {
    /// The base, shared with other children, sorted by name.
    base: Arc<[CString]>,
    /// Indexes in `base` of the entries its own variables replace (a few).
    replaced: Vec<usize>,
    /// Its own variables.
    own: Vec<CString>,
}

impl Environ {
    /// herdd's environment (or, with `clear`, `PATH` alone) with `vars` on
    /// top, a later one of the same name replacing an earlier one. A NUL
    /// byte in a variable is `InvalidInput`.
    pub fn new<'a>(
        clear: bool,
        vars: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> io::Result<Environ> {
        let base = if clear { cleared() } else { inherited() };
        Environ::on(base, vars)
    }

    /// Exactly `vars` (no base), the last of a name winning.
    pub fn from_pairs(vars: &[(OsString, OsString)]) -> io::Result<Environ> {
        let vars = vars
            .iter()
            .map(|(key, value)| (key.as_bytes(), value.as_bytes()));
        Environ::on(Arc::from(Vec::new()), vars)
    }

    fn on<'a>(
        base: Arc<[CString]>,
        vars: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> io::Result<Environ> {
        let vars: BTreeMap<&[u8], &[u8]> = vars.into_iter().collect();
        // The base is sorted by name: a lookup per own variable, not a
        // comparison per base entry.
        let replaced = vars
            .keys()
            .filter_map(|name| {
                base.binary_search_by(|entry| key(entry.as_bytes()).cmp(name))
                    .ok()
            })
            .collect();
        let own = vars
            .into_iter()
            .map(|(key, value)| entry(key, value))
            .collect::<io::Result<_>>()?;
        Ok(Environ {
            base,
            replaced,
            own,
        })
    }

    /// Every entry, in the order the child gets them.
    pub fn entries(&self) -> impl Iterator<Item = &CStr> {
        let base = self.base.iter().enumerate();
        let base = base.filter(|(at, _)| !self.replaced.contains(at));
        let base = base.map(|(_, entry)| entry.as_c_str());
        base.chain(self.own.iter().map(CString::as_c_str))
    }

    /// The value of `name`, if the child has it.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.entries().find_map(|entry| {
            let entry = entry.to_bytes();
            (key(entry) == name).then(|| &entry[name.len() + 1..])
        })
    }

    /// How many entries the child gets.
    pub fn len(&self) -> usize {
        self.base.len() - self.replaced.len() + self.own.len()
    }

    /// Whether the child gets no variable at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The name in a `KEY=VALUE` entry (all of it if it has no `=`).
fn key(entry: &[u8]) -> &[u8] {
    let end = entry.iter().position(|&b| b == b'=').unwrap_or(entry.len());
    &entry[..end]
}

fn entry(key: &[u8], value: &[u8]) -> io::Result<CString> {
    let mut pair = Vec::with_capacity(key.len() + value.len() + 2);
    pair.extend_from_slice(key);
    pair.push(b'=');
    pair.extend_from_slice(value);
    CString::new(pair).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// herdd's own environment, encoded at the first call (see the module docs).
fn inherited() -> Arc<[CString]> {
    static INHERITED: OnceLock<Arc<[CString]>> = OnceLock::new();
    INHERITED
        .get_or_init(|| {
            // One entry per name, the last one winning, as before; sorted
            // by name (`Environ::on` looks names up).
            let vars: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
            vars.into_iter()
                .filter_map(|(key, value)| entry(&key.into_vec(), value.as_bytes()).ok())
                .collect()
        })
        .clone()
}

/// The base of a `clear_env` child: [`DEFAULT_PATH`].
fn cleared() -> Arc<[CString]> {
    static CLEARED: OnceLock<Arc<[CString]>> = OnceLock::new();
    CLEARED
        .get_or_init(|| {
            entry(b"PATH", DEFAULT_PATH.as_bytes())
                .into_iter()
                .collect()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(environ: &Environ) -> Vec<String> {
        environ
            .entries()
            .map(|entry| entry.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn own_variables_replace_the_bases_and_the_last_of_a_name_wins() {
        let base: Arc<[CString]> = ["A=1", "B=2", "PATH=/bin"]
            .iter()
            .map(|entry| CString::new(*entry).unwrap())
            .collect();
        let vars: [(&[u8], &[u8]); 3] = [(b"PATH", b"/x"), (b"C", b"3"), (b"PATH", b"/y")];
        let environ = Environ::on(base, vars).unwrap();
        assert_eq!(strings(&environ), ["A=1", "B=2", "C=3", "PATH=/y"]);
        assert_eq!(environ.get(b"PATH"), Some(&b"/y"[..]));
        assert_eq!(environ.get(b"A"), Some(&b"1"[..]));
        assert_eq!(environ.get(b"D"), None);
        assert_eq!(environ.len(), 4);
    }

    #[test]
    fn a_cleared_environment_has_the_default_path_unless_replaced() {
        let environ = Environ::new(true, [(&b"X"[..], &b"1"[..])]).unwrap();
        let path = format!("PATH={DEFAULT_PATH}");
        assert_eq!(strings(&environ), [path.as_str(), "X=1"]);
        let environ = Environ::new(true, [(&b"PATH"[..], &b"/opt"[..])]).unwrap();
        assert_eq!(strings(&environ), ["PATH=/opt"]);
    }

    #[test]
    fn the_inherited_environment_is_herdds_own() {
        let environ = Environ::new(false, []).unwrap();
        let mut expected: Vec<String> = std::env::vars_os()
            .map(|(key, value)| format!("{}={}", key.to_string_lossy(), value.to_string_lossy()))
            .collect();
        expected.sort();
        expected.dedup();
        let mut got = strings(&environ);
        got.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_nul_byte_is_invalid_input() {
        let err = Environ::new(true, [(&b"X"[..], &b"a\0b"[..])])
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
