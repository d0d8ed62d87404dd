//! supd: keeps one container running per unit file.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![no_main]

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use supd::cli::supd::Cli;
use supd::control::access::{group_id, AccessPolicy};
use supd::runtime::{Dirs, INIT_STAGE_ARG};
use supd::supervisor::{Options, Supervisor};

/// Entered from the C runtime, without std's `main` wrapper: every
/// container start re-executes this binary as the init stage, which then
/// skips std's runtime setup (stdio checks, a read of /proc/self/maps for
/// the stack guard, the stack-overflow handler: some 17 system calls and
/// heap it would keep), besides argument parsing and logging. std's
/// arguments still work: glibc hands them over before main.
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == INIT_STAGE_ARG)
    {
        supd::runtime::setup::run_init_stage();
    }
    let mut args = std::env::args_os().skip(1);
    if args
        .next()
        .is_some_and(|a| a == supd::supervisor::health::probe::HEALTH_EXEC_ARG)
    {
        let request = args.next().unwrap_or_default();
        std::process::exit(supd::supervisor::health::probe::run_exec_helper(
            &request.to_string_lossy(),
        ));
    }
    // What std's runtime does for an ordinary main: a closed client socket
    // must be an EPIPE error, not the end of supd.
    // SAFETY: changes a signal disposition; no handler is involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    match daemon() {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("Error: {error:?}");
            1
        }
    }
}

fn daemon() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let under_journal = supd::supervisor::journal::stderr_is_journal();
    init_logging(under_journal);
    let units_dirs = if cli.units_dirs.is_empty() {
        ["/etc/supd/units", "/run/supd/units", "/usr/lib/supd/units"]
            .iter()
            .map(PathBuf::from)
            .collect()
    } else {
        cli.units_dirs
    };
    let cgroup_parent = match cli.cgroup_parent {
        Some(parent) => parent,
        None => supd::runtime::cgroup::delegated_parent(&cli.cgroup_root)
            .context("cannot use the delegated cgroup")?
            .unwrap_or_else(|| "supd".to_string()),
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
        cgroup_parent,
        journal_socket: cli.journal_socket,
        journal_by_default: under_journal,
        metrics_listen: cli.metrics_listen,
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
        supd::VERSION,
        options.units_dirs,
        options.socket.display()
    );
    Supervisor::new(options)
        .context("cannot start supd")?
        .run()
        .context("supd failed")
}

/// Under journald, lines carry sd-daemon priority prefixes (`<3>`) instead
/// of time stamps, which the journal adds itself.
fn init_logging(under_journal: bool) {
    use std::io::Write;
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if under_journal {
        builder.format(|out, record| {
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(out, "<{priority}>{}", record.args())
        });
    }
    builder.init();
}
