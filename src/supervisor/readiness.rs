//! Readiness passthrough for units with `notify: true`: each run gets a
//! NOTIFY_SOCKET of its own, bind-mounted into the container, and the
//! workload's READY=1 moves the unit from running to ready. A start that
//! does not finish (setup, then readiness) within start_timeout fails.

use super::{Source, Supervisor};
use crate::runtime::SetupError;
use crate::unit::{Mount, MountKind, Unit};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where the socket's directory appears inside the container.
const CONTAINER_NOTIFY_DIR: &str = "/run/supd";
const SOCKET_NAME: &str = "notify";
/// The longest message read; sd_notify messages are short text.
const MAX_MESSAGE: usize = 4096;
/// Messages handled per wake-up, so that a flood cannot starve the loop.
const MESSAGES_PER_WAKE: usize = 64;

/// Binds the host side of a unit's notify socket in `dir`, which only the
/// container reaches (through its bind mount), so every sender is the
/// container: no credential check is needed to tell units apart.
pub fn bind_notify_socket(dir: &Path) -> io::Result<UnixDatagram> {
    std::fs::create_dir_all(dir)?;
    if let Some(parent) = dir.parent() {
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))?;
    }
    let path = dir.join(SOCKET_NAME);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let socket = UnixDatagram::bind(&path)?;
    socket.set_nonblocking(true)?;
    // Any user of the container may notify, as with systemd's socket;
    // a user-namespaced root is an unprivileged uid on the host.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    Ok(socket)
}

/// The unit as the container sees it: the socket's directory mounted
/// read-only and NOTIFY_SOCKET pointing at it.
pub fn with_notify_socket(unit: &Unit, dir: &Path) -> Unit {
    let mut unit = unit.clone();
    unit.mounts.push(Mount {
        kind: MountKind::Bind,
        source: Some(dir.to_path_buf()),
        target: PathBuf::from(CONTAINER_NOTIFY_DIR),
        readonly: true,
        size: None,
        mode: None,
    });
    unit.env.insert(
        "NOTIFY_SOCKET".to_string(),
        format!("{CONTAINER_NOTIFY_DIR}/{SOCKET_NAME}"),
    );
    // As systemd's WatchdogSec: sd_watchdog_enabled() reads it. No
    // WATCHDOG_PID: the workload's PID differs inside its namespace.
    if let Some(watchdog) = unit.watchdog {
        unit.env.insert(
            "WATCHDOG_USEC".to_string(),
            watchdog.as_micros().to_string(),
        );
    }
    unit
}

/// What a workload's message asks for; unknown assignments are ignored, as
/// systemd does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notification {
    pub ready: bool,
    pub status: Option<String>,
    pub watchdog: Option<Watchdog>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watchdog {
    /// WATCHDOG=1: alive.
    Ping,
    /// WATCHDOG=trigger: restart me as failed.
    Trigger,
}

pub fn parse_notification(message: &[u8]) -> Notification {
    let mut notification = Notification::default();
    for line in String::from_utf8_lossy(message).lines() {
        match line.split_once('=') {
            Some(("READY", "1")) => notification.ready = true,
            Some(("STATUS", text)) => notification.status = Some(text.to_string()),
            Some(("WATCHDOG", "1")) => {
                notification.watchdog.get_or_insert(Watchdog::Ping);
            }
            Some(("WATCHDOG", "trigger")) => notification.watchdog = Some(Watchdog::Trigger),
            _ => {}
        }
    }
    notification
}

impl Supervisor {
    pub(super) fn notify_dir(&self, name: &str) -> PathBuf {
        self.options.dirs.runtime.join("notify").join(name)
    }

    /// Opens the notify socket for a run and registers it with the loop.
    pub(super) fn open_notify(
        &mut self,
        name: &str,
    ) -> Result<(UnixDatagram, u64, PathBuf), SetupError> {
        let dir = self.notify_dir(name);
        let socket =
            bind_notify_socket(&dir).map_err(|e| SetupError::new("notify", Some(&dir), e))?;
        let token = self
            .register(socket.as_fd(), Source::Notify(name.to_string()))
            .ok_or_else(|| SetupError::message("notify", Some(&dir), "cannot watch the socket"))?;
        Ok((socket, token, dir))
    }

    pub(super) fn close_notify(&mut self, name: &str, notify: Option<(UnixDatagram, u64)>) {
        let Some((socket, token)) = notify else {
            return;
        };
        self.unregister(socket.as_fd(), token);
        drop(socket);
        let dir = self.notify_dir(name);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            log::warn!("{name}: cannot remove {}: {e}", dir.display());
        }
    }

    pub(super) fn on_notify(&mut self, name: &str) {
        let mut buffer = [0u8; MAX_MESSAGE];
        for _ in 0..MESSAGES_PER_WAKE {
            let Some(socket) = self
                .entries
                .get(name)
                .and_then(|e| e.run.as_ref()?.notify.as_ref())
                .map(|(socket, _)| socket)
            else {
                return;
            };
            let received = match socket.recv(&mut buffer) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let notification = parse_notification(&buffer[..received]);
            self.apply_notification(name, notification);
        }
    }

    fn apply_notification(&mut self, name: &str, notification: Notification) {
        if notification.ready {
            // READY=1 can overtake the closing of the setup report in one
            // batch of events: settle the report first.
            self.on_report(name);
        }
        self.drive(name, |machine, now| {
            machine.notified(now, notification.ready, notification.status)
        });
        match notification.watchdog {
            Some(Watchdog::Ping) => self.drive(name, |machine, now| {
                machine.watchdog_ping(now);
                Vec::new()
            }),
            Some(Watchdog::Trigger) => {
                self.drive(name, |machine, now| machine.watchdog_trigger(now))
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_are_parsed_line_by_line() {
        assert_eq!(
            parse_notification(b"STATUS=warming up\nREADY=1\nMAINPID=7\n"),
            Notification {
                ready: true,
                status: Some("warming up".into()),
                watchdog: None,
            }
        );
        assert_eq!(parse_notification(b"READY=0"), Notification::default());
        assert_eq!(
            parse_notification(b"WATCHDOG=1").watchdog,
            Some(Watchdog::Ping)
        );
        assert_eq!(
            parse_notification(b"WATCHDOG=1\nWATCHDOG=trigger").watchdog,
            Some(Watchdog::Trigger)
        );
        assert_eq!(parse_notification(b"\xff\xfe"), Notification::default());
    }
}
