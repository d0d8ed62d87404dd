//! The command lines of both binaries. They live in the library so that
//! `tests/generated.rs` can render the man pages and shell completions from
//! the very definitions the binaries parse.

pub mod supctl;
pub mod supd;
