//! supd: a declarative supervisor for long-lived Linux containers.

// Everything supd handles comes from files, the kernel or the socket: a
// panic would take every container's supervisor down. Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

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
