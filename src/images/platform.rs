//! The host's platform in the OCI vocabulary, to pick from a
//! multi-platform index and to refuse an image built for another one.

/// GOARCH names, as image indexes use them.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "loongarch64" => "loong64",
        "mips64" => "mips64",
        other => other,
    }
}

/// The ARM variant this build runs on (`v7` for 32-bit arm, `v8` for
/// arm64), which an index may name.
pub fn host_variant() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "arm" => Some("v7"),
        "aarch64" => Some("v8"),
        _ => None,
    }
}

/// Whether an image for `os`/`architecture`/`variant` runs here. An absent
/// variant matches any.
pub fn runs_here(os: &str, architecture: &str, variant: Option<&str>) -> bool {
    os == "linux"
        && architecture == host_architecture()
        && variant.is_none_or(|v| Some(v) == host_variant() || v.is_empty())
}

pub fn host_platform() -> String {
    match host_variant() {
        Some(variant) => format!("linux/{}/{variant}", host_architecture()),
        None => format!("linux/{}", host_architecture()),
    }
}
