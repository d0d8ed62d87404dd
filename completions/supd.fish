complete -c supd -l units-dir -d 'A unit directory; repeat for several, highest precedence first. [default: /etc/supd/units, /run/supd/units, /usr/lib/supd/units]' -r -F
complete -c supd -l state-dir -d 'Persistent per-container data (overlay upper dirs)' -r -F
complete -c supd -l runtime-dir -d 'Volatile runtime data (container staging directories, the bridges supd created)' -r -F
complete -c supd -l log-dir -d 'Container output logs, NAME.log rotated by size' -r -F
complete -c supd -l socket -d 'The control socket' -r -F
complete -c supd -l cgroup-root -d 'Where cgroupfs is mounted' -r -F
complete -c supd -l cgroup-parent -d 'supd\'s cgroup, under which every container gets its own: ROOT/NAME on cgroup v2, ROOT/CONTROLLER/NAME in each v1 hierarchy. Default: `supd`, or on cgroup v2 under systemd (Delegate=yes) the service\'s own cgroup: SERVICE/containers, with supd itself in SERVICE/supervisor' -r
complete -c supd -l socket-group -d 'Members of this group may use every supctl command (root always may); ignored if the group does not exist' -r
complete -c supd -l journal-socket -d 'journald\'s native socket, where units with `logging.driver: journal` (or `auto` when supd\'s stderr is the journal) send their output' -r -F
complete -c supd -l metrics-listen -d 'Serve Prometheus metrics at GET /metrics on ADDR: HOST:PORT (TCP, e.g. 127.0.0.1:9464) or the path of a Unix socket. Built at each scrape from the cgroups; nothing is sampled in between' -r
complete -c supd -l read-group -d 'Members of this group may use status, show and logs only' -r
complete -c supd -s h -l help -d 'Print help (see more with \'--help\')'
complete -c supd -s V -l version -d 'Print version'
