//! The blocking client side, used by supctl.

use super::protocol::{Command, Request, Response, PROTOCOL_VERSION};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
// The io errors are in the messages and not chained as sources, so that
// supctl (anyhow, `{:#}`) prints each cause once.
pub enum ClientError {
    #[error(
        "cannot connect to supd at {path}: {error} (is supd running? set --socket or SUPD_SOCKET)"
    )]
    Connect { path: PathBuf, error: io::Error },
    #[error("cannot connect to supd at {path}: permission denied: you are not root or in supd's group (`supd`, or its --socket-group)")]
    Denied { path: PathBuf },
    #[error("talking to supd at {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("supd at {path} closed the connection without answering")]
    NoAnswer { path: PathBuf },
    #[error("unexpected answer from supd at {path}: {detail}")]
    BadAnswer { path: PathBuf, detail: String },
}

pub fn call(socket: &Path, command: Command) -> Result<Response, ClientError> {
    call_keeping(socket, command).map(|(response, _)| response)
}

/// `call` for `daemon-reexec`: after the answer, waits (up to `timeout`)
/// for supd to close the connection, which its exec does.
pub fn call_until_closed(
    socket: &Path,
    command: Command,
    timeout: std::time::Duration,
) -> Result<Response, ClientError> {
    let (response, mut reader) = call_keeping(socket, command)?;
    let io_error = |error| ClientError::Io {
        path: socket.to_path_buf(),
        error,
    };
    reader
        .get_ref()
        .set_read_timeout(Some(timeout))
        .map_err(io_error)?;
    let mut rest = Vec::new();
    io::Read::read_to_end(&mut reader, &mut rest).map_err(io_error)?;
    Ok(response)
}

/// `call` for a request answered after progress lines (`image import`):
/// each `ImportProgress` goes to `progress`, the final answer is returned.
pub fn call_with_progress(
    socket: &Path,
    command: Command,
    mut progress: impl FnMut(&super::protocol::Body),
) -> Result<Response, ClientError> {
    let (mut response, mut reader) = call_keeping(socket, command)?;
    while matches!(response.body, super::protocol::Body::ImportProgress { .. }) {
        progress(&response.body);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|error| ClientError::Io {
                path: socket.to_path_buf(),
                error,
            })?;
        if line.is_empty() {
            return Err(ClientError::NoAnswer {
                path: socket.to_path_buf(),
            });
        }
        response = serde_json::from_str(&line).map_err(|e| ClientError::BadAnswer {
            path: socket.to_path_buf(),
            detail: e.to_string(),
        })?;
    }
    Ok(response)
}

/// `events`: after the first answer, calls `each` with every answer that
/// follows until supd closes the connection or `each` returns false.
pub fn subscribe(
    socket: &Path,
    command: Command,
    mut each: impl FnMut(Response) -> bool,
) -> Result<Response, ClientError> {
    let (first, mut reader) = call_keeping(socket, command)?;
    if !matches!(first.body, super::protocol::Body::Subscribed) {
        return Ok(first);
    }
    loop {
        let mut line = String::new();
        let read = reader
            .read_line(&mut line)
            .map_err(|error| ClientError::Io {
                path: socket.to_path_buf(),
                error,
            })?;
        if read == 0 {
            return Ok(first);
        }
        let response = serde_json::from_str(&line).map_err(|e| ClientError::BadAnswer {
            path: socket.to_path_buf(),
            detail: e.to_string(),
        })?;
        if !each(response) {
            return Ok(first);
        }
    }
}

/// Sends the request and reads the first answer line; the reader keeps
/// whatever came after it.
fn call_keeping(
    socket: &Path,
    command: Command,
) -> Result<(Response, BufReader<UnixStream>), ClientError> {
    let io_error = |error| ClientError::Io {
        path: socket.to_path_buf(),
        error,
    };
    let mut stream = UnixStream::connect(socket).map_err(|error| match error.kind() {
        io::ErrorKind::PermissionDenied => ClientError::Denied {
            path: socket.to_path_buf(),
        },
        _ => ClientError::Connect {
            path: socket.to_path_buf(),
            error,
        },
    })?;
    let request = Request {
        v: PROTOCOL_VERSION,
        command,
    };
    let mut line = serde_json::to_vec(&request).map_err(|e| io_error(io::Error::other(e)))?;
    line.push(b'\n');
    // A refused client is answered and closed before its request is read:
    // the write then fails with EPIPE, and the answer is still there.
    if let Err(e) = stream.write_all(&line) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(io_error(e));
        }
    }
    let mut answer = String::new();
    let mut reader = BufReader::new(stream);
    reader.read_line(&mut answer).map_err(io_error)?;
    if answer.is_empty() {
        return Err(ClientError::NoAnswer {
            path: socket.to_path_buf(),
        });
    }
    let response = serde_json::from_str(&answer).map_err(|e| ClientError::BadAnswer {
        path: socket.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok((response, reader))
}
