//! Table-driven tests of the whole crate through its public API.

mod accounts;
mod confine;
mod errors;
mod hooks;
mod includes;
mod logs;
mod property;
mod valid;

use std::path::Path;

use crate::parse;

/// The path the in-memory tests pretend to read; never touched on disk.
const MAIN: &str = "/etc/herd/herd.toml";

/// Every error `text` produces, as displayed.
fn errors_of(text: &str) -> Vec<String> {
    match parse(Path::new(MAIN), text) {
        Ok(config) => panic!("expected errors, got {config:#?}\nfor:\n{text}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

/// Each case is a config and the one error it must produce.
fn assert_single_errors(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (text, expected) in cases {
        let got = errors_of(text);
        let expected = format!("{MAIN}:{expected}");
        if got != [expected.clone()] {
            failures.push(format!(
                "config:\n{text}\nexpected: {expected}\n     got: {got:#?}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
