//! Filling an `image:` unit in from the store: the image's layers become
//! the unit's `layers`, its config the defaults the file left out. Pure
//! given the store, so the planner sees the resolved unit and a new digest
//! under the tag reads as a changed unit.

use super::{Reference, Store};
use crate::unit::health::{HealthCheck, OnUnhealthy, Probe};
use crate::unit::schema::{SignalName, UserSpec};
use crate::unit::Unit;
use std::path::PathBuf;
use std::time::Duration;

/// Resolves `unit.image` against `store`, or against the image `pinned`
/// to (a rollback). The error is the message for the unit's `image` field.
pub fn resolve(unit: &mut Unit, store: &Store, pinned: Option<&str>) -> Result<(), String> {
    let Some(image) = unit.image.as_mut() else {
        return Ok(());
    };
    let reference = Reference::parse(&image.reference)?;
    let record = match pinned {
        Some(id) => store.image(id),
        None => store.lookup(&reference),
    };
    let Some(record) = record else {
        return Err(match reference {
            Reference::Tag(tag) => format!(
                "image {tag} is not imported: import it with `supctl image import PATH {tag}`; the unit starts once it is there"
            ),
            Reference::Digest(digest) => format!(
                "no imported image (or more than one) has the digest {digest}: import it with `supctl image import PATH NAME:TAG`"
            ),
        });
    };
    let config = &record.config;
    if image.inherit.exec {
        let cmd = image.args.as_ref().unwrap_or(&config.cmd);
        let argv: Vec<String> = config.entrypoint.iter().chain(cmd).cloned().collect();
        if argv.first().is_none_or(String::is_empty) {
            return Err(format!(
                "the image {} has neither Entrypoint nor Cmd: set exec",
                image.reference
            ));
        }
        unit.exec = argv;
    }
    for pair in &config.env {
        if let Some((key, value)) = pair.split_once('=') {
            unit.env
                .entry(key.to_string())
                .or_insert_with(|| value.to_string());
        }
    }
    if image.inherit.workdir {
        if let Some(dir) = config.working_dir.as_deref().filter(|d| d.starts_with('/')) {
            unit.workdir = PathBuf::from(dir);
        }
    }
    if image.inherit.user {
        if let Some(user) = &config.user {
            unit.user = Some(
                UserSpec::parse(user)
                    .map_err(|e| format!("the image's User {user:?}: {e}; set user"))?,
            );
        }
    }
    if image.inherit.stop_signal {
        if let Some(signal) = &config.stop_signal {
            unit.stop.signal = SignalName::parse(signal)
                .map_err(|e| format!("the image's StopSignal: {e}; set stop.signal"))?
                .0;
        }
    }
    if unit.health.is_none() {
        unit.health = config.healthcheck.as_ref().and_then(image_health);
    }
    unit.rootfs = None;
    unit.layers = store.layer_dirs(record);
    image.digest = Some(record.id.clone());
    Ok(())
}

/// A Docker HEALTHCHECK as a `health:` exec check, with Docker's defaults
/// (30s interval and timeout, 3 retries); NONE, or an empty test, is none.
fn image_health(check: &super::store::ImageHealthcheck) -> Option<HealthCheck> {
    let argv = match check.test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
        Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
            vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
        }
        _ => return None,
    };
    let nanos = |n: Option<u64>, default: Duration| n.map_or(default, Duration::from_nanos);
    let interval = nanos(check.interval, Duration::from_secs(30));
    Some(HealthCheck {
        probe: Probe::Exec(argv),
        interval,
        timeout: nanos(check.timeout, Duration::from_secs(30)).min(interval),
        retries: check.retries.unwrap_or(3),
        start_period: nanos(check.start_period, Duration::ZERO),
        on_unhealthy: OnUnhealthy::Restart,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::store::{ImageConfig, ImageRecord, LayerRecord};
    use std::fs;

    fn store_with(config: ImageConfig) -> (Store, PathBuf) {
        let root = std::env::temp_dir().join(format!("supd-resolve-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let chain = format!("sha256:{}", "c".repeat(64));
        fs::create_dir_all(Store::layer_dir(&root, &chain)).unwrap();
        let id = format!("sha256:{}", "a".repeat(64));
        let record = ImageRecord {
            id: id.clone(),
            manifest: None,
            created: None,
            imported: 0,
            platform: "linux/amd64".into(),
            layers: vec![LayerRecord {
                chain_id: chain,
                diff_id: String::new(),
                size: 0,
            }],
            config,
        };
        fs::create_dir_all(root.join("images")).unwrap();
        fs::write(
            Store::record_path(&root, &id),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        fs::write(
            root.join("tags.json"),
            format!(r#"{{"app:1": {{"digest": "{id}", "previous": null}}}}"#),
        )
        .unwrap();
        let (store, warnings) = Store::load(&root, true);
        assert!(warnings.is_empty(), "{warnings:?}");
        (store, root)
    }

    fn unit(text: &str) -> Unit {
        crate::unit::parse_unit("u", std::path::Path::new("u.yaml"), text).unwrap()
    }

    #[test]
    fn the_image_config_fills_what_the_unit_leaves_out() {
        let (store, root) = store_with(ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["--default".into()],
            env: vec!["A=image".into(), "B=image".into()],
            working_dir: Some("/srv".into()),
            user: Some("101:102".into()),
            stop_signal: Some("SIGQUIT".into()),
            labels: Default::default(),
            healthcheck: Some(crate::images::store::ImageHealthcheck {
                test: vec!["CMD-SHELL".into(), "wget -q -O- localhost/health".into()],
                interval: Some(5_000_000_000),
                timeout: None,
                start_period: None,
                retries: Some(2),
            }),
        });
        let mut plain = unit("image: app:1\nenv: { B: unit }\n");
        resolve(&mut plain, &store, None).unwrap();
        assert_eq!(plain.exec, ["/entry", "--default"]);
        assert_eq!(plain.env["A"], "image");
        assert_eq!(plain.env["B"], "unit");
        assert_eq!(plain.workdir, PathBuf::from("/srv"));
        assert_eq!(
            plain.user.clone().map(String::from).as_deref(),
            Some("101:102")
        );
        assert_eq!(plain.stop.signal, libc::SIGQUIT);
        assert_eq!(
            plain.layers,
            store.layer_dirs(store.image(&format!("sha256:{}", "a".repeat(64))).unwrap())
        );
        assert_eq!(
            plain.image.unwrap().digest.unwrap(),
            format!("sha256:{}", "a".repeat(64))
        );

        let mut args = unit("image: app:1\nargs: [--other]\nworkdir: /w\nuser: '7'\n");
        resolve(&mut args, &store, None).unwrap();
        assert_eq!(args.exec, ["/entry", "--other"]);
        assert_eq!(args.workdir, PathBuf::from("/w"));
        assert_eq!(args.user.clone().map(String::from).as_deref(), Some("7"));

        let check = plain.health.clone().expect("the image's HEALTHCHECK");
        assert_eq!(
            check.probe,
            Probe::Exec(vec![
                "/bin/sh".into(),
                "-c".into(),
                "wget -q -O- localhost/health".into()
            ])
        );
        assert_eq!(check.interval, Duration::from_secs(5));
        assert_eq!(
            check.timeout,
            Duration::from_secs(5),
            "at most the interval"
        );
        assert_eq!(check.retries, 2);

        let mut exec = unit("image: app:1\nexec: [/mine]\nhealth: { tcp: { port: 1 } }\n");
        resolve(&mut exec, &store, None).unwrap();
        assert_eq!(exec.exec, ["/mine"]);
        assert_eq!(
            exec.health.unwrap().probe,
            Probe::Tcp { port: 1 },
            "the unit's own check wins"
        );

        let mut missing = unit("image: other\n");
        let error = resolve(&mut missing, &store, None).unwrap_err();
        assert!(
            error.contains("supctl image import PATH other:latest"),
            "{error}"
        );
        fs::remove_dir_all(root).unwrap();
    }
}
