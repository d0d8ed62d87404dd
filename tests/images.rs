//! Images made by the tools operators use (buildah, umoci, skopeo; see
//! scripts/image-fixtures.sh), imported into supd and run: every archive
//! format and compression, whiteouts, damaged input, tags in use, update
//! and rollback, shared layers. Needs root.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The fixtures, built once per target dir by scripts/image-fixtures.sh
/// (the cgroup v2 tier builds them on the host and ships them along).
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-fixtures-3");
        if dir.join("multi/index.json").is_file() {
            return dir;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/image-fixtures.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("run scripts/image-fixtures.sh");
        assert!(
            out.status.success(),
            "building the image fixtures (apt-get install buildah umoci skopeo): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn fixture(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "supctl failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "supctl should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn images(daemon: &Daemon) -> Vec<Value> {
    let out = ok(&daemon.supctl(&["image", "list", "--json"]));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn digest_of(daemon: &Daemon, tag: &str) -> String {
    let out = ok(&daemon.supctl(&["image", "inspect", tag]));
    let image: Value = serde_json::from_str(&out).unwrap();
    image["id"].as_str().unwrap().to_string()
}

fn image_unit(daemon: &Daemon, extra: &str) -> String {
    format!(
        "{extra}\nenv: {{ SUPD_TEST_DIR: {}/ }}\nrestart: {{ delay: 100ms, start_limit: {{ burst: 2, interval: 1m }} }}\n",
        daemon.dir.display()
    )
}

fn store_entries(daemon: &Daemon, sub: &str) -> Vec<String> {
    fs::read_dir(daemon.dir.join("state/images").join(sub))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Writes a unit whole (temp file and rename), as the README recommends.
fn put_unit(daemon: &Daemon, name: &str, text: &str) {
    let temp = daemon.units.join(format!(".{name}.tmp"));
    fs::write(&temp, text).unwrap();
    fs::rename(&temp, daemon.units.join(format!("{name}.yaml"))).unwrap();
}

#[test]
fn every_archive_format_imports_one_image_that_runs_with_its_config() {
    let daemon = Daemon::start();
    let first = ok(&daemon.supctl(&["image", "import", "--ref", "bb:1", &fixture("oci"), "bb:1"]));
    assert!(first.contains("imported bb:1 as sha256:"), "{first}");
    assert!(first.contains("1 layers unpacked"), "{first}");
    // skopeo's oci-archive names itself bb:1: the same content, nothing to do.
    let again = ok(&daemon.supctl(&["image", "import", &fixture("bb.oci.tar")]));
    assert!(
        again.contains("bb:1 is sha256:") && again.contains("nothing to do"),
        "{again}"
    );
    // docker-archive (docker save's form) names itself localhost/bb:1.
    let docker = ok(&daemon.supctl(&["image", "import", &fixture("bb.docker.tar")]));
    assert!(docker.contains("imported localhost/bb:1"), "{docker}");
    assert!(
        docker.contains("0 layers unpacked, 1 already here"),
        "{docker}"
    );
    let list = images(&daemon);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        list[0]["tags"],
        serde_json::json!(["bb:1", "localhost/bb:1"])
    );
    let id = digest_of(&daemon, "bb:1");

    put_unit(&daemon, "plain", &image_unit(&daemon, "image: bb:1"));
    daemon.wait_log("plain", "hello from bb:1 in /olddir");
    put_unit(
        &daemon,
        "args",
        &format!(
            "image: localhost/bb:1\nargs: [/bin/sh, -c, 'echo args $GREETING; exec sleep 100000']\nenv: {{ GREETING: unit, SUPD_TEST_DIR: {}/ }}\n",
            daemon.dir.display()
        ),
    );
    daemon.wait_log("args", "args unit");
    put_unit(
        &daemon,
        "exec",
        &image_unit(
            &daemon,
            "image: bb:1\nexec: [/bin/sh, -c, 'echo exec in $(pwd) $GREETING; exec sleep 100000']\nworkdir: /tmp",
        ),
    );
    daemon.wait_log("exec", "exec in /tmp hello");
    let status = daemon.wait_state("plain", "running");
    assert_eq!(status["image"], format!("bb:1 {id}"));
    let show = ok(&daemon.supctl(&["show", "plain"]));
    assert!(show.contains(&format!("# image: bb:1 {id}")), "{show}");
    let text = ok(&daemon.supctl(&["image", "list"]));
    assert!(text.contains("args, exec, plain"), "{text}");

    // Three containers, one copy of the layers: each overlay's lowerdir is
    // the store's layer directory.
    let inspect: Value =
        serde_json::from_str(&ok(&daemon.supctl(&["image", "inspect", "bb:1"]))).unwrap();
    let layer = inspect["layer_dirs"][0].as_str().unwrap().to_string();
    for unit in ["plain", "args", "exec"] {
        let pid = daemon.pid(unit);
        let mounts = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        let root = mounts
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .unwrap();
        assert!(
            root.contains(&format!("lowerdir={layer}")),
            "{unit}: {root}"
        );
    }
    let layers = du(&daemon.dir.join("state/images/layers"));
    let uppers: Vec<u64> = ["plain", "args", "exec"]
        .iter()
        .map(|u| du(&daemon.dir.join("state").join(u)))
        .collect();
    eprintln!(
        "three units on one image: its layers hold {} kB on disk once; their writable layers {uppers:?} kB",
        layers / 1024
    );
    assert!(
        uppers.iter().all(|&u| u < layers / 10),
        "{uppers:?} vs {layers}"
    );
    daemon.stop();
}

/// Bytes on disk under `path` (du), each inode once.
fn du(path: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![path.to_path_buf()];
    let mut total = 0;
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if seen.insert(meta.ino()) {
            total += meta.blocks() * 512;
        }
        if meta.is_dir() {
            stack.extend(
                fs::read_dir(&path)
                    .unwrap()
                    .filter_map(Result::ok)
                    .map(|e| e.path()),
            );
        }
    }
    total
}

#[test]
fn zstd_uncompressed_multi_platform_and_dir_images_import_and_run() {
    let daemon = Daemon::start();
    for (dir, expect) in [
        ("zstd", "hello from bb:1"),
        ("plain", "hello from bb:1"),
        ("multi", "hello from bb:1"),
        ("dir", "hello from bb:1"),
    ] {
        let out = ok(&daemon.supctl(&["image", "import", &fixture(dir), "t:1"]));
        assert!(out.contains("1 layers unpacked"), "{dir}: {out}");
        let inspect: Value =
            serde_json::from_str(&ok(&daemon.supctl(&["image", "inspect", "t:1"]))).unwrap();
        assert_eq!(inspect["platform"], "linux/amd64", "{dir}: {inspect}");
        put_unit(&daemon, "t", &image_unit(&daemon, "image: t:1"));
        daemon.wait_log("t", expect);
        fs::remove_file(daemon.units.join("t.yaml")).unwrap();
        daemon.wait_for("t to go", WAIT, || daemon.status("t").is_null());
        let _ = fs::remove_file(daemon.dir.join("log/t.log"));
        let removed = ok(&daemon.supctl(&["image", "rm", "t:1"]));
        assert!(removed.contains("1 layer(s) deleted"), "{dir}: {removed}");
        assert!(store_entries(&daemon, "layers").is_empty());
    }
    daemon.stop();
}

#[test]
fn an_upper_layer_deletes_a_file_and_replaces_a_directory() {
    let daemon = Daemon::start();
    ok(&daemon.supctl(&["image", "import", "--ref", "bb:2", &fixture("oci"), "bb:2"]));
    put_unit(&daemon, "two", &image_unit(&daemon, "image: bb:2"));
    let log = daemon.wait_log("two", "bb:2 sees:");
    assert!(log.contains("new-file"), "{log}");
    assert!(
        !log.contains("old-file"),
        "the replaced directory's content is gone: {log}"
    );
    assert!(!log.contains("removeme"), "the deleted file is gone: {log}");
    assert!(log.contains("passwd"), "{log}");
    // On disk, umoci's .wh. entries became overlayfs whiteouts.
    let inspect: Value =
        serde_json::from_str(&ok(&daemon.supctl(&["image", "inspect", "bb:2"]))).unwrap();
    let upper = PathBuf::from(inspect["layer_dirs"][1].as_str().unwrap());
    let whiteout = fs::symlink_metadata(upper.join("etc/removeme")).unwrap();
    assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
    assert!(!upper.join("etc/.wh.removeme").exists());
    daemon.stop();
}

#[test]
fn damaged_or_cut_short_images_are_refused_and_leave_nothing() {
    let daemon = Daemon::start();
    let work = daemon.dir.join("work");
    fs::create_dir_all(&work).unwrap();
    // One byte changed in the largest blob (the layer).
    let tampered = work.join("tampered");
    let status = Command::new("cp")
        .arg("-a")
        .arg(fixture("oci"))
        .arg(&tampered)
        .status();
    assert!(status.unwrap().success());
    let blob = fs::read_dir(tampered.join("blobs/sha256"))
        .unwrap()
        .filter_map(Result::ok)
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut bytes = fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&blob, bytes).unwrap();
    let error = refused(&daemon.supctl(&[
        "image",
        "import",
        "--ref",
        "bb:1",
        tampered.to_str().unwrap(),
        "x:1",
    ]));
    assert!(
        error.contains("sha256") || error.contains("gzip") || error.contains("corrupt"),
        "{error}"
    );
    // Cut short: the first 60% of the oci-archive.
    let archive = fs::read(fixture("bb.oci.tar")).unwrap();
    let cut = work.join("cut.tar");
    fs::write(&cut, &archive[..archive.len() * 6 / 10]).unwrap();
    let error = refused(&daemon.supctl(&["image", "import", cut.to_str().unwrap(), "x:1"]));
    assert!(
        error.contains("truncated") || error.contains("incomplete"),
        "{error}"
    );
    assert!(images(&daemon).is_empty(), "no tag, no image");
    assert!(
        store_entries(&daemon, "layers").is_empty(),
        "no layer, not even a partial one"
    );
    let not_image = refused(&daemon.supctl(&["image", "import", work.to_str().unwrap(), "x:1"]));
    assert!(not_image.contains("not an image"), "{not_image}");

    // What a killed import leaves goes when supd starts again.
    let mut daemon = daemon;
    daemon.crash_and_restart_after(|d| {
        fs::create_dir_all(d.dir.join("state/images/layers/.partial-abc-1-0/etc")).unwrap();
    });
    assert!(store_entries(&daemon, "layers").is_empty());
    assert!(daemon.daemon_log().contains("interrupted image import"));
    daemon.stop();
}

#[test]
fn a_unit_waits_for_its_image_and_the_image_stays_while_used() {
    let daemon = Daemon::start();
    put_unit(&daemon, "app", &image_unit(&daemon, "image: app:1"));
    let status = daemon.wait_state("app", "invalid");
    let error = status["error"].as_str().unwrap();
    assert!(
        error.contains("app.yaml:1:1: image: image app:1 is not imported"),
        "{error}"
    );
    assert!(error.contains("supctl image import PATH app:1"), "{error}");
    ok(&daemon.supctl(&["image", "import", "--ref", "bb:1", &fixture("oci"), "app:1"]));
    daemon.wait_log("app", "hello from bb:1");
    let error = refused(&daemon.supctl(&["image", "rm", "app:1"]));
    assert!(error.contains("in use by app"), "{error}");
    let id = digest_of(&daemon, "app:1");
    let error = refused(&daemon.supctl(&["image", "rm", &id]));
    assert!(error.contains("tagged app:1"), "{error}");
    fs::remove_file(daemon.units.join("app.yaml")).unwrap();
    daemon.wait_for("app to go", WAIT, || daemon.status("app").is_null());
    let removed = ok(&daemon.supctl(&["image", "rm", "app:1"]));
    assert!(
        removed.contains("1 image(s) and 1 layer(s) deleted"),
        "{removed}"
    );
    assert!(images(&daemon).is_empty());
    assert!(store_entries(&daemon, "layers").is_empty());
    daemon.stop();
}

#[test]
fn a_new_digest_restarts_the_unit_and_one_that_never_runs_rolls_back() {
    let mut daemon = Daemon::start();
    ok(&daemon.supctl(&["image", "import", "--ref", "bb:1", &fixture("oci"), "app:1"]));
    let v1 = digest_of(&daemon, "app:1");
    put_unit(&daemon, "app", &image_unit(&daemon, "image: app:1"));
    daemon.wait_log("app", "hello from bb:1");
    let first = daemon.pid("app");

    // A new image under the tag: the unit restarts on it.
    ok(&daemon.supctl(&["image", "import", "--ref", "bb:2", &fixture("oci"), "app:1"]));
    let v2 = digest_of(&daemon, "app:1");
    assert_ne!(v1, v2);
    daemon.wait_log("app", "bb:2 sees:");
    let status = daemon.wait_state("app", "running");
    assert_ne!(status["pid"].as_i64(), Some(i64::from(first)));
    assert_eq!(status["image"], format!("app:1 {v2}"));

    // One whose command does not exist never gets running: back to v2.
    ok(&daemon.supctl(&["image", "import", "--ref", "bad", &fixture("oci"), "app:1"]));
    let bad = digest_of(&daemon, "app:1");
    let mut last = Value::Null;
    daemon.wait_for("the rollback", WAIT, || {
        last = daemon.status("app");
        last["state"] == "running" && last["image"] == format!("app:1 {v2}")
    });
    let note = last["rollback"].as_str().unwrap_or_default().to_string();
    assert!(
        note.starts_with(&format!("rolled back from {bad}")),
        "{last}"
    );
    assert!(
        note.contains("start limit") && note.contains("exec"),
        "{note}"
    );
    let table = ok(&daemon.supctl(&["status", "app"]));
    assert!(table.contains("rolled back from"), "{table}");

    // Prune keeps the tag's image and its previous one (the rollback
    // target); v1 is neither.
    let pruned = ok(&daemon.supctl(&["image", "prune"]));
    assert!(pruned.contains("1 image(s)"), "{pruned}");
    let left: Vec<String> = images(&daemon)
        .iter()
        .map(|i| i["digest"].as_str().unwrap().to_string())
        .collect();
    assert!(
        left.contains(&v2) && left.contains(&bad) && !left.contains(&v1),
        "{left:?}"
    );

    // A restarted supd keeps the unit where the rollback left it.
    let pid = daemon.pid("app");
    daemon.crash_and_restart();
    let status = daemon.wait_state("app", "running");
    assert_eq!(status["pid"].as_i64(), Some(i64::from(pid)));
    assert_eq!(status["image"], format!("app:1 {v2}"));
    assert!(status["rollback"].as_str().is_some(), "{status}");
    daemon.stop();
}

/// An OCI layout with one hand-made layer, digests and all, for what no
/// image builder writes: layers that try to leave their directory.
#[test]
fn an_image_healthcheck_checks_a_unit_that_has_none() {
    let d = Daemon::start();
    ok(&d.supctl(&["image", "import", &fixture("hc.docker.tar")]));
    put_unit(
        &d,
        "hc",
        &image_unit(&d, "image: localhost/hc:1\nnetwork: { mode: none }"),
    );
    let mut last = Value::Null;
    let healthy = poll(WAIT, || {
        last = d.status("hc");
        last["health"]["state"] == "healthy"
    });
    assert!(healthy, "{last}\n{}", d.daemon_log());
    assert_eq!(last["health"]["last_result"], "exit 0", "{last}");
    d.stop();
}

fn layout_with_layer(dir: &Path, layer: &[u8]) {
    use sha2::Digest;
    let hex = |bytes: &[u8]| format!("{:x}", sha2::Sha256::digest(bytes));
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = hex(bytes);
        fs::write(blobs.join(&digest), bytes).unwrap();
        (format!("sha256:{digest}"), bytes.len())
    };
    let (layer_digest, layer_size) = put(layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Cmd": ["/bin/true"] },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] }
    });
    let (config_digest, config_size) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size }]
    });
    let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_size }]
    });
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn tar_entry(
    builder: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    path: &str,
    link: Option<&str>,
    data: &[u8],
) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    // Raw bytes: the tar crate itself refuses to write `..`.
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    if let Some(link) = link {
        header.set_link_name(link).unwrap();
    }
    header.set_mode(0o755);
    header.set_size(data.len() as u64);
    header.set_cksum();
    builder.append(&header, data).unwrap();
}

/// One tar entry: its type, path and link target.
type Entry<'a> = (tar::EntryType, &'a str, Option<String>);

#[test]
fn layers_that_would_write_outside_their_directory_are_refused() {
    let daemon = Daemon::start();
    let outside = daemon.dir.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let cases: [(&str, Vec<Entry>, &str); 2] = [
        (
            "through-link",
            vec![
                (
                    tar::EntryType::Symlink,
                    "escape",
                    Some(outside.display().to_string()),
                ),
                (tar::EntryType::Regular, "escape/owned", None),
            ],
            "escape/owned: refused: it would be written through the symbolic link escape",
        ),
        (
            "dotdot",
            vec![(tar::EntryType::Regular, "../../../owned", None)],
            "refused: the path contains \"..\" and would leave the layer",
        ),
    ];
    for (name, entries, expected) in cases {
        let mut builder = tar::Builder::new(Vec::new());
        for (kind, path, link) in &entries {
            tar_entry(&mut builder, *kind, path, link.as_deref(), b"owned\n");
        }
        let layer = builder.into_inner().unwrap();
        let dir = daemon.dir.join(name);
        layout_with_layer(&dir, &layer);
        let error = refused(&daemon.supctl(&["image", "import", dir.to_str().unwrap(), "evil:1"]));
        assert!(error.contains(expected), "{name}: {error}");
        for place in [outside.join("owned"), daemon.dir.join("state/owned")] {
            assert!(!place.exists(), "{name} wrote {}", place.display());
        }
        assert!(images(&daemon).is_empty(), "{name}: no tag");
        assert!(
            store_entries(&daemon, "layers").is_empty(),
            "{name}: no layer"
        );
    }
    daemon.stop();
}
