# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_supctl_global_optspecs
    string join \n socket= h/help V/version
end

function __fish_supctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_supctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_supctl_using_subcommand
    set -l cmd (__fish_supctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c supctl -n "__fish_supctl_needs_command" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_needs_command" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_needs_command" -s V -l version -d 'Print version'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "status" -d 'Show units: state, PID, uptime, restarts, CPU, memory, pids, last exit, and below each its addresses, published ports, health, the workload\'s status text, image and any error. Exits 3 if a named unit is not running, 4 if it is unknown'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "start" -d 'Start units (clears back-off and the start limit; a stopping unit starts again once it is down)'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "stop" -d 'Stop units; they stay stopped until started or their file changes'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "restart" -d 'Stop and start units again (also revives a failed unit)'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "reset-failed" -d 'Clear the failed state (all failed units if none named) and start them'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "reload" -d 'Re-read the unit directories now. Rarely needed: supd follows every change of a unit file or drop-in by itself'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "logs" -d 'Print units\' output (stdout and stderr of the workload), each line as it was written; with several units, each line starts with the unit\'s name'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "show" -d 'Print the effective unit: its files merged (drop-ins over the unit file) with the defaults supd applies to what they leave out, after the files it came from. `supctl cat` prints the files as written'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "cat" -d 'Print a unit\'s files as written: the unit file, then each drop-in, each after a `# PATH` line (as systemctl cat)'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "list-units" -d 'List the units supd knows (one name per line with --names, for shell completion)'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "exec" -d 'Run a command inside a running container: its namespaces, cgroup, root, user, capabilities, seccomp filter and environment. Exits with the command\'s status. Needs root'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "kill" -d 'Send a signal to a unit\'s workload (through its init, which passes it on). What follows is the restart policy\'s: a workload that exits is restarted as after any exit. Default SIGTERM, as systemctl kill'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "daemon-reexec" -d 'Re-execute supd from its binary (after an upgrade installed a new one) in the same process; every container keeps running and is adopted. Returns once the new supd answers'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "image" -d 'Import, list, inspect and remove images (OCI layouts, oci-archive and docker-archive tars), which units run with `image:`'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "events" -d 'Print what happens as it happens, until interrupted: state changes, exits (code, signal, OOM kill), restarts with their reason, health changes, reconciles, invalid unit files, storage filling up. One line each: time, unit, type, message'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "validate" -d 'Check unit files without a daemon; exits 1 if any is invalid'
complete -c supctl -n "__fish_supctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supctl -n "__fish_supctl_using_subcommand status" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand status" -l json -d 'Print the JSON array instead of a table'
complete -c supctl -n "__fish_supctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand start" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand start" -l json -d 'Print the answer as JSON: {message, failed: [{name, state, error}]}'
complete -c supctl -n "__fish_supctl_using_subcommand start" -l no-block -d 'Return at once instead of waiting until the units run'
complete -c supctl -n "__fish_supctl_using_subcommand start" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand stop" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand stop" -l json -d 'Print the answer as JSON: {message, failed: [{name, state, error}]}'
complete -c supctl -n "__fish_supctl_using_subcommand stop" -l no-block -d 'Return at once instead of waiting until the units stopped'
complete -c supctl -n "__fish_supctl_using_subcommand stop" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand restart" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand restart" -l json -d 'Print the answer as JSON: {message, failed: [{name, state, error}]}'
complete -c supctl -n "__fish_supctl_using_subcommand restart" -l no-block -d 'Return at once instead of waiting until the units run'
complete -c supctl -n "__fish_supctl_using_subcommand restart" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand reset-failed" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand reset-failed" -l json -d 'Print the answer as JSON: {message, failed: [{name, state, error}]}'
complete -c supctl -n "__fish_supctl_using_subcommand reset-failed" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand reload" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand reload" -l json -d 'Print the answer as JSON: {message, failed: [{name, state, error}]}'
complete -c supctl -n "__fish_supctl_using_subcommand reload" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand logs" -s n -l lines -d 'Only the last N lines (of each unit)' -r
complete -c supctl -n "__fish_supctl_using_subcommand logs" -l since -d 'Only lines written at or after TIME: RFC 3339 (2026-12-01T10:00:00Z) or a duration ago (10m, 2h)' -r
complete -c supctl -n "__fish_supctl_using_subcommand logs" -l until -d 'Only lines written at or before TIME (as for --since)' -r
complete -c supctl -n "__fish_supctl_using_subcommand logs" -l stream -d 'Only this stream' -r -f -a "stdout\t''
stderr\t''"
complete -c supctl -n "__fish_supctl_using_subcommand logs" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand logs" -s f -l follow -d 'Keep printing new output as it arrives'
complete -c supctl -n "__fish_supctl_using_subcommand logs" -s t -l timestamps -d 'Start each line with the time supd read it (RFC 3339, UTC)'
complete -c supctl -n "__fish_supctl_using_subcommand logs" -l json -d 'One JSON object per line: unit, time, stream, message'
complete -c supctl -n "__fish_supctl_using_subcommand logs" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand show" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand show" -l json -d 'Print what supd holds as JSON: the merged YAML, the files, the error if the files are invalid now'
complete -c supctl -n "__fish_supctl_using_subcommand show" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand cat" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand cat" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand list-units" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand list-units" -l names -d 'Names only'
complete -c supctl -n "__fish_supctl_using_subcommand list-units" -l json -d 'The JSON array of {name, state}'
complete -c supctl -n "__fish_supctl_using_subcommand list-units" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand exec" -s u -l user -d 'Run as USER[:GROUP] (a number or a name in the container\'s /etc/passwd) instead of the unit\'s user' -r
complete -c supctl -n "__fish_supctl_using_subcommand exec" -s e -l env -d 'Set an environment variable (repeatable), over the unit\'s' -r
complete -c supctl -n "__fish_supctl_using_subcommand exec" -s w -l workdir -d 'Start in DIR (inside the container) instead of the unit\'s workdir' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand exec" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand exec" -s t -l tty -d 'Give the command a terminal (raw mode on supctl\'s own, window size passed on), as `docker exec -t`'
complete -c supctl -n "__fish_supctl_using_subcommand exec" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand kill" -s s -l signal -d 'A name (HUP, SIGHUP, RTMIN+3) or a number' -r
complete -c supctl -n "__fish_supctl_using_subcommand kill" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand kill" -l json -d 'Print the answer as JSON: {message, failed: [{name, state, error}]}'
complete -c supctl -n "__fish_supctl_using_subcommand kill" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand daemon-reexec" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand daemon-reexec" -l json -d 'Print the answer as JSON: {message}'
complete -c supctl -n "__fish_supctl_using_subcommand daemon-reexec" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import list inspect rm prune help" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import list inspect rm prune help" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import list inspect rm prune help" -f -a "import" -d 'Import an image offline into supd\'s image store'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import list inspect rm prune help" -f -a "list" -d 'List images: tags, digest, size on disk, creation time, units using them'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import list inspect rm prune help" -f -a "inspect" -d 'Print what supd knows of an image (NAME:TAG or sha256:DIGEST) as JSON: its layers, its config and the units using it'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import list inspect rm prune help" -f -a "rm" -d 'Remove tags (or untagged images by digest); an image goes once no tag and no unit needs it. Refused while a unit uses it'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import list inspect rm prune help" -f -a "prune" -d 'Remove every image and layer that nothing needs: no tag, no unit, not the previous image of a tag a unit uses (its rollback target)'
complete -c supctl -n "__fish_supctl_using_subcommand image; and not __fish_seen_subcommand_from import list inspect rm prune help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from import" -l ref -d 'Which image to take from a layout or archive that holds several: its ref name (`org.opencontainers.image.ref.name`, the REF of skopeo\'s oci:DIR:REF) or docker tag' -r
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from import" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from import" -s q -l quiet -d 'No progress line, even on a terminal'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from import" -l json -d 'Print the answer as JSON'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from list" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from list" -l json -d 'Print the JSON array instead of a table'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from inspect" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from inspect" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from rm" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from rm" -l json -d 'Print each answer as JSON'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from rm" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from prune" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from prune" -l json -d 'Print the answer as JSON'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "import" -d 'Import an image offline into supd\'s image store'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "list" -d 'List images: tags, digest, size on disk, creation time, units using them'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "inspect" -d 'Print what supd knows of an image (NAME:TAG or sha256:DIGEST) as JSON: its layers, its config and the units using it'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "rm" -d 'Remove tags (or untagged images by digest); an image goes once no tag and no unit needs it. Refused while a unit uses it'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Remove every image and layer that nothing needs: no tag, no unit, not the previous image of a tag a unit uses (its rollback target)'
complete -c supctl -n "__fish_supctl_using_subcommand image; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supctl -n "__fish_supctl_using_subcommand events" -l since -d 'Begin with the events since TIME that supd still holds (the last 4096): RFC 3339 or a duration ago (10m)' -r
complete -c supctl -n "__fish_supctl_using_subcommand events" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand events" -l json -d 'One JSON object per line'
complete -c supctl -n "__fish_supctl_using_subcommand events" -s h -l help -d 'Print help'
complete -c supctl -n "__fish_supctl_using_subcommand validate" -l socket -d 'supd\'s control socket' -r -F
complete -c supctl -n "__fish_supctl_using_subcommand validate" -l offline -d 'Only what does not depend on this machine (to check units for another one)'
complete -c supctl -n "__fish_supctl_using_subcommand validate" -l json -d 'One JSON object per unit: unit, file, ok, masked, errors'
complete -c supctl -n "__fish_supctl_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "status" -d 'Show units: state, PID, uptime, restarts, CPU, memory, pids, last exit, and below each its addresses, published ports, health, the workload\'s status text, image and any error. Exits 3 if a named unit is not running, 4 if it is unknown'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "start" -d 'Start units (clears back-off and the start limit; a stopping unit starts again once it is down)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "stop" -d 'Stop units; they stay stopped until started or their file changes'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "restart" -d 'Stop and start units again (also revives a failed unit)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "reset-failed" -d 'Clear the failed state (all failed units if none named) and start them'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "reload" -d 'Re-read the unit directories now. Rarely needed: supd follows every change of a unit file or drop-in by itself'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "logs" -d 'Print units\' output (stdout and stderr of the workload), each line as it was written; with several units, each line starts with the unit\'s name'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "show" -d 'Print the effective unit: its files merged (drop-ins over the unit file) with the defaults supd applies to what they leave out, after the files it came from. `supctl cat` prints the files as written'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "cat" -d 'Print a unit\'s files as written: the unit file, then each drop-in, each after a `# PATH` line (as systemctl cat)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "list-units" -d 'List the units supd knows (one name per line with --names, for shell completion)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "exec" -d 'Run a command inside a running container: its namespaces, cgroup, root, user, capabilities, seccomp filter and environment. Exits with the command\'s status. Needs root'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "kill" -d 'Send a signal to a unit\'s workload (through its init, which passes it on). What follows is the restart policy\'s: a workload that exits is restarted as after any exit. Default SIGTERM, as systemctl kill'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "daemon-reexec" -d 'Re-execute supd from its binary (after an upgrade installed a new one) in the same process; every container keeps running and is adopted. Returns once the new supd answers'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "image" -d 'Import, list, inspect and remove images (OCI layouts, oci-archive and docker-archive tars), which units run with `image:`'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "events" -d 'Print what happens as it happens, until interrupted: state changes, exits (code, signal, OOM kill), restarts with their reason, health changes, reconciles, invalid unit files, storage filling up. One line each: time, unit, type, message'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "validate" -d 'Check unit files without a daemon; exits 1 if any is invalid'
complete -c supctl -n "__fish_supctl_using_subcommand help; and not __fish_seen_subcommand_from status start stop restart reset-failed reload logs show cat list-units exec kill daemon-reexec image events validate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c supctl -n "__fish_supctl_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "import" -d 'Import an image offline into supd\'s image store'
complete -c supctl -n "__fish_supctl_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "list" -d 'List images: tags, digest, size on disk, creation time, units using them'
complete -c supctl -n "__fish_supctl_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "inspect" -d 'Print what supd knows of an image (NAME:TAG or sha256:DIGEST) as JSON: its layers, its config and the units using it'
complete -c supctl -n "__fish_supctl_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "rm" -d 'Remove tags (or untagged images by digest); an image goes once no tag and no unit needs it. Refused while a unit uses it'
complete -c supctl -n "__fish_supctl_using_subcommand help; and __fish_seen_subcommand_from image" -f -a "prune" -d 'Remove every image and layer that nothing needs: no tag, no unit, not the previous image of a tag a unit uses (its rollback target)'
# Unit names from the running supd for the verbs that take them.
complete -c supctl -n "__fish_seen_subcommand_from status start stop restart reset-failed logs show cat exec kill events" -f -a "(supctl list-units --names 2>/dev/null)"
