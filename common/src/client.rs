//! A blocking client for the control socket, used by herdctl and the tests.

use crate::protocol::{encode_request, ErrorBody, Reply, Request};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Why a call did not produce an `ok` payload.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon answers on the socket (missing file, refused, permission).
    #[error("cannot reach herdd at {}: {source}", path.display())]
    Unreachable { path: PathBuf, source: io::Error },
    /// The daemon answered with an error reply.
    #[error("{0}")]
    Remote(ErrorBody),
    /// The connection broke or the daemon sent something that is not a reply.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// One connection to herdd. Requests are answered in order.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Unreachable {
            path: path.to_path_buf(),
            source,
        })?;
        let writer = stream
            .try_clone()
            .map_err(|err| ClientError::Protocol(err.to_string()))?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends `request` and returns the `ok` payload of its reply.
    pub fn call(&mut self, request: &Request) -> Result<serde_json::Value, ClientError> {
        self.send(request)?;
        match self.next_reply()? {
            Some(Reply::Ok(payload)) => Ok(payload),
            Some(Reply::Error(body)) => Err(ClientError::Remote(body)),
            None => Err(ClientError::Protocol(
                "herdd closed the connection without replying".into(),
            )),
        }
    }

    /// Sends one request without reading the reply (for streaming verbs).
    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        self.writer
            .write_all(encode_request(request).as_bytes())
            .map_err(|err| ClientError::Protocol(format!("cannot send request: {err}")))
    }

    /// Reads the next reply line; `None` when the daemon closed the connection.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ClientError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => serde_json::from_str(&line)
                .map(Some)
                .map_err(|err| ClientError::Protocol(format!("bad reply {line:?}: {err}"))),
            Err(err) => Err(ClientError::Protocol(format!("cannot read reply: {err}"))),
        }
    }
}
