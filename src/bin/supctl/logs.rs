//! `supctl logs`: reads the rotated files directly and follows the current
//! one with inotify (no polling), reopening it when supd rotates. A unit
//! that logs to the journal is read with journalctl, the journal's reader.

use anyhow::Context;
use inotify::{Inotify, WatchMask};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub fn print(files: &[PathBuf], last: Option<usize>, follow: bool) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    // Where the current file ended when it was printed: following goes on
    // from exactly there, so nothing written in between is lost.
    let mut printed_to = 0;
    match last {
        None => {
            for file in files {
                if let Ok(mut f) = File::open(file) {
                    printed_to = io::copy(&mut f, &mut out)?;
                }
            }
        }
        Some(count) => {
            let mut tail: VecDeque<String> = VecDeque::with_capacity(count + 1);
            for file in files {
                let Ok(f) = File::open(file) else { continue };
                let mut reader = BufReader::new(f);
                let mut consumed = 0;
                for line in (&mut reader).split(b'\n') {
                    let line = line?;
                    consumed += line.len() as u64 + 1;
                    tail.push_back(String::from_utf8_lossy(&line).into_owned());
                    if tail.len() > count {
                        tail.pop_front();
                    }
                }
                printed_to = reader
                    .get_ref()
                    .metadata()
                    .map_or(consumed, |m| m.len().min(consumed));
            }
            for line in tail {
                writeln!(out, "{line}")?;
            }
        }
    }
    out.flush()?;
    if follow {
        if let Some(current) = files.last() {
            follow_file(current, printed_to)?;
        }
    }
    Ok(())
}

fn follow_file(path: &Path, from: u64) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().context("log path without a file name")?;
    let mut inotify = Inotify::init().context("inotify")?;
    inotify
        .watches()
        .add(
            dir,
            WatchMask::MODIFY | WatchMask::CREATE | WatchMask::MOVED_TO,
        )
        .with_context(|| format!("watch {}", dir.display()))?;
    let mut file = File::open(path).ok();
    if let Some(f) = file.as_mut() {
        // Rotated meanwhile (shorter than what was printed): from the start.
        let start = if f.metadata()?.len() >= from { from } else { 0 };
        f.seek(SeekFrom::Start(start))?;
        copy_new(f)?;
    }
    let mut buffer = [0u8; 4096];
    loop {
        let events = inotify.read_events_blocking(&mut buffer)?;
        let mut reopen = false;
        for event in events {
            if event.name == Some(name) && !event.mask.contains(inotify::EventMask::MODIFY) {
                reopen = true;
            }
        }
        if let Some(f) = file.as_mut() {
            copy_new(f)?;
        }
        if reopen {
            file = File::open(path).ok();
            if let Some(f) = file.as_mut() {
                copy_new(f)?;
            }
        }
    }
}

fn copy_new(file: &mut File) -> io::Result<()> {
    let mut chunk = Vec::new();
    file.read_to_end(&mut chunk)?;
    let mut out = io::stdout().lock();
    out.write_all(&chunk)?;
    out.flush()
}

/// Replaces supctl with `journalctl -o cat SUPD_UNIT=NAME`, so that -f ends
/// with Ctrl-C as usual; returns only if journalctl cannot be run.
pub fn journal(name: &str, last: Option<usize>, follow: bool) -> anyhow::Result<u8> {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("journalctl");
    command.args(["--no-pager", "-o", "cat"]);
    if let Some(count) = last {
        command.arg(format!("--lines={count}"));
    }
    if follow {
        command.arg("--follow");
    }
    command.arg(format!("SUPD_UNIT={name}"));
    let error = command.exec();
    Err(error).context("cannot run journalctl (the unit logs to the journal)")
}
