//! `multiprocessing.Pool.map` with herd, from Rust: one task per argument in
//! a pool of a running herdd, results in order.
//!
//! ```sh
//! cargo run -p herd-common --example pool_map -- convert sha256sum README.md Cargo.toml
//! ```
//! (socket: `HERD_SOCKET`, else herdctl's default; the examples/demo.toml
//! herdd listens on /tmp/herd-demo/herd.sock.)

use herd_common::api::Herd;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [pool, program, items @ ..] = args.as_slice() else {
        eprintln!("usage: pool_map POOL PROGRAM ITEM...");
        return ExitCode::from(2);
    };
    let result = Herd::connect_default()
        .and_then(|mut herd| herd.map(pool, &[program.as_str(), "{}"], items));
    match result {
        Ok(results) => {
            for result in &results {
                print!("{}", result.stdout);
            }
            if results.iter().all(|result| result.successful()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("pool_map: {error}");
            ExitCode::FAILURE
        }
    }
}
