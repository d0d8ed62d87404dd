//! Container output to the systemd journal over its native protocol: one
//! datagram per line, with SYSLOG_IDENTIFIER and SUPD_UNIT set to the unit
//! name, so that `journalctl SUPD_UNIT=web` (or `-t web`) finds it.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where journald listens for native messages.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// A line longer than this is sent in pieces, as journald's stdout
/// transport does with its LineMax.
const MAX_LINE: usize = 48 * 1024;
/// syslog "info": container output carries no priority of its own.
const PRIORITY_INFO: &[u8] = b"6";

pub struct JournalSink {
    socket: Option<UnixDatagram>,
    path: PathBuf,
    unit: String,
    partial: Vec<u8>,
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
            partial: Vec::new(),
        }
    }

    /// Sends every complete line; keeps the rest for the next write.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let mut pending = std::mem::take(&mut self.partial);
        pending.extend_from_slice(data);
        let mut result = Ok(());
        let mut rest = pending.as_slice();
        loop {
            if let Some(end) = rest.iter().position(|b| *b == b'\n') {
                let (line, after) = rest.split_at(end);
                result = result.and(self.send(line));
                rest = after.get(1..).unwrap_or_default();
            } else if rest.len() >= MAX_LINE {
                let (piece, after) = rest.split_at(MAX_LINE);
                result = result.and(self.send(piece));
                rest = after;
            } else {
                break;
            }
        }
        self.partial = rest.to_vec();
        result
    }

    /// Sends a last line that had no newline (the container's pipe closed).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.partial.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.partial);
        self.send(&line)
    }

    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        let socket = match &self.socket {
            Some(socket) => socket,
            None => self.socket.insert(UnixDatagram::unbound()?),
        };
        let unit = self.unit.as_bytes();
        let entry = encode(&[
            ("MESSAGE", line),
            ("PRIORITY", PRIORITY_INFO),
            ("SYSLOG_IDENTIFIER", unit),
            ("SUPD_UNIT", unit),
        ]);
        socket.send_to(&entry, &self.path).map(drop)
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
    fn lines_are_sent_whole_and_the_rest_waits() {
        let dir = std::env::temp_dir().join(format!("supd-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let _ = std::fs::remove_file(&path);
        let journal = UnixDatagram::bind(&path).unwrap();
        let mut sink = JournalSink::new(&path, "web");
        sink.write(b"one\ntw").unwrap();
        sink.write(b"o\nthr").unwrap();
        sink.flush().unwrap();
        let mut buffer = [0u8; 1024];
        for expected in ["one", "two", "thr"] {
            let n = journal.recv(&mut buffer).unwrap();
            let text = String::from_utf8_lossy(&buffer[..n]).to_string();
            assert_eq!(
                text,
                format!("MESSAGE={expected}\nPRIORITY=6\nSYSLOG_IDENTIFIER=web\nSUPD_UNIT=web\n")
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
