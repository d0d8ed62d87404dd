//! supd: a declarative supervisor for long-lived Linux containers.

pub mod unit;
