//! Which blobs make the image: the manifest for this host, found through
//! an OCI index (or a docker-archive's manifest.json), its config and its
//! layers, each with the digest and size it must have.

use super::archive::Source;
use super::digest::sha256_hex;
use super::{platform, ImageError, Reference};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde::Deserialize;

/// A blob the manifest names, with what it must hash to where known.
pub struct Blob {
    pub member: String,
    pub digest: Option<String>,
    pub size: Option<u64>,
}

pub struct Plan {
    pub name: Option<String>,
    pub manifest: Option<String>,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

/// How deep indexes may nest (an index of indexes of manifests).
const MAX_INDEX_DEPTH: usize = 4;

/// Reads a metadata blob whole and checks it against its descriptor.
pub fn read_verified(source: &Source, blob: &Blob) -> Result<Vec<u8>, ImageError> {
    let bytes = source.read_json(&blob.member)?;
    if let Some(expected) = blob.size {
        if bytes.len() as u64 != expected {
            return Err(ImageError::Size {
                file: blob.member.clone(),
                expected,
                actual: bytes.len() as u64,
            });
        }
    }
    if let Some(expected) = &blob.digest {
        let actual = format!("sha256:{}", sha256_hex(&bytes));
        if actual != *expected {
            return Err(ImageError::Digest {
                file: blob.member.clone(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(bytes)
}

// ---- OCI layouts and oci-archive ----

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

pub fn oci_plan(source: &Source, wanted: Option<&str>) -> Result<Plan, ImageError> {
    let index: ImageIndex = serde_json::from_slice(&source.read_json("index.json")?)
        .map_err(|e| ImageError::format("index.json", e))?;
    let chosen = choose_reference(index.manifests(), wanted)?;
    let name = chosen
        .annotations()
        .as_ref()
        .and_then(|a| a.get(CONTAINERD_NAME).or_else(|| a.get(REF_NAME)).cloned());
    let descriptor = resolve_platform(source, chosen.clone(), 0)?;
    let manifest_blob = descriptor_blob(&descriptor)?;
    let manifest: ImageManifest = serde_json::from_slice(&read_verified(source, &manifest_blob)?)
        .map_err(|e| ImageError::format(&manifest_blob.member, e))?;
    Ok(Plan {
        name,
        manifest: manifest_blob.digest,
        config: descriptor_blob(manifest.config())?,
        layers: manifest
            .layers()
            .iter()
            .map(descriptor_blob)
            .collect::<Result<_, _>>()?,
    })
}

fn descriptor_blob(descriptor: &Descriptor) -> Result<Blob, ImageError> {
    let digest = descriptor.digest();
    let Some(hex) = descriptor.as_digest_sha256() else {
        return Err(ImageError::format(
            digest.to_string(),
            "only sha256 digests are supported",
        ));
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ImageError::format(
            digest.to_string(),
            "not a sha256 digest",
        ));
    }
    Ok(Blob {
        member: format!("blobs/sha256/{hex}"),
        digest: Some(format!("sha256:{hex}")),
        size: Some(descriptor.size()),
    })
}

/// Which entry of the top index to import: the only one, the one whose
/// name matches the asked-for tag, or (entries without names) the one for
/// this platform.
fn choose_reference(
    manifests: &[Descriptor],
    wanted: Option<&str>,
) -> Result<Descriptor, ImageError> {
    let name_of = |d: &Descriptor| -> Vec<String> {
        d.annotations()
            .as_ref()
            .map(|a| {
                [REF_NAME, CONTAINERD_NAME]
                    .iter()
                    .filter_map(|k| a.get(*k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    };
    match manifests {
        [] => return Err(ImageError::format("index.json", "it lists no image")),
        [only] => return Ok(only.clone()),
        _ => {}
    }
    let named: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| !name_of(d).is_empty())
        .collect();
    if named.is_empty() {
        return pick_platform(manifests, "index.json");
    }
    if let Some(wanted) = wanted {
        let wanted_tag = wanted.rsplit(':').next().unwrap_or(wanted);
        let full = Reference::parse(wanted).map(|r| r.to_string()).ok();
        let matching: Vec<&&Descriptor> = named
            .iter()
            .filter(|d| {
                name_of(d).iter().any(|n| {
                    n == wanted
                        || n == wanted_tag
                        || Reference::parse(n).ok().map(|r| r.to_string()) == full
                })
            })
            .collect();
        if let [one] = matching.as_slice() {
            return Ok((**one).clone());
        }
    }
    let names: Vec<String> = named.iter().flat_map(|d| name_of(d)).collect();
    Err(ImageError::Refused(format!(
        "index.json holds {} images ({}): choose one with --ref NAME",
        manifests.len(),
        names.join(", ")
    )))
}

fn is_index(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::ImageIndex)
        || matches!(media_type, MediaType::Other(t) if t == DOCKER_MANIFEST_LIST)
}

/// Follows indexes down to the manifest for this host.
fn resolve_platform(
    source: &Source,
    descriptor: Descriptor,
    depth: usize,
) -> Result<Descriptor, ImageError> {
    if !is_index(descriptor.media_type()) {
        return Ok(descriptor);
    }
    if depth >= MAX_INDEX_DEPTH {
        return Err(ImageError::format(
            descriptor.digest().to_string(),
            "indexes nest too deep",
        ));
    }
    let blob = descriptor_blob(&descriptor)?;
    let index: ImageIndex = serde_json::from_slice(&read_verified(source, &blob)?)
        .map_err(|e| ImageError::format(&blob.member, e))?;
    let chosen = pick_platform(index.manifests(), &blob.member)?;
    resolve_platform(source, chosen, depth.saturating_add(1))
}

fn pick_platform(manifests: &[Descriptor], file: &str) -> Result<Descriptor, ImageError> {
    let runs = |d: &&Descriptor| {
        d.platform().as_ref().is_some_and(|p| {
            platform::runs_here(
                &p.os().to_string(),
                &p.architecture().to_string(),
                p.variant().as_deref(),
            )
        })
    };
    if let Some(found) = manifests.iter().find(runs) {
        return Ok(found.clone());
    }
    let offered: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| format!("{}/{}", p.os(), p.architecture()))
        .collect();
    Err(ImageError::Refused(format!(
        "{file}: no image for this host ({}); it offers {}",
        platform::host_platform(),
        if offered.is_empty() {
            "no platforms".to_string()
        } else {
            offered.join(", ")
        }
    )))
}

// ---- docker-archive (docker save, podman save) ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

pub fn docker_plan(source: &Source, wanted: Option<&str>) -> Result<Plan, ImageError> {
    let bytes = source.read_json("manifest.json")?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return directory_plan(&bytes);
    }
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&bytes).map_err(|e| ImageError::format("manifest.json", e))?;
    let tags_of = |e: &DockerEntry| e.repo_tags.clone().unwrap_or_default();
    let entry = match entries.as_slice() {
        [] => return Err(ImageError::format("manifest.json", "it lists no image")),
        [only] => only,
        several => {
            let full = wanted
                .and_then(|w| Reference::parse(w).ok())
                .map(|r| r.to_string());
            let matching: Vec<&DockerEntry> = several
                .iter()
                .filter(|e| {
                    tags_of(e).iter().any(|t| {
                        Some(t.as_str()) == wanted
                            || Reference::parse(t).ok().map(|r| r.to_string()) == full
                    })
                })
                .collect();
            match matching.as_slice() {
                [one] => *one,
                _ => {
                    let names: Vec<String> = several.iter().flat_map(tags_of).collect();
                    return Err(ImageError::Refused(format!(
                        "manifest.json holds {} images ({}): choose one with --ref NAME",
                        several.len(),
                        names.join(", ")
                    )));
                }
            }
        }
    };
    let blob = |member: &str| Blob {
        member: member.to_string(),
        digest: digest_in_name(member),
        size: None,
    };
    Ok(Plan {
        name: tags_of(entry).into_iter().next(),
        manifest: None,
        config: blob(&entry.config),
        layers: entry.layers.iter().map(|l| blob(l)).collect(),
    })
}

/// The `dir:` transport of skopeo and podman (`podman save --format
/// docker-dir` or `oci-dir` without index): manifest.json is the image
/// manifest itself, and each blob a file named by its hex digest.
fn directory_plan(bytes: &[u8]) -> Result<Plan, ImageError> {
    let manifest: ImageManifest =
        serde_json::from_slice(bytes).map_err(|e| ImageError::format("manifest.json", e))?;
    let flat = |descriptor: &Descriptor| {
        descriptor_blob(descriptor).map(|blob| Blob {
            member: blob.member.trim_start_matches("blobs/sha256/").to_string(),
            ..blob
        })
    };
    Ok(Plan {
        name: None,
        manifest: Some(format!("sha256:{}", sha256_hex(bytes))),
        config: flat(manifest.config())?,
        layers: manifest
            .layers()
            .iter()
            .map(flat)
            .collect::<Result<_, _>>()?,
    })
}

/// `HEX.json` (classic docker save) and `blobs/sha256/HEX` (Docker 25+)
/// name their own digest; `ID/layer.tar` does not (its diff ID is checked).
fn digest_in_name(member: &str) -> Option<String> {
    let last = member.rsplit('/').next()?;
    let hex = last.strip_suffix(".json").unwrap_or(last);
    let named = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let blob = member.starts_with("blobs/sha256/") || member.ends_with(".json");
    (named && blob).then(|| format!("sha256:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_archive_names_carry_digests() {
        let hex = "a".repeat(64);
        assert_eq!(
            digest_in_name(&format!("{hex}.json")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            digest_in_name(&format!("blobs/sha256/{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(digest_in_name(&format!("{hex}/layer.tar")), None);
        assert_eq!(digest_in_name("config.json"), None);
    }
}
