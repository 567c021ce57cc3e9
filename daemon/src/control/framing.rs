//! How the control socket frames what it sends: one JSON value per line
//! (docs/protocol.md), each written within [`STALL_TIMEOUT`], and the
//! replies more than one place needs, built once.

use herd_common::events::EventLine;
use herd_common::protocol::{ErrorCode, Reply, MAX_REQUEST_BYTES};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// A request must be complete this long after its first byte arrived, and
/// whatever herdd writes must be taken by the client within this long;
/// otherwise the connection is closed. Defeats slowloris clients (half a
/// line, then nothing, or one byte at a time) and clients that never read.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes `bytes`; false when the client has gone, or has not taken them
/// within [`STALL_TIMEOUT`] (it stopped reading: the task must not wait
/// for ever).
pub async fn write(write: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> bool {
    let written = tokio::time::timeout(STALL_TIMEOUT, write.write_all(bytes)).await;
    matches!(written, Ok(Ok(())))
}

/// Writes one reply line.
pub async fn send(to: &mut (impl AsyncWrite + Unpin), reply: &Reply) -> bool {
    write(to, reply.to_line().as_bytes()).await
}

/// Appends one `{"event": EventLine}` line to `out`.
pub fn encode_event(out: &mut Vec<u8>, event: &EventLine) {
    out.extend_from_slice(b"{\"event\":");
    // Writing a plain struct into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, event);
    out.extend_from_slice(b"}\n");
}

/// The reply to a request the core will never answer: herdd is exiting.
pub fn shutting_down() -> Reply {
    Reply::error(ErrorCode::ShuttingDown, "herdd is shutting down")
}

/// The reply to a request of [`MAX_REQUEST_BYTES`] or more.
pub fn too_large() -> Reply {
    Reply::error(
        ErrorCode::TooLarge,
        format!("request longer than {MAX_REQUEST_BYTES} bytes"),
    )
}

/// A reply line without its newline (D-Bus `Request` returns it so).
pub fn line(reply: &Reply) -> String {
    let mut line = reply.to_line();
    line.truncate(line.trim_end().len());
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_common::events::Lifecycle;

    #[test]
    fn events_are_framed_as_one_object_per_line() {
        let mut out = Vec::new();
        let event = EventLine {
            time: "2026-01-01T00:00:00.000Z".into(),
            event: Lifecycle::Ready {
                instance: "web".into(),
            },
        };
        encode_event(&mut out, &event);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with("}\n") && text.matches('\n').count() == 1,
            "{text}"
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["event"]["type"], "ready");
        assert_eq!(value["event"]["instance"], "web");
    }

    #[test]
    fn shared_replies_say_what_happened() {
        assert!(shutting_down().to_line().contains("shutting_down"));
        assert!(too_large().to_line().contains("too_large"));
        assert_eq!(line(&shutting_down()).trim_end(), line(&shutting_down()));
    }
}
