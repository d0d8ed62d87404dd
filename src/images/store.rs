//! `STATE_DIR/images/`: what is imported, and what may go.
//!
//! ```text
//! layers/HEX/           one unpacked layer, named by its chain ID
//! layers/.partial-*     a layer being unpacked (never used; removed at start)
//! images/HEX.json       an image record, named by its config digest
//! images/HEX.config     the image's config blob, as imported
//! tags.json             name:tag -> digest (and the digest before it)
//! ```
//!
//! Only the event loop writes records and tags; import threads write
//! layers and image records, and a tag only once those are durable.

use super::{ImageError, Reference};
use crate::files::{self, Links};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const PARTIAL_PREFIX: &str = ".partial-";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:` of the config blob (Docker's image ID).
    pub id: String,
    /// The manifest's digest, where the format has one (not docker-archive).
    pub manifest: Option<String>,
    pub created: Option<String>,
    /// Seconds since the epoch.
    pub imported: u64,
    pub platform: String,
    pub layers: Vec<LayerRecord>,
    pub config: ImageConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub chain_id: String,
    pub diff_id: String,
    /// Bytes on disk, unpacked.
    pub size: u64,
}

/// What the image's config says a container runs like.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Docker's HEALTHCHECK (the OCI config has no such field; images
    /// built in Docker format carry it).
    #[serde(default)]
    pub healthcheck: Option<ImageHealthcheck>,
}

/// `config.Healthcheck` of a Docker image config; durations in ns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageHealthcheck {
    /// ["CMD", argv...], ["CMD-SHELL", command] or ["NONE"].
    pub test: Vec<String>,
    pub interval: Option<u64>,
    pub timeout: Option<u64>,
    pub start_period: Option<u64>,
    pub retries: Option<u32>,
}

impl ImageRecord {
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TagRecord {
    pub digest: String,
    /// What the tag named before the last import moved it: a unit on this
    /// tag rolls back to it.
    pub previous: Option<String>,
}

pub struct Store {
    root: PathBuf,
    pub tags: BTreeMap<String, TagRecord>,
    pub images: BTreeMap<String, ImageRecord>,
}

/// What a unit holds on to: its tag (if it names one) and the digest it
/// runs or is about to run.
#[derive(Clone, Debug, Default)]
pub struct InUse {
    pub digests: BTreeMap<String, BTreeSet<String>>,
    pub tags: BTreeSet<String>,
}

impl InUse {
    pub fn units_of(&self, digest: &str) -> Vec<String> {
        self.digests
            .get(digest)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// What `image rm` or `image prune` took away.
#[derive(Debug, Default)]
pub struct Removed {
    pub images: Vec<String>,
    pub layers: usize,
    pub bytes: u64,
}

impl Store {
    pub fn root_in(state_dir: &Path) -> PathBuf {
        state_dir.join("images")
    }

    pub fn layer_dir(root: &Path, chain_id: &str) -> PathBuf {
        root.join("layers")
            .join(chain_id.strip_prefix("sha256:").unwrap_or(chain_id))
    }

    pub fn record_path(root: &Path, id: &str) -> PathBuf {
        root.join("images")
            .join(format!("{}.json", id.strip_prefix("sha256:").unwrap_or(id)))
    }

    /// Loads what is there. With `clean`, removes what interrupted
    /// imports left (only when no import can be running: at start).
    pub fn load(root: &Path, clean: bool) -> (Store, Vec<String>) {
        let mut warnings = Vec::new();
        for dir in ["layers", "images"] {
            if let Err(e) = fs::create_dir_all(root.join(dir)) {
                warnings.push(format!("{}: cannot create: {e}", root.join(dir).display()));
            }
        }
        if clean {
            for path in partial_entries(root) {
                let removed = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                match removed {
                    Ok(()) => warnings.push(format!(
                        "{}: removed what an interrupted image import left",
                        path.display()
                    )),
                    Err(e) => warnings.push(format!("{}: cannot remove: {e}", path.display())),
                }
            }
        }
        let mut images = BTreeMap::new();
        for path in json_files(&root.join("images")) {
            match files::read_regular(&path, Links::Refuse, files::MAX_FILE_BYTES)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<ImageRecord>(&b).map_err(|e| e.to_string()))
            {
                Ok(record) => {
                    let complete = record
                        .layers
                        .iter()
                        .all(|l| Store::layer_dir(root, &l.chain_id).is_dir());
                    if complete {
                        images.insert(record.id.clone(), record);
                    } else {
                        warnings.push(format!(
                            "{}: a layer of this image is missing; import it again",
                            path.display()
                        ));
                    }
                }
                Err(e) => warnings.push(format!("{}: ignored: {e}", path.display())),
            }
        }
        let tags_path = root.join("tags.json");
        let tags: BTreeMap<String, TagRecord> =
            match files::read_regular(&tags_path, Links::Refuse, files::MAX_FILE_BYTES) {
                Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                    warnings.push(format!("{}: ignored: {e}", tags_path.display()));
                    BTreeMap::new()
                }),
                Err(e) if e.is_not_found() => BTreeMap::new(),
                Err(e) => {
                    warnings.push(e.to_string());
                    BTreeMap::new()
                }
            };
        let store = Store {
            root: root.to_path_buf(),
            tags,
            images,
        };
        (store, warnings)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image a reference names now.
    pub fn lookup(&self, reference: &Reference) -> Option<&ImageRecord> {
        match reference {
            Reference::Tag(tag) => self.images.get(&self.tags.get(tag)?.digest),
            Reference::Digest(prefix) => {
                let mut matching = self
                    .images
                    .range(prefix.clone()..)
                    .take_while(|(id, _)| id.starts_with(prefix.as_str()));
                let (_, first) = matching.next()?;
                // An ambiguous prefix names nothing.
                matching.next().is_none().then_some(first)
            }
        }
    }

    pub fn image(&self, id: &str) -> Option<&ImageRecord> {
        self.images.get(id)
    }

    /// The layer directories of an image, bottom first (as `layers:`).
    pub fn layer_dirs(&self, record: &ImageRecord) -> Vec<PathBuf> {
        record
            .layers
            .iter()
            .map(|l| Store::layer_dir(&self.root, &l.chain_id))
            .collect()
    }

    pub fn tags_of(&self, id: &str) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, t)| t.digest == id)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Points `tag` at `id` (written durably): returns the digest it named
    /// before, if that changed.
    pub fn set_tag(
        &mut self,
        tag: &str,
        record: ImageRecord,
    ) -> Result<Option<String>, ImageError> {
        let id = record.id.clone();
        self.images.insert(id.clone(), record);
        let before = self.tags.get(tag).cloned();
        let moved = before
            .as_ref()
            .filter(|t| t.digest != id)
            .map(|t| t.digest.clone());
        let previous = match &before {
            Some(t) if t.digest == id => t.previous.clone(),
            Some(t) => Some(t.digest.clone()),
            None => None,
        };
        self.tags.insert(
            tag.to_string(),
            TagRecord {
                digest: id,
                previous,
            },
        );
        if let Err(e) = self.save_tags() {
            match before {
                Some(before) => self.tags.insert(tag.to_string(), before),
                None => self.tags.remove(tag),
            };
            return Err(e);
        }
        Ok(moved)
    }

    fn save_tags(&self) -> Result<(), ImageError> {
        let path = self.root.join("tags.json");
        let bytes = serde_json::to_vec_pretty(&self.tags)
            .map_err(|e| ImageError::format("tags.json", e))?;
        files::write_atomically(&path, &bytes).map_err(|e| ImageError::Refused(e.to_string()))
    }

    /// Images that must stay: tagged, used by a unit, or the previous
    /// digest of a tag that a unit uses (its rollback target).
    fn needed(&self, in_use: &InUse) -> BTreeSet<String> {
        let mut needed: BTreeSet<String> = self.tags.values().map(|t| t.digest.clone()).collect();
        needed.extend(in_use.digests.keys().cloned());
        for tag in &in_use.tags {
            if let Some(previous) = self.tags.get(tag).and_then(|t| t.previous.clone()) {
                needed.insert(previous);
            }
        }
        needed
    }

    /// `image rm`: a tag (the image goes with it once nothing needs it) or
    /// an untagged image by digest. With `keep_layers` (an import is
    /// running and may be reusing them), layers wait for `prune`.
    pub fn remove(
        &mut self,
        reference: &Reference,
        in_use: &InUse,
        keep_layers: bool,
    ) -> Result<Removed, String> {
        let mut removed = Removed::default();
        match reference {
            Reference::Tag(tag) => {
                let Some(record) = self.tags.get(tag).cloned() else {
                    return Err(format!("no image is tagged {tag}"));
                };
                let users = in_use.units_of(&record.digest);
                if in_use.tags.contains(tag) || !users.is_empty() {
                    let mut users = users;
                    users.sort();
                    return Err(format!(
                        "{tag} is in use by {}: change or remove those units first",
                        if users.is_empty() {
                            "a unit".to_string()
                        } else {
                            users.join(", ")
                        }
                    ));
                }
                self.tags.remove(tag);
                self.save_tags().map_err(|e| e.to_string())?;
                let mut ids = vec![record.digest];
                ids.extend(record.previous);
                for id in ids {
                    if !self.needed(in_use).contains(&id) {
                        self.remove_image(&id, &mut removed);
                    }
                }
            }
            Reference::Digest(_) => {
                let Some(id) = self.lookup(reference).map(|r| r.id.clone()) else {
                    return Err(format!(
                        "no image (or more than one) has the digest {reference}"
                    ));
                };
                let tags = self.tags_of(&id);
                if !tags.is_empty() {
                    return Err(format!(
                        "{id} is tagged {}: remove the tags instead",
                        tags.join(", ")
                    ));
                }
                let users = in_use.units_of(&id);
                if !users.is_empty() {
                    return Err(format!("{id} is in use by {}", users.join(", ")));
                }
                self.remove_image(&id, &mut removed);
            }
        }
        if !keep_layers {
            self.remove_unused_layers(&mut removed);
        }
        Ok(removed)
    }

    /// `image prune`: every image nothing needs, then every layer no
    /// remaining image has.
    pub fn prune(&mut self, in_use: &InUse) -> Removed {
        let mut removed = Removed::default();
        let needed = self.needed(in_use);
        let unneeded: Vec<String> = self
            .images
            .keys()
            .filter(|id| !needed.contains(*id))
            .cloned()
            .collect();
        for id in unneeded {
            self.remove_image(&id, &mut removed);
        }
        // A tag's previous digest that is gone cannot be rolled back to.
        let mut changed = false;
        for tag in self.tags.values_mut() {
            if tag
                .previous
                .as_ref()
                .is_some_and(|p| !self.images.contains_key(p))
            {
                tag.previous = None;
                changed = true;
            }
        }
        if changed {
            if let Err(e) = self.save_tags() {
                log::warn!("image prune: {e}");
            }
        }
        self.remove_unused_layers(&mut removed);
        removed
    }

    fn remove_image(&mut self, id: &str, removed: &mut Removed) {
        let record = Store::record_path(&self.root, id);
        let config = record.with_extension("config");
        for path in [&record, &config] {
            if let Err(e) = fs::remove_file(path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("{}: cannot remove: {e}", path.display());
                }
            }
        }
        if self.images.remove(id).is_some() {
            removed.images.push(id.to_string());
        }
    }

    fn remove_unused_layers(&mut self, removed: &mut Removed) {
        let wanted: HashSet<PathBuf> = self
            .images
            .values()
            .flat_map(|r| r.layers.iter())
            .map(|l| Store::layer_dir(&self.root, &l.chain_id))
            .collect();
        let Ok(entries) = fs::read_dir(self.root.join("layers")) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(PARTIAL_PREFIX) || wanted.contains(&path) {
                continue;
            }
            let bytes = disk_usage(&path);
            match fs::remove_dir_all(&path) {
                Ok(()) => {
                    removed.layers = removed.layers.saturating_add(1);
                    removed.bytes = removed.bytes.saturating_add(bytes);
                }
                Err(e) => log::warn!("{}: cannot remove: {e}", path.display()),
            }
        }
    }
}

/// Bytes a directory tree holds on disk, each hard-linked inode once.
pub fn disk_usage(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total: u64 = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if seen.insert((meta.dev(), meta.ino())) {
            total = total.saturating_add(meta.blocks().saturating_mul(512));
        }
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

fn partial_entries(root: &Path) -> Vec<PathBuf> {
    ["layers", "images"]
        .iter()
        .filter_map(|dir| fs::read_dir(root.join(dir)).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX))
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(root: &Path, id_char: char, chains: &[char]) -> ImageRecord {
        let layers = chains
            .iter()
            .map(|c| {
                let chain_id = format!("sha256:{}", c.to_string().repeat(64));
                fs::create_dir_all(Store::layer_dir(root, &chain_id)).unwrap();
                LayerRecord {
                    chain_id,
                    diff_id: String::new(),
                    size: 0,
                }
            })
            .collect();
        let record = ImageRecord {
            id: format!("sha256:{}", id_char.to_string().repeat(64)),
            manifest: None,
            created: None,
            imported: 0,
            platform: "linux/amd64".into(),
            layers,
            config: ImageConfig::default(),
        };
        let bytes = serde_json::to_vec(&record).unwrap();
        fs::write(Store::record_path(root, &record.id), bytes).unwrap();
        record
    }

    #[test]
    fn tags_remember_their_previous_image_and_prune_keeps_it_while_used() {
        let root = std::env::temp_dir().join(format!("supd-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let (mut store, _) = Store::load(&root, true);
        let (v1, v2, v3) = (
            record(&root, '1', &['a']),
            record(&root, '2', &['a', 'b']),
            record(&root, '3', &['c']),
        );
        assert_eq!(store.set_tag("app:1", v1.clone()).unwrap(), None);
        assert_eq!(
            store.set_tag("app:1", v2.clone()).unwrap(),
            Some(v1.id.clone())
        );
        assert_eq!(
            store.set_tag("app:1", v2.clone()).unwrap(),
            None,
            "same image: no move"
        );
        assert_eq!(store.tags["app:1"].previous, Some(v1.id.clone()));
        store.set_tag("other:1", v3.clone()).unwrap();
        // Persisted: a new load sees the same tags.
        let (reloaded, warnings) = Store::load(&root, false);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(reloaded.tags, store.tags);

        let mut in_use = InUse::default();
        in_use.tags.insert("app:1".into());
        in_use
            .digests
            .entry(v2.id.clone())
            .or_default()
            .insert("web".into());
        let removed = store.prune(&in_use);
        assert!(removed.images.is_empty(), "v1 is app:1's rollback target");
        let error = store
            .remove(&Reference::Tag("app:1".into()), &in_use, false)
            .unwrap_err();
        assert!(error.contains("in use by web"), "{error}");

        // Nobody uses app:1 any more: prune takes v1, then layer a stays (v2 has it).
        let removed = store.prune(&InUse::default());
        assert_eq!(removed.images, vec![v1.id.clone()]);
        assert!(Store::layer_dir(&root, &v2.layers[0].chain_id).is_dir());
        let removed = store
            .remove(&Reference::Tag("app:1".into()), &InUse::default(), false)
            .unwrap();
        assert_eq!(removed.images, vec![v2.id.clone()]);
        assert_eq!(removed.layers, 2);
        assert!(store
            .lookup(&Reference::Digest("sha256:333333333333".into()))
            .is_some());
        assert!(Store::layer_dir(&root, &v3.layers[0].chain_id).is_dir());
        fs::remove_dir_all(&root).unwrap();
    }
}
