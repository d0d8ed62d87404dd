//! One client connection on the daemon side: non-blocking, line-framed, and
//! bounded both ways, so a slow or hostile client can never stall the loop
//! or grow supd's memory: input is read only up to one request's worth, and
//! the next request is served only once the last answer was taken.

use super::protocol::{Request, Response, MAX_REQUEST_BYTES, PROTOCOL_VERSION};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

/// Requests are served while less than this is waiting to be written.
const SERVE_BELOW: usize = 64 * 1024;

/// A client with more unread output than this is dropped (an answer is
/// far smaller; only a client that never reads gets there).
pub const MAX_QUEUED_OUTPUT: usize = 16 << 20;

pub struct Connection {
    pub stream: UnixStream,
    /// The peer's uid, for the per-peer connection limit.
    pub peer_uid: Option<u32>,
    input: Vec<u8>,
    output: Vec<u8>,
    /// The peer closed its side, or sent something we will not read past.
    pub read_closed: bool,
    pub access: super::access::Access,
    /// A request line came (answered or refused): a client that connected
    /// but has not yet sent one is about to.
    pub spoke: bool,
}

/// What a line of input turned into.
pub enum Incoming {
    Request(Request),
    /// Already answered with an error response.
    Rejected,
}

impl Connection {
    pub fn new(stream: UnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Connection {
            input: Vec::new(),
            output: Vec::new(),
            peer_uid: super::access::peer_uid(&stream),
            stream,
            read_closed: false,
            access: super::access::Access::Full,
            spoke: false,
        })
    }

    /// Reads what is available, up to a little over one request: the rest
    /// waits in the socket, where it holds the client back. Returns an error
    /// only for a broken socket.
    pub fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        while self.wants_read() {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.read_closed = true;
                    return Ok(());
                }
                Ok(n) => self
                    .input
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether reading more could make progress (level-triggered epoll must
    /// not be asked for input that `fill` would leave in the socket).
    pub fn wants_read(&self) -> bool {
        !self.read_closed && self.input.len() <= MAX_REQUEST_BYTES
    }

    /// Whether the last answers were taken, so that the next request may be
    /// served.
    pub fn may_serve(&self) -> bool {
        self.output.len() < SERVE_BELOW
    }

    /// Bytes sent and not yet taken by the client.
    pub fn queued(&self) -> usize {
        self.output.len()
    }

    /// The client let more output pile up than any answer needs.
    pub fn overflowed(&self) -> bool {
        self.output.len() > MAX_QUEUED_OUTPUT
    }

    /// The next complete request line, if any. Malformed, oversized or
    /// wrong-version lines are answered here with an error response.
    pub fn next_request(&mut self) -> Option<Incoming> {
        let Some(end) = self.input.iter().position(|&b| b == b'\n') else {
            if self.input.len() > MAX_REQUEST_BYTES {
                self.input.clear();
                self.read_closed = true;
                self.send(&Response::error(format!(
                    "request longer than {MAX_REQUEST_BYTES} bytes"
                )));
                return Some(Incoming::Rejected);
            }
            return None;
        };
        self.spoke = true;
        let line: Vec<u8> = self.input.drain(..=end).collect();
        let line = &line[..line.len() - 1];
        if line.iter().all(u8::is_ascii_whitespace) {
            return self.next_request();
        }
        if line.len() > MAX_REQUEST_BYTES {
            self.send(&Response::error(format!(
                "request longer than {MAX_REQUEST_BYTES} bytes"
            )));
            return Some(Incoming::Rejected);
        }
        match parse_request(line) {
            Ok(request) => Some(Incoming::Request(request)),
            Err(message) => {
                self.send(&Response::error(message));
                Some(Incoming::Rejected)
            }
        }
    }

    /// Queues a response and writes as much as the socket takes.
    pub fn send(&mut self, response: &Response) {
        match serde_json::to_vec(response) {
            Ok(mut line) => {
                line.push(b'\n');
                self.output.extend_from_slice(&line);
            }
            Err(e) => log::error!("cannot encode a response: {e}"),
        }
        let _ = self.flush();
    }

    /// Returns true once everything queued is written.
    pub fn flush(&mut self) -> io::Result<bool> {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    pub fn wants_write(&self) -> bool {
        !self.output.is_empty()
    }
}

fn parse_request(line: &[u8]) -> Result<Request, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("malformed request: {e}"))?;
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "unsupported protocol version {v} (this supd speaks {PROTOCOL_VERSION})"
            ))
        }
        None => return Err("request without protocol version \"v\"".into()),
    }
    serde_json::from_value(value).map_err(|e| format!("invalid request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(bytes: &[u8]) -> (Vec<bool>, String) {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut conn = Connection::new(a).unwrap();
        b.write_all(bytes).unwrap();
        drop(b.try_clone().unwrap());
        conn.fill().unwrap();
        let mut seen = Vec::new();
        while let Some(incoming) = conn.next_request() {
            seen.push(matches!(incoming, Incoming::Request(_)));
        }
        b.set_nonblocking(true).unwrap();
        let mut answers = String::new();
        let _ = b.read_to_string(&mut answers);
        (seen, answers)
    }

    #[test]
    fn garbage_gets_error_responses_and_valid_lines_still_parse() {
        let (seen, answers) = feed(
            b"not json\n{\"v\":2,\"cmd\":\"status\"}\n{\"cmd\":\"status\"}\n{\"v\":1,\"cmd\":\"nope\"}\n\n{\"v\":1,\"cmd\":\"status\"}\n",
        );
        assert_eq!(seen, [false, false, false, false, true]);
        let lines: Vec<&str> = answers.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].contains("malformed request"));
        assert!(lines[1].contains("unsupported protocol version 2"));
        assert!(lines[2].contains("without protocol version"));
        assert!(lines[3].contains("invalid request"));
    }

    #[test]
    fn oversized_request_is_refused() {
        let big = vec![b'x'; MAX_REQUEST_BYTES + 10];
        let (seen, answers) = feed(&big);
        assert_eq!(seen, [false]);
        assert!(answers.contains("request longer than"));
    }
}
