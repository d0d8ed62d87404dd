//! supd: keeps one container running per unit file.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use supd::control::access::{group_id, AccessPolicy};
use supd::runtime::{Dirs, INIT_STAGE_ARG};
use supd::supervisor::{Options, Supervisor};

/// A declarative supervisor for long-lived Linux containers.
///
/// supd reads YAML unit files from the unit directories (highest precedence
/// first), keeps one container running per enabled unit, restarts what fails
/// with back-off, and answers supctl on the control socket. SIGTERM or SIGINT
/// stops every container and exits; SIGHUP re-reads the unit directories.
#[derive(Parser, Debug)]
#[command(name = "supd", version)]
struct Cli {
    /// A unit directory; repeat for several, highest precedence first.
    /// [default: /etc/supd/units, /run/supd/units, /usr/lib/supd/units]
    #[arg(long = "units-dir", value_name = "DIR")]
    units_dirs: Vec<PathBuf>,
    /// Persistent per-container data (overlay upper dirs).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/supd")]
    state_dir: PathBuf,
    /// Volatile runtime data (container staging directories).
    #[arg(long, value_name = "DIR", default_value = "/run/supd")]
    runtime_dir: PathBuf,
    /// Container output logs, NAME.log rotated by size.
    #[arg(long, value_name = "DIR", default_value = "/var/log/supd")]
    log_dir: PathBuf,
    /// The control socket.
    #[arg(long, value_name = "PATH", default_value = "/run/supd/supd.sock")]
    socket: PathBuf,
    /// Where cgroupfs is mounted.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/cgroup")]
    cgroup_root: PathBuf,
    /// supd's cgroup, under which every container gets its own: ROOT/NAME on
    /// cgroup v2, ROOT/CONTROLLER/NAME in each v1 hierarchy.
    #[arg(long, value_name = "NAME", default_value = "supd")]
    cgroup_parent: String,
    /// Members of this group may use every supctl command (root always may);
    /// ignored if the group does not exist.
    #[arg(long, value_name = "GROUP", default_value = "supd")]
    socket_group: String,
    /// Members of this group may use status, show and logs only.
    #[arg(long, value_name = "GROUP")]
    read_group: Option<String>,
}

fn main() -> anyhow::Result<()> {
    // The container init stage re-executes this binary; it must not pay for
    // argument parsing or logging setup.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == INIT_STAGE_ARG)
    {
        supd::runtime::setup::run_init_stage();
    }
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let units_dirs = if cli.units_dirs.is_empty() {
        ["/etc/supd/units", "/run/supd/units", "/usr/lib/supd/units"]
            .iter()
            .map(PathBuf::from)
            .collect()
    } else {
        cli.units_dirs
    };
    let options = Options {
        units_dirs,
        dirs: Dirs {
            runtime: cli.runtime_dir,
            state: cli.state_dir,
            log: cli.log_dir,
        },
        socket: cli.socket,
        cgroup_root: cli.cgroup_root,
        cgroup_parent: cli.cgroup_parent,
        access: AccessPolicy {
            admin_gid: group_id(&cli.socket_group),
            read_gid: match &cli.read_group {
                Some(name) => {
                    Some(group_id(name).with_context(|| format!("no group {name} in /etc/group"))?)
                }
                None => None,
            },
        },
    };
    log::info!(
        "supd {} starting; units from {:?}, socket {}",
        env!("CARGO_PKG_VERSION"),
        options.units_dirs,
        options.socket.display()
    );
    Supervisor::new(options)
        .context("cannot start supd")?
        .run()
        .context("supd failed")
}
