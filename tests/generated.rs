//! The generated files in the repository, the commands' man pages and the
//! shell completions, match the command-line definitions the binaries parse.
//! `SUPD_REGENERATE=1 cargo test --test generated` rewrites them.

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

const SUPD_EXTRA: &str = r#".SH SIGNALS
.TP
.B SIGTERM, SIGINT
Stop every container (dependents before their dependencies, each with its
unit's stop signal and timeout), remove their cgroups and network devices,
and exit 0.
.TP
.B SIGHUP
Re-read the unit directories now, as \fBsupctl reload\fR does.
.SH RESTARTS AND CRASHES
Containers outlive supd. For every active unit supd keeps a record in
\fIRUNTIME_DIR/units/NAME.json\fR, written atomically at each state change:
the unit in force, its state machine (state, restarts, back-off and start
limit) and the container's init, by PID, start time and boot id. The init
holds a copy of the output pipe (sized to \fI/proc/sys/fs/pipe-max-size\fR),
so the workload's writes block rather than fail while no supd reads.
.PP
A supd that was killed or crashed leaves its containers running
(\fBKillMode=process\fR under systemd); the next supd on the same cgroup
parent adopts each one whose init still runs, with its PID, state, uptime and
counters, takes its output pipe back and binds its notify socket again. A
container that exited meanwhile is reported with the exit code its init
wrote to \fIRUNTIME_DIR/units/NAME.exit\fR and handled by its restart policy.
A container cgroup without a usable record is cleared: its processes are
killed, it is removed with the cgroups its workload created, and the unit
starts afresh; a cgroup that cannot be removed is a warning, never a reason
not to start. Bridges supd created (listed in
\fIRUNTIME_DIR/bridges.json\fR) are removed once no unit uses them.
.PP
\fBsupctl daemon-reexec\fR makes supd execute the binary at its path (an
upgrade installed the new one) in the same process, handing over the
control socket; the new supd adopts every container. \fBsystemctl stop\fR
and \fBrestart\fR stop the containers (SIGTERM keeps its meaning); a crash,
\fBkill -9\fR, the watchdog or \fBdaemon-reexec\fR leaves them running.
\fBsystemctl kill\fR signals every process of the service, the containers
in its delegated cgroups too (\fB--kill-whom=main\fR signals supd alone):
after \fBsystemctl kill -s KILL supd\fR the supd that systemd restarts
starts each container again by its restart policy.
Two live daemons never share a parent: the second one
exits with an error naming it (choose another with \fB--cgroup-parent\fR).
.PP
What an operator did outlives supd: a unit stopped with \fBsupctl stop\fR
stays stopped, and a \fBfailed\fR one stays failed, across supd restarts and
reboots (\fISTATE_DIR/intent.json\fR), until \fBsupctl start\fR,
\fBrestart\fR, \fBreset-failed\fR or a change of its file, also one made
while supd was not running.
.SH SYSTEMD
supd is a \fBType=notify\fR service: it sends READY=1 once the first
reconcile is done and the control socket listens, STATUS= with a summary
such as "5 running, 1 failed" whenever it changes, WATCHDOG=1 at half of
WATCHDOG_USEC when systemd asks for it (no timer otherwise), RELOADING=1
around an explicit reload and STOPPING=1 at shutdown.
Without NOTIFY_SOCKET none of this happens.
.PP
Under journald (JOURNAL_STREAM names supd's stderr) supd logs with syslog
priority prefixes and no time stamps, and container output goes to the
journal with SYSLOG_IDENTIFIER and SUPD_UNIT set to the unit name and
SUPD_STREAM to stdout or stderr, unless a unit says
\fBlogging.driver: file\fR. The journal socket is written without
blocking: what journald does not take is dropped and counted in
\fBsupctl status\fR.
.PP
With \fB\-\-metrics\-listen\fR, \fBGET /metrics\fR answers with the
Prometheus text format, built from the cgroups at each scrape.
.SH ENVIRONMENT
.TP
.B RUST_LOG
Log filter: error, warn, info (default) or debug.
.TP
.B NOTIFY_SOCKET, WATCHDOG_USEC, JOURNAL_STREAM
Set by systemd; see SYSTEMD above.
.SH FILES
.TP
.I /etc/supd/units/NAME.yaml
Unit files (also \fI/run/supd/units\fR and \fI/usr/lib/supd/units\fR, with
lower precedence), and drop-ins in \fINAME.yaml.d/*.yaml\fR.
.TP
.I /run/supd/supd.sock
The control socket.
.TP
.I /var/lib/supd/NAME
Persistent per-unit state: the overlay upper directory (\fIupper/\fR),
or with \fBresources.storage\fR the limited layer (\fIstorage/\fR, and
\fIstorage.img\fR where it is an ext4 image).
.TP
.I /var/lib/supd/addresses.json, idranges.json, intent.json, rollbacks.json
Leased addresses, user namespace id ranges, the units an operator
stopped or that failed, and the units rolled back to an earlier image.
.TP
.I /var/lib/supd/images/
Imported images: \fIlayers/CHAIN_ID/\fR (unpacked, in overlayfs form),
\fIimages/ID.json\fR (one record per image) and \fItags.json\fR.
.TP
.I /run/supd/hosts/NAME
The \fI/etc/hosts\fR of a bridge container, rewritten in place as peers
start and stop.
.TP
nftables table \fBinet supd\fR
NAT and published ports of the bridge containers that run, rebuilt whole
by every change and by a supd that adopts running containers.
.TP
.I /var/log/supd/NAME.log
Container output, one record per line in the CRI logging format
(time, stream, F or P, the line), rotated by size between records.
.SH SEE ALSO
.BR supctl (1),
.BR supd.unit (5),
.BR systemd.service (5)
"#;

const SUPCTL_EXTRA: &str = r#".SH EXIT STATUS
.TP
.B 0
Success.
.TP
.B 1
An error, or a unit did not reach the asked-for state.
.TP
.B 3
\fBstatus\fR: a named unit is neither running nor ready.
.TP
.B 4
\fBstatus\fR: a named unit is unknown.
.PP
\fBexec\fR exits with the command's status: 128+N if signal N killed it,
126 if it could not be executed, 127 if it was not found.
.SH ENVIRONMENT
.TP
.B SUPD_SOCKET
The control socket, as \fB\-\-socket\fR.
.TP
.B NO_COLOR
When set and not empty, \fBstatus\fR prints no colours. Colours are only
ever used on a terminal.
.SH EXAMPLES
.nf
supctl status
supctl status \-\-json web
supctl restart web
supctl logs \-f \-n 100 web
supctl exec web \-\- sh \-c 'ps; hostname'
supctl validate /etc/supd/units/*.yaml
supctl image import app.oci.tar app:1.4
supctl image import \-\-ref 1.4 ./oci\-layout app:1.4
supctl image list
.fi
.SH SEE ALSO
.BR supd (8),
.BR supd.unit (5)
"#;

fn man_page(command: clap::Command, section: &str, extra: &str) -> Vec<u8> {
    let has_subcommands = command.has_subcommands();
    // `supctl help` has no page of its own: it is not listed as if it had.
    let man = clap_mangen::Man::new(command.disable_help_subcommand(true))
        .section(section)
        .manual("supd manual")
        .source(format!("supd {}", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    man.render_title(&mut page).unwrap();
    man.render_name_section(&mut page).unwrap();
    man.render_synopsis_section(&mut page).unwrap();
    man.render_description_section(&mut page).unwrap();
    man.render_options_section(&mut page).unwrap();
    if has_subcommands {
        man.render_subcommands_section(&mut page).unwrap();
    }
    page.extend_from_slice(extra.as_bytes());
    page
}

fn completion(shell: Shell, mut command: clap::Command, name: &str) -> Vec<u8> {
    // Into a buffer: clap_complete panics on a broken pipe.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    script
}

/// The supctl verbs whose NAME arguments are units.
const UNIT_VERBS: [&str; 11] = [
    "status",
    "start",
    "stop",
    "restart",
    "reset-failed",
    "logs",
    "show",
    "cat",
    "exec",
    "kill",
    "events",
];

/// clap's scripts complete subcommands and options; unit names come from
/// the running supd (`supctl list-units --names`), added here.
fn with_unit_names(shell: Shell, script: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8(script).unwrap();
    let verbs = UNIT_VERBS.join(" ");
    let out = match shell {
        Shell::Bash => {
            let verbs = UNIT_VERBS.join("|");
            let registration = text.rfind("if [[ \"${BASH_VERSINFO[0]}\"").unwrap();
            format!(
                r#"{head}# Unit names from the running supd for the verbs that take them.
_supctl_units() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} verb="" word
    for word in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        [[ $word == -- ]] && {{ _supctl "$@"; return; }}
        [[ $word != -* && -z $verb ]] && verb=$word
    done
    case "$verb" in
        {verbs})
            if [[ $cur != -* ]]; then
                COMPREPLY=( $(compgen -W "$(supctl list-units --names 2>/dev/null)" -- "$cur") )
                return
            fi ;;
    esac
    _supctl "$@"
}}
if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F _supctl_units -o nosort -o bashdefault -o default supctl
else
    complete -F _supctl_units -o bashdefault -o default supctl
fi
"#,
                head = &text[..registration]
            )
        }
        Shell::Zsh => {
            let mut verb = String::new();
            let mut lines: Vec<String> = Vec::new();
            for line in text.lines() {
                if let Some(label) = line.strip_prefix('(').and_then(|l| l.strip_suffix(')')) {
                    verb = label.to_string();
                }
                let takes_units = UNIT_VERBS.contains(&verb.as_str())
                    && (line.starts_with("'*::names") || line.starts_with("':name"));
                lines.push(match takes_units {
                    true => line.replace(":_default'", ":_supctl_unit_names'"),
                    false => line.to_string(),
                });
            }
            let body = lines.join("\n") + "\n";
            let registration = body.rfind("if [ \"$funcstack[1]\" = \"_supctl\" ]").unwrap();
            format!(
                "{}(( $+functions[_supctl_unit_names] )) ||\n_supctl_unit_names() {{\n    local -a units\n    units=(${{(f)\"$(supctl list-units --names 2>/dev/null)\"}})\n    _describe -t units 'supd unit' units\n}}\n\n{}",
                &body[..registration],
                &body[registration..]
            )
        }
        Shell::Fish => format!(
            "{text}# Unit names from the running supd for the verbs that take them.\ncomplete -c supctl -n \"__fish_seen_subcommand_from {verbs}\" -f -a \"(supctl list-units --names 2>/dev/null)\"\n"
        ),
        _ => text,
    };
    out.into_bytes()
}

fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let supd = || supd::cli::supd::Cli::command().name("supd");
    let supctl = || supd::cli::supctl::Cli::command().name("supctl");
    let mut files = vec![
        (root.join("man/supd.8"), man_page(supd(), "8", SUPD_EXTRA)),
        (
            root.join("man/supctl.1"),
            man_page(supctl(), "1", SUPCTL_EXTRA),
        ),
    ];
    // One page per subcommand, as the SUBCOMMANDS section refers to them.
    for sub in supctl()
        .get_subcommands()
        .filter(|c| c.get_name() != "help")
    {
        // clap wants &'static names; leaking a few in a test is harmless.
        let name: &'static str = format!("supctl-{}", sub.get_name()).leak();
        let command = sub
            .clone()
            .name(name)
            .display_name(name)
            .bin_name(format!("supctl {}", sub.get_name()));
        let extra = ".SH SEE ALSO\n.BR supctl (1)\n";
        // `supctl image import` and its siblings get pages of their own, so
        // that their options are in a man page too.
        for nested in sub.get_subcommands().filter(|c| c.get_name() != "help") {
            let nested_name: &'static str = format!("{name}-{}", nested.get_name()).leak();
            let nested_command = nested
                .clone()
                .name(nested_name)
                .display_name(nested_name)
                .bin_name(format!("supctl {} {}", sub.get_name(), nested.get_name()));
            let see_also: &'static str =
                format!(".SH SEE ALSO\n.BR {name} (1),\n.BR supctl (1)\n").leak();
            files.push((
                root.join(format!("man/{nested_name}.1")),
                man_page(nested_command, "1", see_also),
            ));
        }
        files.push((
            root.join(format!("man/{name}.1")),
            man_page(command, "1", extra),
        ));
    }
    for (name, command) in [("supd", supd()), ("supctl", supctl())] {
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let path = root.join("completions").join(file);
            let mut script = completion(shell, command.clone(), name);
            if name == "supctl" {
                script = with_unit_names(shell, script);
            }
            files.push((path, script));
        }
    }
    files
}

#[test]
fn man_pages_and_completions_are_up_to_date() {
    let regenerate = std::env::var_os("SUPD_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (path, content) in generated() {
        assert!(!content.is_empty(), "{} came out empty", path.display());
        if std::fs::read(&path).ok().as_deref() == Some(content.as_slice()) {
            continue;
        }
        if regenerate {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap();
        } else {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; run SUPD_REGENERATE=1 cargo test --test generated"
    );
}

#[test]
fn completions_offer_the_subcommands() {
    let bash = completion(Shell::Bash, supd::cli::supctl::Cli::command(), "supctl");
    let bash = String::from_utf8(bash).unwrap();
    for word in ["status", "restart", "logs", "exec", "validate", "--socket"] {
        assert!(
            bash.contains(word),
            "{word} missing from the bash completion"
        );
    }
}

#[test]
fn bash_completes_unit_names_from_the_running_supd() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions/supctl.bash");
    let complete = |words: &str| {
        let program = format!(
            "source {}; supctl() {{ [ \"$*\" = 'list-units --names' ] && printf 'web\\nworker\\ndb\\n'; }}; \
             COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _supctl_units supctl \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[*]}}\"",
            script.display()
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &program])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("supctl restart w"), "web worker");
    assert_eq!(complete("supctl logs -f d"), "db");
    assert_eq!(complete("supctl kill -s HUP ''"), "web worker db");
    assert!(complete("supctl rest").contains("restart"), "verbs still");
    assert!(
        !complete("supctl image rm w").contains("web"),
        "not for images"
    );
}

#[test]
fn fish_completes_unit_names_and_zsh_reads_its_script() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fish = format!(
        "function supctl; if test \"$argv\" = 'list-units --names'; echo web; echo db; end; end; \
         source {}; complete -C 'supctl restart '",
        root.join("completions/supctl.fish").display()
    );
    let out = std::process::Command::new("fish")
        .args(["-c", &fish])
        .output()
        .expect("fish (scripts/test.sh installs it)");
    let offered = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        offered.lines().any(|l| l == "web") && offered.lines().any(|l| l == "db"),
        "{offered}"
    );
    let zsh = std::process::Command::new("zsh")
        .arg("-n")
        .arg(root.join("completions/_supctl"))
        .output()
        .expect("zsh (scripts/test.sh installs it)");
    assert!(
        zsh.status.success(),
        "{}",
        String::from_utf8_lossy(&zsh.stderr)
    );
    let script = std::fs::read_to_string(root.join("completions/_supctl")).unwrap();
    assert!(
        script.contains("':name:_supctl_unit_names'") && script.contains("_supctl_unit_names() {")
    );
}
