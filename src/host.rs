//! Facts about the host that every layer reads: the cgroup layout, the
//! online CPUs, block devices, and the kernel's CPU list format. The floor
//! of the crate (with `files`): it imports nothing of supd's.

use std::collections::BTreeSet;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Controllers in v1 hierarchies; `hybrid` if an (empty) cgroup2 mount
    /// sits beside them at `unified`.
    V1 {
        hybrid: bool,
    },
    V2,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::V1 { hybrid: false } => "cgroup v1",
            Layout::V1 { hybrid: true } => "hybrid (v1 controllers, empty cgroup2 at unified)",
            Layout::V2 => "cgroup v2 (unified)",
        })
    }
}

/// What validation needs to know about the host's cgroups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostCgroups {
    pub layout: Layout,
    /// v1: memory.memsw.* exists; v2: memory.swap.max exists.
    pub swap_accounting: bool,
    pub io_weight: bool,
}

/// A CPU list as the kernel writes it: `0-3,6`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub std::collections::BTreeSet<u32>);

impl CpuList {
    pub fn parse(value: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid CPU list {value:?}: expected CPU numbers and ranges such as 0-3,6");
        let mut cpus = std::collections::BTreeSet::new();
        for part in value.split(',').map(str::trim) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (
                    a.parse::<u32>().map_err(|_| bad())?,
                    b.parse::<u32>().map_err(|_| bad())?,
                ),
                None => {
                    let cpu = part.parse::<u32>().map_err(|_| bad())?;
                    (cpu, cpu)
                }
            };
            if first > last || last > 4095 {
                return Err(bad());
            }
            cpus.extend(first..=last);
        }
        Ok(CpuList(cpus))
    }

    /// The kernel's compact form, `0-3,6`.
    pub fn render(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut iter = self.0.iter().copied().peekable();
        while let Some(first) = iter.next() {
            let mut last = first;
            while iter.peek() == Some(&(last + 1)) {
                last += 1;
                iter.next();
            }
            out.push(if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            });
        }
        out.join(",")
    }
}

/// The CPUs the kernel has online (empty if it cannot be read).
pub fn online_cpus() -> BTreeSet<u32> {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|text| CpuList::parse(text.trim()).ok())
        .map(|list| list.0)
        .unwrap_or_default()
}

/// The (major, minor) numbers of a block device; None for anything else.
pub fn block_device_numbers(path: &Path) -> std::io::Result<Option<(u64, u64)>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path)?;
    if !meta.file_type().is_block_device() {
        return Ok(None);
    }
    let rdev = meta.rdev();
    Ok(Some((
        u64::from(libc::major(rdev)),
        u64::from(libc::minor(rdev)),
    )))
}

/// Whether `path` is a block device (for validation).
pub fn is_block_device(path: &Path) -> bool {
    block_device_numbers(path).is_ok_and(|numbers| numbers.is_some())
}
