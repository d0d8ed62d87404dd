//! supd's command line, in the library so that the man page is generated
//! from the same definition.

use clap::Parser;
use std::path::PathBuf;

/// A declarative supervisor for long-lived Linux containers.
///
/// supd reads YAML unit files from the unit directories (highest precedence
/// first), keeps one container running per enabled unit, restarts what fails
/// with back-off, and answers supctl on the control socket. SIGTERM or SIGINT
/// stops every container and exits; SIGHUP re-reads the unit directories.
#[derive(Parser, Debug)]
#[command(name = "supd", version = crate::VERSION)]
pub struct Cli {
    /// A unit directory; repeat for several, highest precedence first.
    /// [default: /etc/supd/units, /run/supd/units, /usr/lib/supd/units]
    #[arg(long = "units-dir", value_name = "DIR")]
    pub units_dirs: Vec<PathBuf>,
    /// Persistent per-container data (overlay upper dirs).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/supd")]
    pub state_dir: PathBuf,
    /// Volatile runtime data (container staging directories, the bridges
    /// supd created).
    #[arg(long, value_name = "DIR", default_value = "/run/supd")]
    pub runtime_dir: PathBuf,
    /// Container output logs, NAME.log rotated by size.
    #[arg(long, value_name = "DIR", default_value = "/var/log/supd")]
    pub log_dir: PathBuf,
    /// The control socket.
    #[arg(long, value_name = "PATH", default_value = "/run/supd/supd.sock")]
    pub socket: PathBuf,
    /// Where cgroupfs is mounted.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,
    /// supd's cgroup, under which every container gets its own: ROOT/NAME on
    /// cgroup v2, ROOT/CONTROLLER/NAME in each v1 hierarchy. Default: `supd`,
    /// or on cgroup v2 under systemd (Delegate=yes) the service's own
    /// cgroup: SERVICE/containers, with supd itself in SERVICE/supervisor.
    #[arg(long, value_name = "NAME")]
    pub cgroup_parent: Option<String>,
    /// Members of this group may use every supctl command (root always may);
    /// ignored if the group does not exist.
    #[arg(long, value_name = "GROUP", default_value = "supd")]
    pub socket_group: String,
    /// journald's native socket, where units with `logging.driver: journal`
    /// (or `auto` when supd's stderr is the journal) send their output.
    #[arg(
        long,
        value_name = "PATH",
        default_value = crate::supervisor::journal::JOURNAL_SOCKET
    )]
    pub journal_socket: PathBuf,
    /// Serve Prometheus metrics at GET /metrics on ADDR: HOST:PORT (TCP, e.g.
    /// 127.0.0.1:9464) or the path of a Unix socket. Built at each scrape
    /// from the cgroups; nothing is sampled in between.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Members of this group may use status, show and logs only.
    #[arg(long, value_name = "GROUP")]
    pub read_group: Option<String>,
}
