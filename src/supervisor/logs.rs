//! A container's output file, rotated by size: NAME.log, NAME.log.1, ...
//!
//! One record per line, in the CRI's logging format (what the kubelet
//! writes and `kubectl logs` reads): `TIME STREAM TAG MESSAGE`, with the
//! time in RFC 3339 UTC to the nanosecond, the stream `stdout` or
//! `stderr`, and the tag `F` for a full line or `P` for a piece of a
//! longer one that the next record continues. Files rotate between
//! records, never inside one.

use super::output::{Record, Stream};
use crate::unit::LoggingConfig;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct LogSink {
    path: PathBuf,
    config: LoggingConfig,
    file: Option<File>,
    size: u64,
}

impl LogSink {
    pub fn new(path: PathBuf, config: LoggingConfig) -> Self {
        LogSink {
            path,
            config,
            file: None,
            size: 0,
        }
    }

    pub fn reconfigure(&mut self, config: LoggingConfig) {
        self.config = config;
    }

    /// Writes the record whole into the current file, rotating first if
    /// it would not fit; a record longer than a whole file goes in pieces
    /// marked partial.
    pub fn write_record(&mut self, record: &Record<'_>) -> io::Result<()> {
        let header = header(record.time, record.stream, false).len();
        let max = usize::try_from(self.config.max_size).unwrap_or(usize::MAX);
        let room = max.saturating_sub(header.saturating_add(1)).max(1);
        for (piece, last) in super::output::pieces(record.message, room) {
            self.write_whole(&format_record(&Record {
                message: piece,
                partial: record.partial || !last,
                ..*record
            }))?;
        }
        Ok(())
    }

    fn write_whole(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(LOG_FILE_MODE)
                .open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        if self.size > 0 && self.size.saturating_add(bytes.len() as u64) > self.config.max_size {
            self.rotate()?;
            return self.write_whole(bytes);
        }
        if let Some(file) = self.file.as_mut() {
            file.write_all(bytes)?;
        }
        self.size = self.size.saturating_add(bytes.len() as u64);
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        self.size = 0;
        let files = rotated_files(&self.path, self.config.max_files);
        if files.len() == 1 {
            return fs::remove_file(&self.path).or_else(ignore_missing);
        }
        // files is oldest first: shift each one a step older.
        for pair in files.windows(2) {
            fs::rename(&pair[1], &pair[0]).or_else(ignore_missing)?;
        }
        Ok(())
    }
}

/// Group members (the log directory's group) may read the logs.
const LOG_FILE_MODE: u32 = 0o640;

/// The log directory and its files belong to the read group, or else the
/// admin group (`supd`), whose members run `supctl logs`, which reads the files itself: the
/// directory 2750 (set-group-id: new files get its group), the files 0640
/// (systemd's LogsDirectory= makes the directory root's at each start).
pub fn share_with_group(dir: &Path, gid: Option<u32>) {
    use std::os::unix::fs::PermissionsExt;
    let Some(gid) = gid else {
        return;
    };
    let mut paths = vec![dir.to_path_buf()];
    if let Ok(entries) = fs::read_dir(dir) {
        paths.extend(entries.flatten().map(|e| e.path()));
    }
    for path in paths {
        let mode = if path == dir { 0o2750 } else { LOG_FILE_MODE };
        let shared = std::os::unix::fs::chown(&path, None, Some(gid))
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(mode)));
        if let Err(e) = shared {
            log::warn!("{}: cannot give it to group {gid}: {e}", path.display());
        }
    }
}

fn header(time: Duration, stream: Stream, partial: bool) -> String {
    let tag = if partial { "P" } else { "F" };
    format!(
        "{} {} {tag} ",
        crate::control::clock::rfc3339_nanos(time),
        stream.name()
    )
}

/// One record as a line of the log file.
pub fn format_record(record: &Record<'_>) -> Vec<u8> {
    let mut line = header(record.time, record.stream, record.partial).into_bytes();
    line.extend_from_slice(record.message);
    line.push(b'\n');
    line
}

/// A line of a log file read back. Lines in no known form (written by an
/// older supd, as raw output) are stdout without a time.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedRecord<'a> {
    pub time: Option<Duration>,
    pub stream: Stream,
    pub partial: bool,
    pub message: &'a str,
}

pub fn parse_record(line: &str) -> ParsedRecord<'_> {
    let parsed = (|| {
        let (time, rest) = line.split_once(' ')?;
        let time = crate::control::clock::parse_rfc3339(time)?;
        let (stream, rest) = rest.split_once(' ')?;
        let stream = match stream {
            "stdout" => Stream::Stdout,
            "stderr" => Stream::Stderr,
            _ => return None,
        };
        let (tag, message) = match rest.split_once(' ') {
            Some(split) => split,
            None => (rest, ""),
        };
        let partial = match tag {
            "F" => false,
            "P" => true,
            _ => return None,
        };
        Some(ParsedRecord {
            time: Some(time),
            stream,
            partial,
            message,
        })
    })();
    parsed.unwrap_or(ParsedRecord {
        time: None,
        stream: Stream::Stdout,
        partial: false,
        message: line,
    })
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// The paths a unit's log may occupy, oldest first, current last.
pub fn rotated_files(path: &Path, max_files: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..max_files.max(1))
        .rev()
        .map(|i| {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{i}"));
            PathBuf::from(name)
        })
        .collect();
    files.push(path.to_path_buf());
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stream: Stream, message: &str) -> Record<'_> {
        Record {
            time: Duration::new(1_795_341_600, 5),
            stream,
            partial: false,
            message: message.as_bytes(),
        }
    }

    #[test]
    fn records_read_back_and_old_lines_stay_readable() {
        let line = String::from_utf8(format_record(&record(Stream::Stderr, "oops a b"))).unwrap();
        assert_eq!(line, "2026-11-22T10:00:00.000000005Z stderr F oops a b\n");
        let parsed = parse_record(line.trim_end());
        assert_eq!(parsed.stream, Stream::Stderr);
        assert_eq!(parsed.message, "oops a b");
        assert_eq!(parsed.time, Some(Duration::new(1_795_341_600, 5)));
        assert!(!parsed.partial);
        let old = parse_record("GET / HTTP/1.0 200");
        assert_eq!((old.time, old.message), (None, "GET / HTTP/1.0 200"));
        assert_eq!(
            parse_record("2026-11-22T10:00:00.000000005Z stdout P").message,
            ""
        );
    }

    #[test]
    fn files_rotate_between_records_and_a_huge_one_comes_in_pieces() {
        let dir = std::env::temp_dir().join(format!("supd-logs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.log");
        let mut sink = LogSink::new(
            path.clone(),
            LoggingConfig {
                max_size: 100,
                max_files: 3,
                ..Default::default()
            },
        );
        // A header is 40 bytes: two 9-byte messages fit in 100, three do not.
        for message in ["012345678", "abcdefghi", "jklmnopqr"] {
            sink.write_record(&record(Stream::Stdout, message)).unwrap();
        }
        let read = |p: PathBuf| fs::read_to_string(p).unwrap_or_default();
        let files: Vec<String> = rotated_files(&path, 3).into_iter().map(read).collect();
        assert!(files[0].is_empty());
        assert_eq!(files[1].lines().count(), 2, "{files:?}");
        assert!(files[2].ends_with("stdout F jklmnopqr\n"), "{files:?}");
        for file in &files {
            assert!(
                file.is_empty() || file.ends_with('\n'),
                "no line is cut: {file:?}"
            );
        }
        let long = "x".repeat(150);
        sink.write_record(&record(Stream::Stdout, &long)).unwrap();
        let mut pieces = Vec::new();
        for file in rotated_files(&path, 3) {
            for line in read(file).lines() {
                let parsed = parse_record(line);
                if parsed.message.starts_with('x') {
                    pieces.push((parsed.message.len(), parsed.partial));
                }
            }
        }
        assert_eq!(pieces, [(59, true), (59, true), (32, false)]);
        assert!(!dir.join("a.log.3").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
