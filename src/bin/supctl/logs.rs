//! `supctl logs`: reads the rotated files directly (records in the CRI
//! format, see supd's logs.rs) and follows the current ones with inotify
//! (no polling), reopening a file when supd rotates it. A unit that logs
//! to the journal is read with journalctl, the journal's reader.

use anyhow::{bail, Context};
use inotify::{Inotify, WatchMask};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use supd::supervisor::logs::parse_record;
use supd::supervisor::output::Stream;

/// What to print of each record.
pub struct Filter {
    pub since: Option<Duration>,
    pub until: Option<Duration>,
    pub stream: Option<Stream>,
    pub timestamps: bool,
    pub json: bool,
    /// `NAME | ` before each line when several units are printed.
    pub prefix: Option<String>,
}

/// `--since`/`--until`: an RFC 3339 time (`2026-12-01T10:00:00Z`, UTC
/// without the Z) or a duration ago (`10m`, `1h30m`).
pub fn parse_time(text: &str) -> anyhow::Result<Duration> {
    if let Some(time) = supd::control::clock::parse_rfc3339(text) {
        return Ok(time);
    }
    match supd::unit::quantity::parse_duration(text) {
        Ok(ago) => Ok(supd::control::clock::now().saturating_sub(ago)),
        Err(_) => bail!(
            "invalid time {text:?}: expected RFC 3339 (2026-12-01T10:00:00Z) or a duration ago (10m, 2h)"
        ),
    }
}

/// A unit's output assembled from records: the pieces of a long line
/// joined again.
struct Printer<'a> {
    filter: &'a Filter,
    /// Pieces of a line cut into partial records, by stream.
    partial: [String; 2],
}

impl Printer<'_> {
    fn line(&mut self, out: &mut impl Write, text: &str) -> io::Result<bool> {
        let record = parse_record(text);
        let slot = &mut self.partial[record.stream.index()];
        slot.push_str(record.message);
        if record.partial {
            return Ok(false);
        }
        let message = std::mem::take(slot);
        let filter = self.filter;
        if filter.stream.is_some_and(|s| s != record.stream) {
            return Ok(false);
        }
        if let (Some(since), Some(time)) = (filter.since, record.time) {
            if time < since {
                return Ok(false);
            }
        }
        if let (Some(until), Some(time)) = (filter.until, record.time) {
            if time > until {
                return Ok(false);
            }
        }
        let time = record.time.map(supd::control::clock::rfc3339_nanos);
        if filter.json {
            let value = serde_json::json!({
                "unit": filter.prefix,
                "time": time,
                "stream": record.stream.name(),
                "message": message,
            });
            writeln!(out, "{value}")?;
            return Ok(true);
        }
        if let Some(prefix) = &filter.prefix {
            write!(out, "{prefix} | ")?;
        }
        if filter.timestamps {
            write!(out, "{} ", time.as_deref().unwrap_or("-"))?;
        }
        writeln!(out, "{message}")?;
        Ok(true)
    }
}

fn open(file: &Path) -> anyhow::Result<Option<File>> {
    match File::open(file) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => bail!(
            "cannot read {}: {e}: the logs are readable by root and by the group of \
             supd's log directory (its --read-group, or else its --socket-group: `supd`)",
            file.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// Prints the unit's files (oldest first), the last `last` lines of them
/// if given; returns where the current file ended, for `follow`.
pub fn print(files: &[PathBuf], last: Option<usize>, filter: &Filter) -> anyhow::Result<u64> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut printer = Printer {
        filter,
        partial: Default::default(),
    };
    let mut printed_to = 0;
    // With -n, lines are kept (after filtering) and the last N printed.
    let mut tail: VecDeque<Vec<u8>> = VecDeque::new();
    for file in files {
        let Some(f) = open(file)? else { continue };
        let mut reader = BufReader::new(f);
        let mut consumed = 0u64;
        for line in (&mut reader).split(b'\n') {
            let line = line?;
            consumed += line.len() as u64 + 1;
            let text = String::from_utf8_lossy(&line);
            let mut rendered = Vec::new();
            if !printer.line(&mut rendered, &text)? {
                continue;
            }
            match last {
                None => out.write_all(&rendered)?,
                Some(count) => {
                    tail.push_back(rendered);
                    if tail.len() > count {
                        tail.pop_front();
                    }
                }
            }
        }
        printed_to = reader
            .get_ref()
            .metadata()
            .map_or(consumed, |m| m.len().min(consumed));
    }
    for rendered in tail {
        out.write_all(&rendered)?;
    }
    out.flush()?;
    Ok(printed_to)
}

/// One followed unit: its current file and where reading stopped.
pub struct Followed {
    path: PathBuf,
    from: u64,
    filter: Filter,
    file: Option<File>,
    /// Bytes after the last newline read.
    partial_line: Vec<u8>,
    printer_partial: [String; 2],
}

impl Followed {
    pub fn new(path: PathBuf, from: u64, filter: Filter) -> Self {
        Followed {
            path,
            from,
            filter,
            file: None,
            partial_line: Vec::new(),
            printer_partial: Default::default(),
        }
    }

    fn reopen(&mut self, start: u64) -> anyhow::Result<()> {
        self.file = open(&self.path)?;
        if let Some(f) = self.file.as_mut() {
            // Rotated meanwhile (shorter than what was printed): from the start.
            let start = if f.metadata()?.len() >= start {
                start
            } else {
                0
            };
            f.seek(SeekFrom::Start(start))?;
        }
        self.partial_line.clear();
        Ok(())
    }

    fn copy_new(&mut self) -> anyhow::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk)?;
        self.partial_line.extend_from_slice(&chunk);
        let mut printer = Printer {
            filter: &self.filter,
            partial: std::mem::take(&mut self.printer_partial),
        };
        let stdout = io::stdout();
        let mut out = stdout.lock();
        let mut rest: &[u8] = &self.partial_line;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            printer.line(&mut out, &String::from_utf8_lossy(&rest[..end]))?;
            rest = &rest[end + 1..];
        }
        out.flush()?;
        self.printer_partial = printer.partial;
        self.partial_line = rest.to_vec();
        Ok(())
    }
}

/// Follows every unit's current file until interrupted.
pub fn follow(mut units: Vec<Followed>) -> anyhow::Result<()> {
    let mut inotify = Inotify::init().context("inotify")?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for unit in &mut units {
        let dir = unit.path.parent().unwrap_or(Path::new("/")).to_path_buf();
        if !dirs.contains(&dir) {
            inotify
                .watches()
                .add(
                    &dir,
                    WatchMask::MODIFY | WatchMask::CREATE | WatchMask::MOVED_TO,
                )
                .with_context(|| format!("watch {}", dir.display()))?;
            dirs.push(dir);
        }
        let from = unit.from;
        unit.reopen(from)?;
        unit.copy_new()?;
    }
    let mut buffer = [0u8; 4096];
    loop {
        let events = inotify.read_events_blocking(&mut buffer)?;
        let mut reopened: Vec<usize> = Vec::new();
        for event in events {
            let Some(name) = event.name else { continue };
            if event.mask.contains(inotify::EventMask::MODIFY) {
                continue;
            }
            for (index, unit) in units.iter().enumerate() {
                if unit.path.file_name() == Some(name) && !reopened.contains(&index) {
                    reopened.push(index);
                }
            }
        }
        for (index, unit) in units.iter_mut().enumerate() {
            unit.copy_new()?;
            if reopened.contains(&index) {
                unit.reopen(0)?;
                unit.copy_new()?;
            }
        }
    }
}

/// Replaces supctl with journalctl for a unit that logs to the journal,
/// so that -f ends with Ctrl-C as usual; returns only if journalctl
/// cannot be run.
pub fn journal(
    name: &str,
    last: Option<usize>,
    follow: bool,
    filter: &Filter,
) -> anyhow::Result<u8> {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("journalctl");
    let output = match (filter.json, filter.timestamps) {
        (true, _) => "json",
        (false, true) => "short-iso-precise",
        (false, false) => "cat",
    };
    command.args(["--no-pager", "-o", output]);
    if let Some(count) = last {
        command.arg(format!("--lines={count}"));
    }
    if follow {
        command.arg("--follow");
    }
    for (option, time) in [("--since", filter.since), ("--until", filter.until)] {
        if let Some(time) = time {
            command.arg(format!("{option}=@{}", time.as_secs()));
        }
    }
    command.arg(format!("SUPD_UNIT={name}"));
    if let Some(stream) = filter.stream {
        command.arg(format!("SUPD_STREAM={}", stream.name()));
    }
    let error = command.exec();
    Err(error).context("cannot run journalctl (the unit logs to the journal)")
}
