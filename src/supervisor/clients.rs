//! The control socket's side of the loop: accepting clients within their
//! limits, reading their requests and queueing the answers.

use super::{deadline_after, setup, Source, Supervisor, SupervisorError, TOKEN_LISTENER};
use crate::control::access::{self, Access};
use crate::control::connection::{Connection, Incoming};
use nix::sys::epoll::{EpollEvent, EpollFlags};
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

/// Open control connections one uid may hold; each costs a descriptor.
const MAX_CONNECTIONS_PER_PEER: usize = 64;

/// How long new connections wait when accept ran out of descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

impl Supervisor {
    pub(super) fn accept_clients(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if std::mem::take(&mut self.accept_failing) {
                        log::info!("control socket: accepting connections again");
                    }
                    self.add_client(stream)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.pause_accepting(&e),
            }
        }
    }

    /// Out of descriptors (or memory): the pending connection stays in the
    /// backlog, so level-triggered epoll would report it again at once.
    /// Stop listening for a moment instead of spinning and logging.
    pub(super) fn pause_accepting(&mut self, error: &io::Error) {
        // Once per episode: a lasting shortage must not fill the log either.
        if !std::mem::replace(&mut self.accept_failing, true) {
            log::warn!(
                "accept on the control socket: {error}; pausing new connections for {} ms at a time until it works again",
                ACCEPT_PAUSE.as_millis()
            );
        }
        let mut none = EpollEvent::new(EpollFlags::empty(), TOKEN_LISTENER);
        if let Err(e) = self.epoll.modify(self.listener.as_fd(), &mut none) {
            log::warn!("control socket: epoll: {e}");
        }
        self.accept_at = Some(deadline_after(ACCEPT_PAUSE));
    }

    pub(super) fn resume_accepting(&mut self) {
        self.accept_at = None;
        let mut readable = EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_LISTENER);
        if let Err(e) = self.epoll.modify(self.listener.as_fd(), &mut readable) {
            log::error!("control socket: epoll: {e}");
        }
    }

    pub(super) fn add_client(&mut self, stream: UnixStream) {
        let access = self.options.access.check(&stream);
        let mut connection = match Connection::new(stream) {
            Ok(c) => c,
            Err(e) => return log::warn!("control client: {e}"),
        };
        connection.access = access;
        if access == Access::Denied {
            // Answered once, then closed without reading a request.
            connection.send(&crate::control::protocol::Response::error(
                "permission denied: supd accepts root and members of its admin group",
            ));
            return;
        }
        let from_peer = self
            .clients
            .values()
            .filter(|c| c.peer_uid == connection.peer_uid)
            .count();
        if from_peer >= MAX_CONNECTIONS_PER_PEER {
            connection.send(&crate::control::protocol::Response::error(format!(
                "too many connections: at most {MAX_CONNECTIONS_PER_PEER} per user"
            )));
            return;
        }
        if let Some(token) = self.register(connection.stream.as_fd(), Source::Client) {
            self.clients.insert(token, connection);
        }
    }

    pub(super) fn on_client(&mut self, token: u64, flags: EpollFlags) {
        let Some(connection) = self.clients.get_mut(&token) else {
            return;
        };
        // A hang-up comes whether or not input is asked for: the peer is
        // gone and nothing it asked for can be answered.
        let broken = flags.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
            || (flags.contains(EpollFlags::EPOLLIN) && connection.fill().is_err())
            || connection.flush().is_err();
        if broken {
            return self.drop_client(token);
        }
        if !self.client_waits(token) {
            self.serve_client(token);
        }
        self.update_client(token);
    }

    /// Answers the client's complete lines in order; a request that waits for
    /// units to settle holds back the lines behind it.
    pub(super) fn serve_client(&mut self, token: u64) {
        loop {
            let Some(connection) = self.clients.get_mut(&token) else {
                return;
            };
            if !connection.may_serve() {
                return;
            }
            let request = match connection.next_request() {
                None => return,
                Some(Incoming::Rejected) => continue,
                Some(Incoming::Request(request)) => request,
            };
            let read_only = connection.access == Access::ReadOnly;
            if read_only && !access::is_read_only(&request.command) {
                connection.send(&crate::control::protocol::Response::error(
                    "permission denied: this client may only read (status, show, logs)",
                ));
                continue;
            }
            match self.handle(token, request.command) {
                Some(response) => {
                    if let Some(connection) = self.clients.get_mut(&token) {
                        connection.send(&response);
                    }
                }
                None => return,
            }
        }
    }

    /// Closes finished clients and asks for EPOLLOUT while output is queued.
    pub(super) fn update_client(&mut self, token: u64) {
        let Some(connection) = self.clients.get(&token) else {
            return;
        };
        let waiting = self.client_waits(token);
        let finished = connection.read_closed && !connection.wants_write() && !waiting;
        if finished || connection.overflowed() {
            return self.drop_client(token);
        }
        let mut flags = EpollFlags::empty();
        if connection.wants_read() {
            flags |= EpollFlags::EPOLLIN;
        }
        if connection.wants_write() {
            flags |= EpollFlags::EPOLLOUT;
        }
        let mut event = EpollEvent::new(flags, token);
        if let Err(e) = self.epoll.modify(connection.stream.as_fd(), &mut event) {
            log::warn!("control client: epoll: {e}");
            self.drop_client(token);
        }
    }

    pub(super) fn drop_client(&mut self, token: u64) {
        if let Some(connection) = self.clients.remove(&token) {
            self.unregister(connection.stream.as_fd(), token);
        }
        self.waiters.retain(|w| w.token != token);
        self.events.unsubscribe(token);
        self.imports.cancel_for(token);
    }

    /// The client's last request is still being answered (units settling,
    /// an import running): the lines behind it wait.
    fn client_waits(&self, token: u64) -> bool {
        self.waiters.iter().any(|w| w.token == token)
            || self.imports.waits(token)
            || self.events.is_subscribed(token)
    }
}

/// Binds the control socket, replacing a stale one but never stealing it
/// from a live supd.
pub(super) fn bind_socket(
    path: &std::path::Path,
    access: &crate::control::access::AccessPolicy,
) -> Result<UnixListener, SupervisorError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(setup("create directory", parent))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(SupervisorError::SocketInUse(path.to_path_buf()));
        }
        fs::remove_file(path).map_err(setup("remove stale socket", path))?;
    }
    let listener = UnixListener::bind(path).map_err(setup("bind", path))?;
    listener
        .set_nonblocking(true)
        .map_err(setup("set non-blocking", path))?;
    if let Some(gid) = access.admin_gid {
        std::os::unix::fs::chown(path, Some(0), Some(gid)).map_err(setup("chown", path))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(access.socket_mode()))
        .map_err(setup("chmod", path))?;
    Ok(listener)
}
