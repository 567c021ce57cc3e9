//! `[herd] metrics_listen`: `GET /metrics` over HTTP/1.x for a Prometheus
//! scraper. A front end like the control socket, and as careful: at most
//! 8 (`MAX_SCRAPES`) connections at once (more are closed at once), a request
//! head of at most 8 KiB (`MAX_HEAD`) read within 10 s (`IO_TIMEOUT`), one
//! response per connection, and the answer written within the same limit,
//! so a slow or hostile client costs herdd one small task and nothing else.
//! Other paths get 404, other methods 405. Anyone who can reach the address
//! may read it: it is off by default, and meant for loopback.

use crate::shell::clients::{ClientId, RequestSender};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// Scrapes served at once.
const MAX_SCRAPES: usize = 8;
/// Longest request head read (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request, and to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The client id the core sees for scrapes (far above socket and D-Bus ids);
/// they only read, so they never hold anything the core must release.
pub const SCRAPER: ClientId = 1 << 56;

/// The listening socket, bound at start-up so that an address that cannot
/// be bound stops herdd with an error naming it.
pub struct MetricsListener {
    listener: std::net::TcpListener,
}

impl MetricsListener {
    pub fn bind(address: SocketAddr) -> anyhow::Result<MetricsListener> {
        let listener = std::net::TcpListener::bind(address).map_err(|err| {
            anyhow::anyhow!("cannot listen on herd.metrics_listen = \"{address}\": {err}")
        })?;
        listener.set_nonblocking(true)?;
        Ok(MetricsListener { listener })
    }

    /// Serves scrapes until herdd exits (the runtime drops this task).
    pub async fn serve(self, core: RequestSender) {
        let listener = match TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(err) => {
                warn!(error = %err, "cannot serve metrics");
                return;
            }
        };
        if let Ok(address) = listener.local_addr() {
            info!(%address, "serving metrics on GET /metrics");
        }
        let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and the like: pause rather than spin.
                    debug!(error = %err, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                debug!(%peer, "too many metrics scrapes at once; closing");
                continue;
            };
            let core = core.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let _ = tokio::time::timeout(IO_TIMEOUT * 2, answer(stream, &core)).await;
            });
        }
    }
}

/// Reads one request head and writes one response.
async fn answer(mut stream: TcpStream, core: &RequestSender) {
    let Ok(Some(head)) = tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await else {
        return;
    };
    let response = match route(&head) {
        Route::Metrics { body } => match super::metrics::gather(core, SCRAPER).await {
            Ok(text) => response(
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                if body { text } else { String::new() },
            ),
            Err(_) => response(
                "503 Service Unavailable",
                "text/plain",
                "herdd is shutting down\n".into(),
            ),
        },
        Route::NotFound => response(
            "404 Not Found",
            "text/plain",
            "only /metrics is here\n".into(),
        ),
        Route::BadMethod => response(
            "405 Method Not Allowed",
            "text/plain",
            "only GET and HEAD\n".into(),
        ),
        Route::Bad => response("400 Bad Request", "text/plain", "bad request\n".into()),
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, stream.write_all(response.as_bytes())).await;
    let _ = stream.shutdown().await;
}

/// The request head up to its blank line; `None` if the client closed
/// first or sent more than [`MAX_HEAD`] bytes without one.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    loop {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        head.extend_from_slice(&buffer[..read]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Some(String::from_utf8_lossy(&head).into_owned());
        }
        if head.len() > MAX_HEAD {
            return None;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `body`: false for HEAD.
    Metrics {
        body: bool,
    },
    NotFound,
    BadMethod,
    Bad,
}

fn route(head: &str) -> Route {
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::Bad;
    }
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Route::Metrics {
            body: method == "GET",
        },
        ("GET" | "HEAD", _) => Route::NotFound,
        _ => Route::BadMethod,
    }
}

fn response(status: &str, content_type: &str, body: String) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let get = |line: &str| route(&format!("{line}\r\nHost: x\r\n\r\n"));
        assert_eq!(get("GET /metrics HTTP/1.1"), Route::Metrics { body: true });
        assert_eq!(
            get("GET /metrics?x=1 HTTP/1.0"),
            Route::Metrics { body: true }
        );
        assert_eq!(
            get("HEAD /metrics HTTP/1.1"),
            Route::Metrics { body: false }
        );
        assert_eq!(get("GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(get("POST /metrics HTTP/1.1"), Route::BadMethod);
        assert_eq!(get("GET /metrics"), Route::Bad);
        assert_eq!(get("garbage"), Route::Bad);
    }
}
