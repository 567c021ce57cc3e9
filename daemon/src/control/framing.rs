//! How the control socket frames what it sends: one JSON value per line
//! (docs/protocol.md), each written within [`STALL_TIMEOUT`], and the
//! replies more than one place needs, built once.

use herd_common::events::EventLine;
use herd_common::protocol::{ErrorCode, Reply, MAX_REQUEST_BYTES};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A request must be complete this long after its first byte arrived, and
/// whatever herdd writes must be taken by the client within this long;
/// otherwise the connection is closed. Defeats slowloris clients (half a
/// line, then nothing, or one byte at a time) and clients that never read.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A buffered reader that holds its buffer only while it holds unread
/// bytes: a connection waiting for a reply, or for its client to speak,
/// costs no buffer (thousands of clients may wait on an event).
pub struct LeanReader<R> {
    inner: R,
    /// Empty while nothing is buffered.
    buf: Box<[u8]>,
    // 32 bits: a reader is part of every connection's state, and its
    // buffer is a few kB.
    pos: u32,
    filled: u32,
    capacity: u32,
}

impl<R> LeanReader<R> {
    pub fn new(capacity: usize, inner: R) -> Self {
        LeanReader {
            inner,
            buf: Box::default(),
            pos: 0,
            filled: 0,
            capacity: capacity.clamp(1, u32::MAX as usize) as u32,
        }
    }

    fn release(&mut self) {
        self.buf = Box::default();
        self.pos = 0;
        self.filled = 0;
    }
}

impl<R: AsyncRead + Unpin> AsyncBufRead for LeanReader<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.pos >= this.filled {
            if this.buf.is_empty() {
                this.buf = vec![0; this.capacity as usize].into_boxed_slice();
            }
            let mut read = ReadBuf::new(&mut this.buf);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut read);
            let filled = read.filled().len();
            if let Poll::Pending | Poll::Ready(Err(_)) = polled {
                this.release();
                return polled.map_ok(|()| &[][..]);
            }
            this.pos = 0;
            // At most the buffer's size, itself a u32.
            this.filled = filled as u32;
        }
        Poll::Ready(Ok(&this.buf[this.pos as usize..this.filled as usize]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.pos = (this.pos as usize + amt).min(this.filled as usize) as u32;
        if this.pos == this.filled {
            this.release();
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LeanReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let available = ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(out.remaining());
        out.put_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

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

    #[tokio::test]
    async fn the_lean_reader_reads_lines_whole_and_holds_no_buffer_between_them() {
        use tokio::io::AsyncBufReadExt;
        let (mut client, server) = tokio::io::duplex(1024);
        // A buffer smaller than a line: lines still come whole, in order.
        let mut reader = LeanReader::new(8, server);
        client.write_all(b"{\"a\":1}\n{\"bb\":22}\n").await.unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert_eq!(line, "{\"a\":1}\n");
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        assert_eq!(line, "{\"bb\":22}\n");
        assert!(reader.buf.is_empty(), "everything read: no buffer held");
        // Waiting for more holds none either.
        let waiting = tokio::time::timeout(Duration::from_millis(20), reader.fill_buf()).await;
        assert!(waiting.is_err());
        assert!(reader.buf.is_empty(), "waiting to read: no buffer held");
        client.write_all(b"x").await.unwrap();
        drop(client);
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        assert_eq!(line, "x");
        assert_eq!(reader.fill_buf().await.unwrap(), b"", "then the end");
    }

    #[test]
    fn shared_replies_say_what_happened() {
        assert!(shutting_down().to_line().contains("shutting_down"));
        assert!(too_large().to_line().contains("too_large"));
        assert_eq!(line(&shutting_down()).trim_end(), line(&shutting_down()));
    }
}
