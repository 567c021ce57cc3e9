//! Property tests of the request decoder, run with the
//! unit tests: the same inputs the `protocol` fuzz target starts from
//! (fuzz/), mutated deterministically and in bounded number. Every input
//! must give a request or an error body — no panic — and whatever decodes
//! must survive a round trip through [`encode_request`].

use crate::protocol::{decode_request, encode_request, ErrorCode, KNOWN_VERBS};

/// A valid request line for each verb, arguments included.
const SAMPLES: &[&str] = &[
    r#"{"v":1,"cmd":"status","names":["web","web@2","w*"]}"#,
    r#"{"v":1,"cmd":"start","names":["web"],"wait":false}"#,
    r#"{"v":1,"cmd":"stop","names":["web@1"]}"#,
    r#"{"v":1,"cmd":"restart","names":["web*"],"wait":true}"#,
    r#"{"v":1,"cmd":"kill","names":["web"],"signal":"SIGHUP"}"#,
    r#"{"v":1,"cmd":"scale","name":"web","instances":3}"#,
    r#"{"v":1,"cmd":"shutdown"}"#,
    r#"{"v":1,"cmd":"submit","pool":"p","command":["/bin/true","a b"],"name":"job"}"#,
    r#"{"v":1,"cmd":"join","ids":[1,2],"timeout_ms":100}"#,
    r#"{"v":1,"cmd":"tasks","pool":"p"}"#,
    r#"{"v":1,"cmd":"output","id":1,"stream":"stderr"}"#,
    r#"{"v":1,"cmd":"cancel","ids":[3]}"#,
    r#"{"v":1,"cmd":"pool-close","pool":"p"}"#,
    r#"{"v":1,"cmd":"pool-terminate","pool":"p"}"#,
    r#"{"v":1,"cmd":"pool-join","pool":"p","timeout_ms":5}"#,
    r#"{"v":1,"cmd":"sem-list"}"#,
    r#"{"v":1,"cmd":"sem-acquire","name":"db","timeout_ms":10,"pid":42}"#,
    r#"{"v":1,"cmd":"sem-release","name":"db"}"#,
    r#"{"v":1,"cmd":"event-list"}"#,
    r#"{"v":1,"cmd":"event-set","name":"ready"}"#,
    r#"{"v":1,"cmd":"event-clear","name":"ready"}"#,
    r#"{"v":1,"cmd":"event-wait","name":"ready","timeout_ms":100}"#,
    r#"{"v":1,"cmd":"events"}"#,
    r#"{"v":1,"cmd":"daemon-reexec"}"#,
    r#"{"v":1,"cmd":"reload"}"#,
];

/// Bytes a mutation puts in: JSON's structure, digits, escapes, and bytes
/// that are not UTF-8.
const ALPHABET: &[u8] = b"{}[]\":,-.0123456789eE+truefalsnul \\/u\t\n\x00\x7f\xc3\xa9\xff";

/// A small deterministic generator (no extra crate).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Decodes `line`; if it is a request, checks the round trip.
fn check(line: &[u8]) {
    if let Ok(request) = decode_request(line) {
        let again = encode_request(&request);
        assert_eq!(
            decode_request(again.as_bytes()).as_ref(),
            Ok(&request),
            "round trip of {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

/// Every verb's line: the samples, and a bare line for any verb added since.
fn lines() -> Vec<String> {
    let mut lines: Vec<String> = SAMPLES.iter().map(|line| line.to_string()).collect();
    for verb in KNOWN_VERBS {
        let tag = format!("\"cmd\":\"{verb}\"");
        if !SAMPLES.iter().any(|line| line.contains(&tag)) {
            lines.push(format!("{{\"v\":1,{tag}}}"));
        }
    }
    lines
}

#[test]
fn the_samples_decode() {
    for line in SAMPLES {
        decode_request(line.as_bytes()).unwrap_or_else(|err| panic!("{line}: {err}"));
    }
}

#[test]
fn every_truncation_and_byte_edit_of_every_verb() {
    for line in lines() {
        let bytes = line.as_bytes();
        for end in 0..=bytes.len() {
            check(&bytes[..end]);
        }
        for at in 0..bytes.len() {
            // Three replacements per position, a different three each time.
            for k in 0..3 {
                let mut edited = bytes.to_vec();
                edited[at] = ALPHABET[(at * 7 + k * 13) % ALPHABET.len()];
                check(&edited);
            }
            let mut removed = bytes.to_vec();
            removed.remove(at);
            check(&removed);
        }
    }
}

#[test]
fn random_bytes_and_random_json_tokens() {
    let mut rng = Rng(8);
    for case in 0..3000 {
        let len = rng.below(64);
        let line: Vec<u8> = if case % 2 == 0 {
            (0..len).map(|_| rng.below(256) as u8).collect()
        } else {
            (0..len)
                .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                .collect()
        };
        check(&line);
    }
}

#[test]
fn many_edits_at_once() {
    let mut rng = Rng(9);
    let lines = lines();
    for _ in 0..3000 {
        let mut line = lines[rng.below(lines.len())].clone().into_bytes();
        for _ in 0..rng.below(8) + 1 {
            let at = rng.below(line.len() + 1);
            let byte = ALPHABET[rng.below(ALPHABET.len())];
            match rng.below(3) {
                0 if at < line.len() => line[at] = byte,
                1 if at < line.len() => {
                    line.remove(at);
                }
                _ => line.insert(at, byte),
            }
        }
        check(&line);
    }
}

#[test]
fn hostile_shapes_get_errors_not_crashes() {
    let deep = format!(
        "{{\"v\":1,\"cmd\":\"status\",\"names\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let many_names = format!(
        "{{\"v\":1,\"cmd\":\"status\",\"names\":[{}\"x\"]}}",
        "\"x\",".repeat(10_000)
    );
    let cases: Vec<(String, Option<ErrorCode>)> = vec![
        (deep, Some(ErrorCode::BadRequest)),
        (many_names, None),
        (
            r#"{"v":1e400,"cmd":"status"}"#.into(),
            Some(ErrorCode::BadRequest),
        ),
        (
            r#"{"v":18446744073709551617,"cmd":"status"}"#.into(),
            Some(ErrorCode::UnsupportedVersion),
        ),
        (
            r#"{"v":1,"cmd":"scale","name":"web","instances":-1}"#.into(),
            Some(ErrorCode::BadRequest),
        ),
        (
            r#"{"v":1,"cmd":"join","ids":[18446744073709551616]}"#.into(),
            Some(ErrorCode::BadRequest),
        ),
        (
            r#"{"v":1,"cmd":"status","names":["\ud800"]}"#.into(),
            Some(ErrorCode::BadRequest),
        ),
        (r#"{"v":1,"cmd":"status","cmd":"shutdown"}"#.into(), None),
        (
            r#"{"v":1,"cmd":"status","extra":true}"#.into(),
            Some(ErrorCode::BadRequest),
        ),
        (
            "\u{feff}{\"v\":1,\"cmd\":\"status\"}".into(),
            Some(ErrorCode::BadRequest),
        ),
    ];
    for (line, expected) in cases {
        let shown: String = line.chars().take(80).collect();
        let result = decode_request(line.as_bytes());
        if let Some(code) = expected {
            let err = result.expect_err(&shown);
            assert_eq!(err.code, code, "{shown}: {}", err.message);
        }
        check(line.as_bytes());
    }
}
