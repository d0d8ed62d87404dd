//! Container output to the systemd journal over its native protocol: one
//! datagram per record, with SYSLOG_IDENTIFIER and SUPD_UNIT set to the
//! unit name and SUPD_STREAM to `stdout` or `stderr`, so that
//! `journalctl SUPD_UNIT=web` (or `-t web`) finds it. The socket is
//! non-blocking: a journald that does not read costs the records it
//! misses (counted, and said), never supd's event loop.

use super::output::{Record, Stream};
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where journald listens for native messages.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// syslog "info" for stdout, "err" for stderr (as Docker's journald
/// driver has them): container output carries no priority of its own.
const PRIORITY_STDOUT: &[u8] = b"6";
const PRIORITY_STDERR: &[u8] = b"3";

pub struct JournalSink {
    socket: Option<UnixDatagram>,
    path: PathBuf,
    unit: String,
    /// Records lost since the journal last took one.
    dropping: u64,
    /// Records lost in all, for `supctl status`.
    pub dropped: u64,
}

/// Whether supd's own stderr is a journald stream: systemd sets
/// JOURNAL_STREAM to its device and inode (systemd.exec(5)).
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    value.to_str() == Some(&format!("{}:{}", stderr.dev(), stderr.ino()))
}

/// One journal entry in the native format: `KEY=value\n`, or for a value
/// with a newline `KEY\n`, its length as 64-bit little endian, the bytes,
/// `\n`.
pub fn encode(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut entry = Vec::new();
    for (key, value) in fields {
        entry.extend_from_slice(key.as_bytes());
        if value.contains(&b'\n') {
            entry.push(b'\n');
            entry.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            entry.push(b'=');
        }
        entry.extend_from_slice(value);
        entry.push(b'\n');
    }
    entry
}

impl JournalSink {
    pub fn new(path: &Path, unit: &str) -> Self {
        JournalSink {
            socket: None,
            path: path.to_path_buf(),
            unit: unit.to_string(),
            dropping: 0,
            dropped: 0,
        }
    }

    /// Sends the record, or counts it lost.
    pub fn send(&mut self, record: &Record<'_>) {
        match self.try_send(record) {
            Ok(()) if self.dropping > 0 => {
                log::warn!(
                    "{}: the journal takes output again; {} record(s) were dropped while it did not",
                    self.unit,
                    self.dropping
                );
                self.dropping = 0;
            }
            Ok(()) => {}
            Err(e) => {
                if self.dropping == 0 {
                    log::warn!(
                        "{}: the journal does not take output ({e}): dropping it until it does",
                        self.unit
                    );
                }
                self.dropping = self.dropping.saturating_add(1);
                self.dropped = self.dropped.saturating_add(1);
            }
        }
    }

    fn try_send(&mut self, record: &Record<'_>) -> io::Result<()> {
        let socket = match &self.socket {
            Some(socket) => socket,
            None => {
                let socket = UnixDatagram::unbound()?;
                socket.set_nonblocking(true)?;
                self.socket.insert(socket)
            }
        };
        let unit = self.unit.as_bytes();
        let priority = match record.stream {
            Stream::Stdout => PRIORITY_STDOUT,
            Stream::Stderr => PRIORITY_STDERR,
        };
        let mut fields: Vec<(&str, &[u8])> = vec![
            ("MESSAGE", record.message),
            ("PRIORITY", priority),
            ("SYSLOG_IDENTIFIER", unit),
            ("SUPD_UNIT", unit),
            ("SUPD_STREAM", record.stream.name().as_bytes()),
        ];
        if record.partial {
            fields.push(("SUPD_PARTIAL", b"1"));
        }
        socket.send_to(&encode(&fields), &self.path).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_newlines_use_the_binary_form() {
        assert_eq!(encode(&[("MESSAGE", b"hi")]), b"MESSAGE=hi\n");
        assert_eq!(
            encode(&[("MESSAGE", b"a\nb"), ("X", b"y")]),
            b"MESSAGE\n\x03\0\0\0\0\0\0\0a\nb\nX=y\n"
        );
    }

    #[test]
    fn records_carry_the_stream_and_a_journal_that_does_not_read_costs_only_records() {
        let dir = std::env::temp_dir().join(format!("supd-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let _ = std::fs::remove_file(&path);
        let journal = UnixDatagram::bind(&path).unwrap();
        let mut sink = JournalSink::new(&path, "web");
        let record = |stream, message: &'static str| Record {
            time: std::time::Duration::ZERO,
            stream,
            partial: false,
            message: message.as_bytes(),
        };
        sink.send(&record(Stream::Stdout, "one"));
        sink.send(&record(Stream::Stderr, "two"));
        let mut buffer = [0u8; 1024];
        for (message, priority, stream) in [("one", 6, "stdout"), ("two", 3, "stderr")] {
            let n = journal.recv(&mut buffer).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&buffer[..n]),
                format!("MESSAGE={message}\nPRIORITY={priority}\nSYSLOG_IDENTIFIER=web\nSUPD_UNIT=web\nSUPD_STREAM={stream}\n")
            );
        }
        // Nobody reads: the socket's queue fills and sends would block.
        let mut sent = 0;
        while sink.dropped == 0 && sent < 100_000 {
            sink.send(&record(Stream::Stdout, "filler"));
            sent += 1;
        }
        assert!(sink.dropped > 0, "a full queue drops instead of blocking");
        journal.set_nonblocking(true).unwrap();
        while journal.recv(&mut buffer).is_ok() {}
        sink.send(&record(Stream::Stdout, "again"));
        assert_eq!(sink.dropping, 0, "taken again once the journal reads");
        assert!(sink.dropped > 0, "the count stays, for status");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
