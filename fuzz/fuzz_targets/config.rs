//! The config parser: any text in a config file. Every input must give a
//! config or a list of errors — no panic, no hang.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // herdd reads configs as UTF-8 and reports a file that is not
    };
    // `include` reads other files: keep the fuzzer inside a directory that does not exist.
    if text.contains("include")
        && (text.contains('/') || text.contains('\\') || text.contains(".."))
    {
        return;
    }
    let _ = herd_config::parse(Path::new("/nonexistent/herd-fuzz/herd.toml"), text);
});
