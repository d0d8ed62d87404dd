//! supd: keeps one container running per unit file.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use supd::cli::supd::Cli;
use supd::control::access::{group_id, AccessPolicy};
use supd::runtime::{Dirs, INIT_STAGE_ARG};
use supd::supervisor::{Options, Supervisor};

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
