//! supd: a declarative supervisor for long-lived Linux containers.

pub mod plan;
pub mod supervisor;
pub mod unit;
