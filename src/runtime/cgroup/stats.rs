//! Reading a container's usage. A figure that cannot be read is None, never
//! a zero that looks real.

use super::Layout;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub memory_bytes: Option<u64>,
    /// Usage minus inactive file cache: what the OOM decision follows.
    pub working_set_bytes: Option<u64>,
    pub cpu_usage_ns: Option<u64>,
    pub pids: Option<u64>,
    pub oom_kills: Option<u64>,
}

fn number(text: Option<String>) -> Option<u64> {
    text?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (memory.stat, cpu.stat, ...).
fn keyed(text: Option<&String>, key: &str) -> Option<u64> {
    text?.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(key)).then(|| parts.next()?.parse().ok())?
    })
}

/// `read(controller, file)` returns a file's text (None if unreadable).
pub fn read_stats(layout: Layout, read: impl Fn(&str, &str) -> Option<String>) -> Stats {
    match layout {
        Layout::V2 => {
            let memory_stat = read("", "memory.stat");
            let memory = number(read("", "memory.current"));
            Stats {
                memory_bytes: memory,
                working_set_bytes: working_set(
                    memory,
                    keyed(memory_stat.as_ref(), "inactive_file"),
                ),
                cpu_usage_ns: keyed(read("", "cpu.stat").as_ref(), "usage_usec")
                    .map(|us| us * 1000),
                pids: number(read("", "pids.current")),
                oom_kills: keyed(read("", "memory.events").as_ref(), "oom_kill"),
            }
        }
        Layout::V1 { .. } => {
            let memory_stat = read("memory", "memory.stat");
            let memory = number(read("memory", "memory.usage_in_bytes"));
            Stats {
                memory_bytes: memory,
                working_set_bytes: working_set(
                    memory,
                    keyed(memory_stat.as_ref(), "total_inactive_file"),
                ),
                cpu_usage_ns: number(read("cpuacct", "cpuacct.usage")),
                pids: number(read("pids", "pids.current")),
                oom_kills: keyed(read("memory", "memory.oom_control").as_ref(), "oom_kill"),
            }
        }
    }
}

fn working_set(usage: Option<u64>, inactive_file: Option<u64>) -> Option<u64> {
    Some(usage?.saturating_sub(inactive_file?))
}
