//! `supctl logs`: reads the rotated files directly and follows the current
//! one with inotify (no polling), reopening it when supd rotates.

use anyhow::Context;
use inotify::{Inotify, WatchMask};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub fn print(files: &[PathBuf], last: Option<usize>, follow: bool) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match last {
        None => {
            for file in files {
                if let Ok(mut f) = File::open(file) {
                    io::copy(&mut f, &mut out)?;
                }
            }
        }
        Some(count) => {
            let mut tail: VecDeque<String> = VecDeque::with_capacity(count + 1);
            for file in files {
                let Ok(f) = File::open(file) else { continue };
                for line in BufReader::new(f).split(b'\n') {
                    tail.push_back(String::from_utf8_lossy(&line?).into_owned());
                    if tail.len() > count {
                        tail.pop_front();
                    }
                }
            }
            for line in tail {
                writeln!(out, "{line}")?;
            }
        }
    }
    out.flush()?;
    if follow {
        if let Some(current) = files.last() {
            follow_file(current)?;
        }
    }
    Ok(())
}

fn follow_file(path: &Path) -> anyhow::Result<()> {
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
        f.seek(SeekFrom::End(0))?;
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
