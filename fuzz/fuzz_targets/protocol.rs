//! The control protocol's request decoder: any bytes a client can send.
//! Every input must decode to a request or to an error body — no panic, no
//! hang — and a decoded request must survive a round trip.

#![no_main]

use herd_common::protocol::{decode_request, encode_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    if let Ok(request) = decode_request(line) {
        // What herdd accepted, re-encoded, must mean the same thing.
        let again = encode_request(&request);
        assert_eq!(decode_request(again.as_bytes()).ok(), Some(request));
    }
});
