//! A container's output as records: each line of stdout or stderr with the
//! time supd read it, cut where a line is too long to keep whole (the
//! pieces marked partial), to the unit's log files or the journal.

use super::entry::Entry;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A line longer than this is cut into records of this size, marked
/// partial but the last (Docker's and the CRI's 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub const BOTH: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One line, or one piece of a long line (`partial`: more follows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Since the epoch.
    pub time: Duration,
    pub stream: Stream,
    pub partial: bool,
    pub message: &'a [u8],
}

/// The bytes of one stream not yet ended by a newline.
#[derive(Debug, Default)]
pub struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// Calls `emit(message, partial)` for each complete line of what came
    /// so far, and for each MAX_LINE piece of a line still going on.
    pub fn push(&mut self, data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        self.pending.extend_from_slice(data);
        let mut rest: &[u8] = &self.pending;
        while let Some(offset) = rest.iter().position(|b| *b == b'\n') {
            let (line, after) = rest.split_at(offset);
            for (piece, last) in pieces(line, MAX_LINE) {
                emit(piece, !last);
            }
            rest = after.get(1..).unwrap_or_default();
        }
        while rest.len() >= MAX_LINE {
            let (piece, after) = rest.split_at(MAX_LINE);
            emit(piece, true);
            rest = after;
        }
        self.pending = rest.to_vec();
    }

    /// The stream closed: what is left is a last line without a newline.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            emit(&rest, false);
        }
    }
}

/// `line` in pieces of at most `size` bytes, each with whether it is the
/// last; an empty line is one empty piece.
pub fn pieces(line: &[u8], size: usize) -> impl Iterator<Item = (&[u8], bool)> {
    let mut chunks = line.chunks(size.max(1)).peekable();
    let empty = line.is_empty().then_some((line, true));
    std::iter::from_fn(move || {
        let chunk = chunks.next()?;
        Some((chunk, chunks.peek().is_none()))
    })
    .chain(empty)
}

impl Entry {
    /// Output read from one of the container's streams (the console of a
    /// system container counts as stdout).
    pub fn take_output(&mut self, stream: Stream, data: &[u8]) {
        let time = crate::control::clock::now();
        let mut lines = std::mem::take(&mut self.lines[stream.index()]);
        lines.push(data, |message, partial| {
            self.write_record(Record {
                time,
                stream,
                partial,
                message,
            })
        });
        self.lines[stream.index()] = lines;
    }

    /// The stream closed.
    pub fn finish_output(&mut self, stream: Stream) {
        let time = crate::control::clock::now();
        let mut lines = std::mem::take(&mut self.lines[stream.index()]);
        lines.finish(|message, partial| {
            self.write_record(Record {
                time,
                stream,
                partial,
                message,
            })
        });
    }

    fn write_record(&mut self, record: Record<'_>) {
        let written = match self.journal.as_mut() {
            Some(journal) => {
                journal.send(&record);
                Ok(())
            }
            None => self.log.write_record(&record),
        };
        if let Err(e) = written {
            log::warn!("{}: cannot write log: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for chunk in chunks {
            lines.push(chunk, |m, p| {
                out.push((String::from_utf8_lossy(m).into(), p))
            });
        }
        lines.finish(|m, p| out.push((String::from_utf8_lossy(m).into(), p)));
        out
    }

    #[test]
    fn lines_are_whole_across_reads_and_long_ones_come_in_marked_pieces() {
        assert_eq!(
            run(&[b"one\ntw", b"o\n", b"\nlast"]),
            [
                ("one".into(), false),
                ("two".into(), false),
                (String::new(), false),
                ("last".into(), false)
            ]
        );
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let mut with_newline = long.clone();
        with_newline.push(b'\n');
        let out = run(&[&with_newline[..100], &with_newline[100..]]);
        let shape: Vec<(usize, bool)> = out.iter().map(|(m, p)| (m.len(), *p)).collect();
        assert_eq!(shape, [(MAX_LINE, true), (MAX_LINE, true), (5, false)]);
        let exact = vec![b'y'; MAX_LINE];
        let out = run(&[&exact, b"\n"]);
        let shape: Vec<(usize, bool)> = out.iter().map(|(m, p)| (m.len(), *p)).collect();
        assert_eq!(shape, [(MAX_LINE, true), (0, false)], "the newline ends it");
    }
}
