//! supctl's command line, in the library so that the man page and the
//! shell completions are generated from the same definition.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Control the supd container supervisor.
#[derive(Parser, Debug)]
#[command(name = "supctl", version = crate::VERSION)]
pub struct Cli {
    /// supd's control socket.
    #[arg(
        long,
        global = true,
        env = "SUPD_SOCKET",
        default_value = "/run/supd/supd.sock"
    )]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Show units: state, PID, uptime, restarts, CPU, memory, pids, last exit,
    /// and below each its addresses, published ports, health, the workload's
    /// status text, image and any error.
    /// Exits 3 if a named unit is not running, 4 if it is unknown.
    Status {
        /// Print the JSON array instead of a table.
        #[arg(long)]
        json: bool,
        names: Vec<String>,
    },
    /// Start units (clears back-off and the start limit; a stopping unit
    /// starts again once it is down).
    Start {
        /// Print the answer as JSON: {message, failed: [{name, state, error}]}.
        #[arg(long)]
        json: bool,
        /// Return at once instead of waiting until the units run.
        #[arg(long)]
        no_block: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop units; they stay stopped until started or their file changes.
    Stop {
        /// Print the answer as JSON: {message, failed: [{name, state, error}]}.
        #[arg(long)]
        json: bool,
        /// Return at once instead of waiting until the units stopped.
        #[arg(long)]
        no_block: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop and start units again (also revives a failed unit).
    Restart {
        /// Print the answer as JSON: {message, failed: [{name, state, error}]}.
        #[arg(long)]
        json: bool,
        /// Return at once instead of waiting until the units run.
        #[arg(long)]
        no_block: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Clear the failed state (all failed units if none named) and start them.
    ResetFailed {
        /// Print the answer as JSON: {message, failed: [{name, state, error}]}.
        #[arg(long)]
        json: bool,
        names: Vec<String>,
    },
    /// Re-read the unit directories now. Rarely needed: supd follows every
    /// change of a unit file or drop-in by itself.
    Reload {
        /// Print the answer as JSON: {message, failed: [{name, state, error}]}.
        #[arg(long)]
        json: bool,
    },
    /// Print units' output (stdout and stderr of the workload), each line
    /// as it was written; with several units, each line starts with the
    /// unit's name.
    Logs {
        /// Keep printing new output as it arrives.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (of each unit).
        #[arg(short = 'n', long, value_name = "N")]
        lines: Option<usize>,
        /// Only lines written at or after TIME: RFC 3339 (2026-12-01T10:00:00Z)
        /// or a duration ago (10m, 2h).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only lines written at or before TIME (as for --since).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Start each line with the time supd read it (RFC 3339, UTC).
        #[arg(short, long)]
        timestamps: bool,
        /// Only this stream.
        #[arg(long, value_enum, value_name = "STREAM")]
        stream: Option<StreamArg>,
        /// One JSON object per line: unit, time, stream, message.
        #[arg(long)]
        json: bool,
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Print the effective unit: its files merged (drop-ins over the unit
    /// file) with the defaults supd applies to what they leave out, after
    /// the files it came from. `supctl cat` prints the files as written.
    Show {
        /// Print what supd holds as JSON: the merged YAML, the files, the
        /// error if the files are invalid now.
        #[arg(long)]
        json: bool,
        name: String,
    },
    /// Print a unit's files as written: the unit file, then each drop-in,
    /// each after a `# PATH` line (as systemctl cat).
    Cat {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// List the units supd knows (one name per line with --names, for
    /// shell completion).
    ListUnits {
        /// Names only.
        #[arg(long)]
        names: bool,
        /// The JSON array of {name, state}.
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a running container: its namespaces, cgroup,
    /// root, user, capabilities, seccomp filter and environment. Exits with
    /// the command's status. Needs root.
    Exec {
        /// Give the command a terminal (raw mode on supctl's own, window
        /// size passed on), as `docker exec -t`.
        #[arg(short, long)]
        tty: bool,
        /// Run as USER[:GROUP] (a number or a name in the container's
        /// /etc/passwd) instead of the unit's user.
        #[arg(short, long, value_name = "USER[:GROUP]")]
        user: Option<String>,
        /// Set an environment variable (repeatable), over the unit's.
        #[arg(short, long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Start in DIR (inside the container) instead of the unit's workdir.
        #[arg(short, long, value_name = "DIR")]
        workdir: Option<PathBuf>,
        name: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Send a signal to a unit's workload (through its init, which passes
    /// it on). What follows is the restart policy's: a workload that exits
    /// is restarted as after any exit. Default SIGTERM, as systemctl kill.
    Kill {
        /// Print the answer as JSON: {message, failed: [{name, state, error}]}.
        #[arg(long)]
        json: bool,
        /// A name (HUP, SIGHUP, RTMIN+3) or a number.
        #[arg(short, long, value_name = "SIGNAL", default_value = "SIGTERM")]
        signal: String,
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Re-execute supd from its binary (after an upgrade installed a new
    /// one) in the same process; every container keeps running and is
    /// adopted. Returns once the new supd answers.
    DaemonReexec {
        /// Print the answer as JSON: {message}.
        #[arg(long)]
        json: bool,
    },
    /// Import, list, inspect and remove images (OCI layouts, oci-archive
    /// and docker-archive tars), which units run with `image:`.
    Image {
        #[command(subcommand)]
        command: ImageCmd,
    },
    /// Print what happens as it happens, until interrupted: state changes,
    /// exits (code, signal, OOM kill), restarts with their reason, health
    /// changes, reconciles, invalid unit files, storage filling up. One
    /// line each: time, unit, type, message.
    Events {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Begin with the events since TIME that supd still holds (the last
        /// 4096): RFC 3339 or a duration ago (10m).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only these units' events (default: all, and supd's own).
        names: Vec<String>,
    },
    /// Check unit files without a daemon; exits 1 if any is invalid.
    ///
    /// PATH is a unit file (checked with its drop-ins), a drop-in (checked
    /// with its unit and the other drop-ins) or a unit directory. Every
    /// error of every file is printed. On the machine it runs on it also
    /// checks what the unit needs there: the cgroup layout, online CPUs,
    /// devices, bind sources, the program in the root filesystem, a seccomp
    /// profile, the units it depends on (in the same directories or supd's
    /// default ones) and capabilities supd can grant.
    Validate {
        /// Only what does not depend on this machine (to check units for
        /// another one).
        #[arg(long)]
        offline: bool,
        /// One JSON object per unit: unit, file, ok, masked, errors.
        #[arg(long)]
        json: bool,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamArg {
    Stdout,
    Stderr,
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// Import an image offline into supd's image store.
    ///
    /// PATH is an OCI image layout directory (skopeo copy oci:, buildah
    /// push oci:), an oci-archive tar, a docker-archive tar (docker save,
    /// podman save) or a directory of skopeo's dir: transport (podman save
    /// --format docker-dir); layers may be uncompressed, gzip or zstd.
    /// Every blob is checked against its sha256 first. The tag is NAME:TAG
    /// if given, else the name the image carries. Units on that tag restart
    /// on the new image; one that never gets running on it goes back to the
    /// previous image. supd reads PATH itself, so it must be readable by
    /// root on supd's host.
    Import {
        path: PathBuf,
        #[arg(value_name = "NAME:TAG")]
        name: Option<String>,
        /// Which image to take from a layout or archive that holds several:
        /// its ref name (`org.opencontainers.image.ref.name`, the REF of
        /// skopeo's oci:DIR:REF) or docker tag.
        #[arg(long = "ref", value_name = "REF")]
        reference: Option<String>,
        /// No progress line, even on a terminal.
        #[arg(short, long)]
        quiet: bool,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List images: tags, digest, size on disk, creation time, units using
    /// them.
    #[command(alias = "ls")]
    List {
        /// Print the JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print what supd knows of an image (NAME:TAG or sha256:DIGEST) as
    /// JSON: its layers, its config and the units using it.
    Inspect {
        #[arg(value_name = "IMAGE")]
        name: String,
    },
    /// Remove tags (or untagged images by digest); an image goes once no
    /// tag and no unit needs it. Refused while a unit uses it.
    Rm {
        /// Print each answer as JSON.
        #[arg(long)]
        json: bool,
        #[arg(required = true, value_name = "IMAGE")]
        names: Vec<String>,
    },
    /// Remove every image and layer that nothing needs: no tag, no unit,
    /// not the previous image of a tag a unit uses (its rollback target).
    Prune {
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
}
