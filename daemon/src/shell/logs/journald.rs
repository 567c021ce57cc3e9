//! journald's native protocol: one datagram per journal entry, sent to its
//! Unix datagram socket (`/run/systemd/journal/socket` by default).
//!
//! An entry is a sequence of fields. A field whose value has no newline is
//! `NAME=value\n`; any other value is sent in the binary-safe form: `NAME\n`,
//! the value's length as a 64-bit little-endian integer, the value, `\n`.
//! Names are upper-case letters, digits and `_`, not starting with `_`
//! (those are the fields journald adds itself).
//!
//! Entries too large for one datagram would have to be passed in a memfd;
//! herd never needs that: lines are cut at 64 KiB (see `file.rs`), well
//! under the socket's default datagram limit.

/// Appends one field to `entry`, in the form its value needs.
pub fn field(entry: &mut Vec<u8>, name: &str, value: &[u8]) {
    debug_assert!(valid_name(name), "{name}");
    entry.extend_from_slice(name.as_bytes());
    if memchr::memchr(b'\n', value).is_some() {
        entry.push(b'\n');
        entry.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        entry.push(b'=');
    }
    entry.extend_from_slice(value);
    entry.push(b'\n');
}

/// What journald accepts as the name of a field a client sends.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// The fields of an entry, as journald would read them back: a reader of
/// the native protocol, for tests (and the tests of tests).
#[cfg(test)]
pub fn parse(mut entry: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut fields = Vec::new();
    while !entry.is_empty() {
        let end = memchr::memchr(b'\n', entry)?;
        let line = &entry[..end];
        if let Some(eq) = memchr::memchr(b'=', line) {
            let name = String::from_utf8(line[..eq].to_vec()).ok()?;
            fields.push((name, line[eq + 1..].to_vec()));
            entry = &entry[end + 1..];
        } else {
            let name = String::from_utf8(line.to_vec()).ok()?;
            let rest = &entry[end + 1..];
            let length = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?) as usize;
            let value = rest.get(8..8 + length)?;
            if rest.get(8 + length) != Some(&b'\n') {
                return None;
            }
            fields.push((name, value.to_vec()));
            entry = &rest[8 + length + 1..];
        }
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_name_equals_value_lines() {
        let mut entry = Vec::new();
        field(&mut entry, "MESSAGE", b"hello world");
        field(&mut entry, "PRIORITY", b"6");
        assert_eq!(entry, b"MESSAGE=hello world\nPRIORITY=6\n");
    }

    #[test]
    fn values_with_newlines_are_length_prefixed() {
        let mut entry = Vec::new();
        field(&mut entry, "MESSAGE", b"two\nlines");
        let mut expected = b"MESSAGE\n".to_vec();
        expected.extend_from_slice(&9u64.to_le_bytes());
        expected.extend_from_slice(b"two\nlines\n");
        assert_eq!(entry, expected);
    }

    #[test]
    fn entries_read_back_whatever_their_bytes() {
        let values: [&[u8]; 4] = [b"", b"a=b", b"\n\n", b"\0\xff\x1b[31m"];
        let mut entry = Vec::new();
        for value in values {
            field(&mut entry, "MESSAGE", value);
        }
        let fields = parse(&entry).unwrap();
        let read: Vec<&[u8]> = fields.iter().map(|(_, v)| v.as_slice()).collect();
        assert_eq!(read, values);
    }

    #[test]
    fn names_journald_accepts() {
        assert!(valid_name("SYSLOG_IDENTIFIER"));
        assert!(valid_name("HERD_INSTANCE"));
        assert!(!valid_name("_PID"));
        assert!(!valid_name("message"));
        assert!(!valid_name(""));
    }
}
