//! `supctl image ...`: one function per subcommand, each one request.

use crate::{act, request};
use anyhow::{bail, Context};
use std::io::{IsTerminal, Write};
use std::path::Path;
use supd::cli::supctl::ImageCmd;
use supd::control::client::call_with_progress;
use supd::control::protocol::{Body, Command, ImageSummary};

pub fn run(socket: &Path, command: ImageCmd) -> anyhow::Result<u8> {
    match command {
        ImageCmd::Import {
            path,
            name,
            reference,
            quiet,
            json,
        } => import(socket, &path, name, reference, quiet || json, json),
        ImageCmd::List { json } => list(socket, json),
        ImageCmd::Inspect { name } => match request(socket, Command::ImageInspect { name })? {
            Body::ImageInspect { image } => {
                println!("{}", serde_json::to_string_pretty(&image)?);
                Ok(0)
            }
            other => bail!("unexpected answer: {other:?}"),
        },
        ImageCmd::Rm { json, names } => {
            let mut code = 0;
            for name in names {
                if let Err(e) = act(socket, Command::ImageRm { name }, json) {
                    eprintln!("supctl: {e:#}");
                    code = 1;
                }
            }
            Ok(code)
        }
        ImageCmd::Prune { json } => act(socket, Command::ImagePrune, json),
    }
}

/// supd reads the image itself (it may be a directory, and 1 GB is not
/// worth copying through the socket): the path must be absolute there.
fn import(
    socket: &Path,
    path: &Path,
    name: Option<String>,
    reference: Option<String>,
    quiet: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let path = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    let show = !quiet && std::io::stderr().is_terminal();
    let mut shown = false;
    let response = call_with_progress(
        socket,
        Command::ImageImport {
            path,
            name,
            reference,
        },
        |body| {
            if let (
                true,
                Body::ImportProgress {
                    done,
                    total,
                    layer,
                    layers,
                },
            ) = (show, body)
            {
                let percent = if *total > 0 {
                    done.saturating_mul(100) / total
                } else {
                    0
                };
                eprint!(
                    "\r\x1b[Kimporting: layer {layer}/{layers}, {:.1} of {:.1} MB ({percent}%)",
                    *done as f64 / 1e6,
                    *total as f64 / 1e6
                );
                let _ = std::io::stderr().flush();
                shown = true;
            }
        },
    )?;
    if shown {
        eprint!("\r\x1b[K");
    }
    match response.body {
        Body::Done { message, failed } if json => {
            let value = serde_json::json!({ "message": message, "failed": failed });
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(0)
        }
        Body::Done { message, .. } => {
            println!("{message}");
            Ok(0)
        }
        Body::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer: {other:?}"),
    }
}

fn list(socket: &Path, json: bool) -> anyhow::Result<u8> {
    let Body::Images { images } = request(socket, Command::ImageList)? else {
        bail!("unexpected answer from supd");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&images)?);
        return Ok(0);
    }
    print!("{}", render(&images));
    Ok(0)
}

fn render(images: &[ImageSummary]) -> String {
    let mut out = format!(
        "{:<32} {:<19} {:>9} {:<20}  {}\n",
        "IMAGE", "DIGEST", "SIZE", "CREATED", "USED BY"
    );
    for image in images {
        let names = if image.tags.is_empty() {
            match image.previous_of.first() {
                Some(tag) => format!("<previous of {tag}>"),
                None => "<none>".to_string(),
            }
        } else {
            image.tags.join(", ")
        };
        let created = image
            .created
            .as_deref()
            .map(|c| c.get(..19).unwrap_or(c).replace('T', " "))
            .unwrap_or_else(|| "-".into());
        let used = if image.used_by.is_empty() {
            "-".to_string()
        } else {
            image.used_by.join(", ")
        };
        out.push_str(&format!(
            "{:<32} {:<19} {:>9} {:<20}  {used}\n",
            names,
            supd::images::short_digest(&image.digest),
            format!("{:.1} MB", image.size as f64 / 1e6),
            created
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_untagged_images_by_what_keeps_them() {
        let image = |tags: &[&str], previous: &[&str]| ImageSummary {
            tags: tags.iter().map(|s| s.to_string()).collect(),
            digest: format!("sha256:{}", "ab".repeat(32)),
            size: 2_500_000,
            created: Some("2026-12-01T10:00:00Z".into()),
            used_by: vec!["web".into()],
            previous_of: previous.iter().map(|s| s.to_string()).collect(),
        };
        let text = render(&[
            image(&["app:1"], &[]),
            image(&[], &["app:1"]),
            image(&[], &[]),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("app:1 "), "{text}");
        assert!(lines[1].contains("sha256:abababababab"));
        assert!(lines[1].contains("2.5 MB"));
        assert!(lines[1].contains("2026-12-01 10:00:00"));
        assert!(lines[2].starts_with("<previous of app:1>"));
        assert!(lines[3].starts_with("<none>"));
    }
}
