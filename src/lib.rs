//! supd: a declarative supervisor for long-lived Linux containers.

pub mod cli;
pub mod control;
pub mod init;
pub mod plan;
pub mod runtime;
pub mod supervisor;
pub mod unit;
