//! Bytes from a client, as the daemon's connection reads them: framing,
//! size limits, JSON and the request schema. Every line must become a
//! request or an error answer, and an accepted request must survive a
//! round trip through its JSON form.

use std::io::Write;
use std::os::unix::net::UnixStream;
use supd::control::connection::{Connection, Incoming};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok((ours, mut theirs)) = UnixStream::pair() else {
            return;
        };
        let Ok(mut connection) = Connection::new(ours) else {
            return;
        };
        // More than the socket buffer would block: the fuzzer keeps inputs
        // far smaller anyway.
        let _ = theirs.write_all(&data[..data.len().min(100_000)]);
        drop(theirs);
        while !connection.read_closed {
            if connection.fill().is_err() {
                return;
            }
            while let Some(incoming) = connection.next_request() {
                // What supd accepts, it must also be able to say back.
                if let Incoming::Request(request) = incoming {
                    let Ok(line) = serde_json::to_string(&request) else {
                        panic!("cannot encode {request:?}");
                    };
                    let again: supd::control::protocol::Request =
                        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
                    assert_eq!(again, request);
                }
            }
            if !connection.wants_read() {
                break;
            }
        }
    });
}
