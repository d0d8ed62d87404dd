//! supd: a declarative supervisor for long-lived Linux containers.

// Everything supd handles comes from files, the kernel or the socket: a
// panic would take every container's supervisor down. Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

/// supd's version string: Cargo's, unless the build sets `SUPD_VERSION`
/// (a distribution's own version, or the second build the systemd tier
/// upgrades to).
pub const VERSION: &str = match option_env!("SUPD_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

pub mod cli;
pub mod control;
pub mod files;
pub mod host;
pub mod images;
pub mod init;
pub mod plan;
pub mod runtime;
pub mod supervisor;
pub mod unit;
