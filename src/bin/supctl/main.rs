//! supctl: drives a running supd over its control socket. One subcommand per
//! request of the protocol, plus `validate`, which needs no daemon.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod image;
mod logs;
mod table;
mod validate;

use anyhow::bail;
use clap::Parser;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use supd::cli::supctl::{Cli, Cmd, StreamArg};
use supd::control::client::call;
use supd::control::protocol::{Body, Command, Response, State, UnitStatus};
use supd::supervisor::output::Stream;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("supctl: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let socket = cli.socket;
    match cli.command {
        Cmd::Status { json, names } => status(&socket, json, names),
        Cmd::Start {
            json,
            no_block,
            names,
        } => act(
            &socket,
            Command::Start {
                names,
                wait: !no_block,
            },
            json,
        ),
        Cmd::Stop {
            json,
            no_block,
            names,
        } => act(
            &socket,
            Command::Stop {
                names,
                wait: !no_block,
            },
            json,
        ),
        Cmd::Restart {
            json,
            no_block,
            names,
        } => act(
            &socket,
            Command::Restart {
                names,
                wait: !no_block,
            },
            json,
        ),
        Cmd::ResetFailed { json, names } => act(&socket, Command::ResetFailed { names }, json),
        Cmd::Reload { json } => act(&socket, Command::Reload, json),
        Cmd::Logs {
            follow,
            lines,
            since,
            until,
            timestamps,
            stream,
            json,
            names,
        } => {
            let options = LogOptions {
                since: since.as_deref().map(logs::parse_time).transpose()?,
                until: until.as_deref().map(logs::parse_time).transpose()?,
                stream: stream.map(|s| match s {
                    StreamArg::Stdout => Stream::Stdout,
                    StreamArg::Stderr => Stream::Stderr,
                }),
                timestamps,
                json,
            };
            print_logs(&socket, &names, lines, follow, &options)
        }
        Cmd::Show { json, name } => show(&socket, name, json),
        Cmd::Cat { names } => cat(&socket, &names),
        Cmd::ListUnits { names, json } => list_units(&socket, names, json),
        Cmd::Exec {
            tty,
            user,
            env,
            workdir,
            name,
            command,
        } => exec(
            &socket,
            name,
            &command,
            ExecOptions {
                tty,
                user,
                env,
                workdir,
            },
        ),
        Cmd::Kill {
            json,
            signal,
            names,
        } => {
            let signal = supd::unit::schema::SignalName::parse(&signal)
                .map_err(|e| anyhow::anyhow!("--signal: {e}"))?;
            act(
                &socket,
                Command::Kill {
                    names,
                    signal: signal.0,
                },
                json,
            )
        }
        Cmd::DaemonReexec { json } => daemon_reexec(&socket, json),
        Cmd::Image { command } => image::run(&socket, command),
        Cmd::Validate {
            offline,
            json,
            paths,
        } => validate::run(&paths, offline, json),
        Cmd::Events { json, since, names } => events(&socket, json, since, names),
    }
}

struct LogOptions {
    since: Option<std::time::Duration>,
    until: Option<std::time::Duration>,
    stream: Option<Stream>,
    timestamps: bool,
    json: bool,
}

fn print_logs(
    socket: &Path,
    names: &[String],
    lines: Option<usize>,
    follow: bool,
    options: &LogOptions,
) -> anyhow::Result<u8> {
    let filter = |name: &str| logs::Filter {
        since: options.since,
        until: options.until,
        stream: options.stream,
        timestamps: options.timestamps,
        json: options.json,
        prefix: (names.len() > 1 || options.json).then(|| name.to_string()),
    };
    let mut followed = Vec::new();
    for name in names {
        match request(socket, Command::Logs { name: name.clone() })? {
            Body::Logs { journal: true, .. } if names.len() == 1 => {
                return logs::journal(name, lines, follow, &filter(name));
            }
            Body::Logs { journal: true, .. } => {
                bail!("{name} logs to the journal: ask for it alone (journalctl reads it)")
            }
            Body::Logs { files, .. } => {
                let from = logs::print(&files, lines, &filter(name))?;
                if let (true, Some(current)) = (follow, files.last()) {
                    followed.push(logs::Followed::new(current.clone(), from, filter(name)));
                }
            }
            other => bail!("unexpected answer: {other:?}"),
        }
    }
    if follow {
        logs::follow(followed)?;
    }
    Ok(0)
}

fn events(
    socket: &Path,
    json: bool,
    since: Option<String>,
    names: Vec<String>,
) -> anyhow::Result<u8> {
    let since = since
        .as_deref()
        .map(logs::parse_time)
        .transpose()?
        .map(supd::control::clock::rfc3339_nanos);
    let stdout = std::io::stdout();
    let mut failed = None;
    let first =
        supd::control::client::subscribe(socket, Command::Events { since, names }, |response| {
            let Body::Event { event } = response.body else {
                return true;
            };
            let mut out = stdout.lock();
            let written = if json {
                serde_json::to_string(&event)
                    .map_err(std::io::Error::other)
                    .and_then(|line| writeln!(out, "{line}"))
            } else {
                writeln!(
                    out,
                    "{} {} {} {}",
                    event.time,
                    event.unit.as_deref().unwrap_or("-"),
                    event.kind.name(),
                    event.message
                )
            };
            match written.and_then(|()| out.flush()) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
    if let Body::Error { message } = first.body {
        bail!("{message}");
    }
    match failed {
        // A closed pipe (`supctl events | head`) is the reader's choice.
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Some(e) => Err(e.into()),
        None => Ok(0),
    }
}

pub(crate) fn request(socket: &Path, command: Command) -> anyhow::Result<Body> {
    let Response { body, .. } = call(socket, command)?;
    if let Body::Error { message } = body {
        bail!("{message}");
    }
    Ok(body)
}

fn status(socket: &Path, json: bool, names: Vec<String>) -> anyhow::Result<u8> {
    let units = match request(
        socket,
        Command::Status {
            names: names.clone(),
        },
    )? {
        Body::Status { units } => units,
        other => bail!("unexpected answer: {other:?}"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&units)?);
    } else if !units.is_empty() || names.is_empty() {
        // Only unknown names asked for: their errors alone, no empty table.
        print!("{}", table::render(&units, table::use_colour()));
    }
    let unknown = names
        .iter()
        .filter(|n| !units.iter().any(|u| &u.name == *n));
    for name in unknown.clone() {
        eprintln!("supctl: unknown unit {name}");
    }
    Ok(if unknown.count() > 0 {
        4
    } else if !names.is_empty() && !units.iter().all(is_up) {
        3
    } else {
        0
    })
}

struct ExecOptions {
    tty: bool,
    user: Option<String>,
    env: Vec<String>,
    workdir: Option<PathBuf>,
}

fn exec(
    socket: &Path,
    name: String,
    command: &[String],
    options: ExecOptions,
) -> anyhow::Result<u8> {
    let (pid, mut unit, cgroups) = match request(socket, Command::Exec { name })? {
        Body::Exec { pid, unit, cgroups } => (pid, unit, cgroups),
        other => bail!("unexpected answer: {other:?}"),
    };
    if let Some(user) = &options.user {
        unit.user = Some(
            supd::unit::schema::UserSpec::parse(user)
                .map_err(|e| anyhow::anyhow!("--user: {e}"))?,
        );
    }
    for pair in &options.env {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--env {pair:?}: expected KEY=VALUE");
        };
        unit.env.insert(key.to_string(), value.to_string());
    }
    if let Some(dir) = options.workdir {
        if !dir.is_absolute() {
            bail!("--workdir {}: must be absolute", dir.display());
        }
        unit.workdir = dir;
    }
    let code = supd::runtime::enter::run(pid, &unit, &cgroups, command, options.tty)?;
    Ok(u8::try_from(code).unwrap_or(1))
}

fn is_up(unit: &UnitStatus) -> bool {
    matches!(unit.state, State::Running | State::Ready)
}

pub(crate) fn act(socket: &Path, command: Command, json: bool) -> anyhow::Result<u8> {
    match request(socket, command)? {
        Body::Done { message, failed } if json => {
            let value = serde_json::json!({ "message": message, "failed": failed });
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(u8::from(!failed.is_empty()))
        }
        Body::Done { message, failed } => {
            if failed.is_empty() {
                println!("{message}");
                return Ok(0);
            }
            for failure in failed {
                eprintln!(
                    "supctl: {} is {}{}",
                    failure.name,
                    failure.state,
                    failure.error.map(|e| format!(": {e}")).unwrap_or_default()
                );
            }
            Ok(1)
        }
        other => bail!("unexpected answer: {other:?}"),
    }
}

/// Asks supd to re-execute itself and returns once the new supd answers.
fn daemon_reexec(socket: &Path, json: bool) -> anyhow::Result<u8> {
    let patience = std::time::Duration::from_secs(30);
    let response =
        supd::control::client::call_until_closed(socket, Command::DaemonReexec, patience)?;
    let message = match response.body {
        Body::Done { message, .. } => message,
        Body::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer: {other:?}"),
    };
    if !json {
        println!("{message}");
    }
    // The socket was handed over: this request waits in its backlog until
    // the new supd serves it.
    request(socket, Command::Status { names: Vec::new() })?;
    match json {
        true => println!(
            "{}",
            serde_json::json!({ "message": message, "answers_again": true })
        ),
        false => println!("supd answers again"),
    }
    Ok(0)
}

/// `supctl cat`: the files as they are on disk now, read by supctl.
fn cat(socket: &Path, names: &[String]) -> anyhow::Result<u8> {
    use anyhow::Context;
    let mut first = true;
    for name in names {
        let Body::Show { files, .. } = request(socket, Command::Show { name: name.clone() })?
        else {
            bail!("unexpected answer from supd");
        };
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if !first {
                println!();
            }
            first = false;
            println!("# {}", file.display());
            print!("{text}");
            if !text.ends_with('\n') && !text.is_empty() {
                println!();
            }
        }
    }
    Ok(0)
}

fn list_units(socket: &Path, names_only: bool, json: bool) -> anyhow::Result<u8> {
    let units = match request(socket, Command::Status { names: Vec::new() })? {
        Body::Status { units } => units,
        other => bail!("unexpected answer: {other:?}"),
    };
    if json {
        let list: Vec<serde_json::Value> = units
            .iter()
            .map(|u| serde_json::json!({ "name": u.name, "state": u.state }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for unit in &units {
            match names_only {
                true => println!("{}", unit.name),
                false => println!("{} {}", unit.name, unit.state),
            }
        }
    }
    Ok(0)
}

fn show(socket: &Path, name: String, json: bool) -> anyhow::Result<u8> {
    let body = request(socket, Command::Show { name: name.clone() })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(0);
    }
    let Body::Show {
        yaml,
        files,
        masked,
        error,
        image,
    } = body
    else {
        bail!("unexpected answer from supd");
    };
    for file in &files {
        println!("# {}", file.display());
    }
    if masked {
        println!("# {name} is masked");
    }
    if let Some(error) = &error {
        println!("# invalid now, the configuration below stays in force: {error}");
    }
    if let Some(image) = &image {
        println!("# image: {image}");
    }
    if let Some(yaml) = yaml {
        print!("{yaml}");
    }
    Ok(0)
}
