//! A system container's console in the event loop: what its systemd (and
//! journald) write to /dev/console goes to the unit's log, as its output
//! does.

use super::Supervisor;
use crate::runtime::console::Console;
use std::io::{self, Read};
use std::os::fd::AsFd;

/// A run's console and its registration in the event loop.
#[derive(Debug)]
pub struct ConsoleRun {
    pub console: Console,
    pub token: u64,
}

/// At most this much per wake-up, as for the output pipe.
const CONSOLE_CHUNK: usize = 64 * 1024;

impl Supervisor {
    pub(super) fn on_console(&mut self, name: &str) {
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        if let Some(console) = entry.run.as_mut().and_then(|r| r.console.as_mut()) {
            let text = read_some(console);
            entry.take_output(super::output::Stream::Stdout, &text);
        }
    }

    /// At the container's exit (its run already taken): what is left, then
    /// the pty goes.
    pub(super) fn close_console(&mut self, name: &str, console: Option<ConsoleRun>) {
        let Some(mut console) = console else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(name) {
            let text = read_some(&mut console);
            entry.take_output(super::output::Stream::Stdout, &text);
            entry.finish_output(super::output::Stream::Stdout);
        }
        self.unregister(console.console.master.as_fd(), console.token);
    }
}

/// Up to one chunk of what the console holds, as plain lines.
fn read_some(console: &mut ConsoleRun) -> Vec<u8> {
    let mut buffer = vec![0u8; CONSOLE_CHUNK];
    let mut filled = 0;
    while filled < buffer.len() {
        match console.console.master.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled = filled.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EAGAIN: drained; EIO: no slave is open (supd holds one while
            // the container runs, so only at the very end).
            Err(_) => break,
        }
    }
    without_carriage_returns(&buffer[..filled])
}

/// systemd turns the console's \n into \r\n again when it resets the
/// terminal; the log keeps plain lines.
fn without_carriage_returns(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (index, byte) in bytes.iter().enumerate() {
        if *byte == b'\r' && bytes.get(index.saturating_add(1)) == Some(&b'\n') {
            continue;
        }
        out.push(*byte);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn carriage_returns_before_newlines_go() {
        assert_eq!(
            super::without_carriage_returns(b"a\r\nb\rc\r\n"),
            b"a\nb\rc\n".to_vec()
        );
    }
}
