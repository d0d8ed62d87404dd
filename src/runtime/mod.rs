//! Building containers from Linux primitives. `spawn` runs in the daemon and
//! does as little as possible between clone and exec; everything else happens
//! in the init stage (`setup`), a fresh exec of the supd binary inside the new
//! namespaces.

mod boot;
pub mod cgroup;
pub mod console;
pub mod devnodes;
pub mod enter;
mod exec_tty;
pub mod inputs;
pub mod net;
pub mod rootfs;
pub mod security;
pub mod setup;
pub mod spawn;
pub mod storage;
mod user;
pub mod userns;

pub use setup::{SetupError, Spec};
pub mod workload;
pub use spawn::{output_pipe_size, spawn, SpawnError, SpawnHost, Spawned};

use std::path::PathBuf;

/// The daemon's directories (DESIGN section 1).
#[derive(Clone, Debug)]
pub struct Dirs {
    pub runtime: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
}

impl Dirs {
    /// Where a container's root is assembled (an empty directory on the host;
    /// the container mounts a private tmpfs over it).
    pub fn staging(&self, name: &str) -> PathBuf {
        self.runtime.join("containers").join(name)
    }

    /// What a restarted supd needs to adopt the unit's container.
    pub fn record(&self, name: &str) -> PathBuf {
        self.runtime.join("units").join(format!("{name}.json"))
    }

    /// The container's /etc/hosts, which supd rewrites as peers change.
    pub fn hosts_file(&self, name: &str) -> PathBuf {
        self.runtime.join("hosts").join(name)
    }

    /// Where the unit's init records the workload's exit code.
    pub fn exit_record(&self, name: &str) -> PathBuf {
        self.runtime.join("units").join(format!("{name}.exit"))
    }

    pub fn unit_state(&self, name: &str) -> PathBuf {
        self.state.join(name)
    }

    pub fn log_file(&self, name: &str) -> PathBuf {
        self.log.join(format!("{name}.log"))
    }
}

/// File descriptor numbers in the init stage, fixed by `spawn`.
pub const SPEC_FD: i32 = 3;
pub const REPORT_FD: i32 = 4;
/// The init's copy of the output pipe's read end: it keeps the pipe open
/// while supd is away (a restarted supd takes it with pidfd_getfd), so the
/// workload's writes never meet a closed pipe.
pub const OUTPUT_HOLD_FD: i32 = 5;
/// A host file the init writes the workload's exit code to before it
/// exits, for a supd that is not its parent (see `Dirs::exit_record`).
pub const EXIT_FD: i32 = 6;
/// The init's copy of the stderr pipe's read end, as OUTPUT_HOLD_FD is
/// of stdout's.
pub const ERROR_HOLD_FD: i32 = 7;
/// The hidden subcommand of the supd binary that runs the init stage.
pub const INIT_STAGE_ARG: &str = "__init-stage";
