//! The control socket: protocol types shared by supd and supctl, the
//! daemon's connection handling and the client.

pub mod access;
pub mod client;
pub mod clock;
pub mod connection;
pub mod protocol;
