//! Who may talk to supd: root, and members of the admin group (`supd` by
//! default) for everything; members of an optional read group for status,
//! show and logs only. Checked with the peer's credentials (SO_PEERCRED) on
//! every connection, whatever the socket file's mode says.

use super::protocol::Command;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use std::os::unix::net::UnixStream;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Full,
    ReadOnly,
    Denied,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    pub admin_gid: Option<u32>,
    pub read_gid: Option<u32>,
}

/// A group's id from /etc/group (supd links statically: no NSS).
pub fn group_id(name: &str) -> Option<u32> {
    group_id_in(&std::fs::read_to_string("/etc/group").ok()?, name)
}

fn group_id_in(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then(|| fields.nth(1)?.parse().ok())?
    })
}

/// The primary and supplementary groups of a process.
fn groups_of(pid: i32, gid: u32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mut groups: Vec<u32> = status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    groups.push(gid);
    groups
}

/// The uid of the process at the other end of the socket.
pub fn peer_uid(stream: &UnixStream) -> Option<u32> {
    getsockopt(stream, PeerCredentials)
        .ok()
        .map(|peer| peer.uid())
}

impl AccessPolicy {
    /// The socket file's mode: 0600 with no groups, 0660 with the admin
    /// group only, 0666 when a second (read) group must reach it too: the
    /// peer check then decides.
    pub fn socket_mode(&self) -> u32 {
        match (self.admin_gid, self.read_gid) {
            (_, Some(_)) => 0o666,
            (Some(_), None) => 0o660,
            (None, None) => 0o600,
        }
    }

    pub fn check(&self, stream: &UnixStream) -> Access {
        let Ok(peer) = getsockopt(stream, PeerCredentials) else {
            return Access::Denied;
        };
        if peer.uid() == 0 {
            return Access::Full;
        }
        let groups = groups_of(peer.pid(), peer.gid());
        let member = |gid: Option<u32>| gid.is_some_and(|g| groups.contains(&g));
        if member(self.admin_gid) {
            Access::Full
        } else if member(self.read_gid) {
            Access::ReadOnly
        } else {
            Access::Denied
        }
    }
}

/// Requests that change nothing.
pub fn is_read_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Status { .. }
            | Command::Logs { .. }
            | Command::Show { .. }
            | Command::ImageList
            | Command::ImageInspect { .. }
            | Command::Events { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_modes() {
        let text = "root:x:0:\nsupd:x:990:alice\nviewers:x:991:\n";
        assert_eq!(group_id_in(text, "supd"), Some(990));
        assert_eq!(group_id_in(text, "nope"), None);
        let policy = |admin, read| AccessPolicy {
            admin_gid: admin,
            read_gid: read,
        };
        assert_eq!(policy(None, None).socket_mode(), 0o600);
        assert_eq!(policy(Some(990), None).socket_mode(), 0o660);
        assert_eq!(policy(Some(990), Some(991)).socket_mode(), 0o666);
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(
            policy(None, None).check(&a),
            Access::Full,
            "root is always let in"
        );
        assert!(is_read_only(&Command::Status { names: vec![] }));
        assert!(!is_read_only(&Command::Reload));
    }
}
