//! The image store's side of the loop: imports run one at a time on a
//! worker thread (unpacking a layer takes seconds; the loop must not
//! wait), report progress to their client on a timer, and end here, where
//! the tag is set and the units re-resolved. Also `image list`,
//! `inspect`, `rm`, `prune`, and the rollback of a unit whose new image
//! never gets running.

use super::{deadline_after, Supervisor};
use crate::control::protocol::{Body, ImageSummary, Response};
use crate::images::import::{self, Imported, Progress};
use crate::images::store::InUse;
use crate::images::{short_digest, ImageError, Reference};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// How often a running import tells its client how far it is.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

struct Job {
    /// The client that asked, answered when the import ends.
    token: u64,
    request: import::Request,
    progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
}

/// Imports asked for, the one running first.
pub(super) struct Imports {
    queue: VecDeque<Job>,
    running: bool,
    results: mpsc::Receiver<Result<Imported, ImageError>>,
    sender: mpsc::Sender<Result<Imported, ImageError>>,
    /// The worker writes a byte here when it is done; the read end is in
    /// the event loop.
    wake_read: UnixStream,
    wake_write: UnixStream,
    pub(super) progress_at: Option<Duration>,
}

impl Imports {
    pub(super) fn new() -> std::io::Result<Self> {
        let (wake_read, wake_write) = UnixStream::pair()?;
        wake_read.set_nonblocking(true)?;
        let (sender, results) = mpsc::channel();
        Ok(Imports {
            queue: VecDeque::new(),
            running: false,
            results,
            sender,
            wake_read,
            wake_write,
            progress_at: None,
        })
    }

    pub(super) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.wake_read.as_fd()
    }

    pub(super) fn waits(&self, token: u64) -> bool {
        self.queue.iter().any(|job| job.token == token)
    }

    pub(super) fn busy(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The client went away: its import stops at the next tar entry (or
    /// never starts).
    pub(super) fn cancel_for(&mut self, token: u64) {
        let running = usize::from(self.running);
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for (index, job) in self.queue.drain(..).enumerate() {
            if job.token != token {
                kept.push_back(job);
            } else if index < running {
                // Its result still comes, and pops it.
                job.cancel.store(true, Ordering::Relaxed);
                kept.push_back(job);
            }
        }
        self.queue = kept;
    }
}

/// A unit that runs an earlier image than its tag names, because the
/// tag's new image never got running. Kept in STATE_DIR, so that a
/// restarted supd does not try the bad image again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    pub tag: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

impl Supervisor {
    pub(super) fn import_request(
        &mut self,
        token: u64,
        request: import::Request,
    ) -> Option<Response> {
        if !request.path.is_absolute() {
            return Some(Response::error(format!(
                "{}: give the image's absolute path",
                request.path.display()
            )));
        }
        if let Some(Err(e)) = request.tag.as_deref().map(Reference::parse) {
            return Some(Response::error(e));
        }
        self.imports.queue.push_back(Job {
            token,
            request,
            progress: Arc::default(),
            cancel: Arc::default(),
        });
        self.start_next_import();
        None
    }

    fn start_next_import(&mut self) {
        if self.imports.running {
            return;
        }
        let Some(job) = self.imports.queue.front() else {
            self.imports.progress_at = None;
            return;
        };
        let root = self.images.root().to_path_buf();
        let request = job.request.clone();
        let (progress, cancel) = (job.progress.clone(), job.cancel.clone());
        let sender = self.imports.sender.clone();
        let wake = self.imports.wake_write.try_clone();
        log::info!("image import from {} started", request.path.display());
        let spawned = wake.map_err(|e| e.to_string()).and_then(|mut wake| {
            std::thread::Builder::new()
                .name("image-import".into())
                .spawn(move || {
                    let result = import::import(&root, &request, &progress, &cancel);
                    // The loop may be gone (supd exiting): nothing to tell.
                    let _ = sender.send(result);
                    let _ = std::io::Write::write_all(&mut wake, b"!");
                })
                .map_err(|e| e.to_string())
        });
        match spawned {
            Ok(_) => {
                self.imports.running = true;
                self.imports.progress_at = Some(deadline_after(PROGRESS_EVERY));
            }
            Err(e) => {
                if let Some(job) = self.imports.queue.pop_front() {
                    self.answer(
                        job.token,
                        Response::error(format!("cannot start the import: {e}")),
                    );
                }
                self.start_next_import();
            }
        }
    }

    /// The worker finished: set the tag, re-resolve every unit, answer.
    pub(super) fn on_import_done(&mut self) {
        let mut byte = [0u8; 16];
        while matches!((&self.imports.wake_read).read(&mut byte), Ok(n) if n > 0) {}
        while let Ok(result) = self.imports.results.try_recv() {
            self.imports.running = false;
            let Some(job) = self.imports.queue.pop_front() else {
                continue;
            };
            let response = match result {
                Ok(imported) => self.commit_import(imported),
                Err(e) => {
                    log::warn!("image import from {}: {e}", job.request.path.display());
                    Response::error(e.to_string())
                }
            };
            self.answer(job.token, response);
        }
        self.start_next_import();
    }

    fn commit_import(&mut self, imported: Imported) -> Response {
        let Imported {
            record,
            tag,
            unpacked,
            reused,
        } = imported;
        let id = record.id.clone();
        if self.images.tags.get(&tag).is_some_and(|t| t.digest == id) && unpacked == 0 {
            let message = format!("{tag} is {} already: nothing to do", short_digest(&id));
            log::info!("{message}");
            return done(message);
        }
        let moved = match self.images.set_tag(&tag, record) {
            Ok(moved) => moved,
            Err(e) => return Response::error(format!("cannot record the tag {tag}: {e}")),
        };
        let message = match &moved {
            Some(before) => {
                // A new image under the tag: units on it try it afresh.
                let pinned: Vec<String> = self
                    .rollbacks
                    .iter()
                    .filter(|(_, r)| r.tag == tag)
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in pinned {
                    self.rollbacks.remove(&name);
                }
                format!(
                    "imported {tag} as {} (was {}; {unpacked} layers unpacked, {reused} already here)",
                    short_digest(&id),
                    short_digest(before)
                )
            }
            None => format!(
                "imported {tag} as {} ({unpacked} layers unpacked, {reused} already here)",
                short_digest(&id)
            ),
        };
        log::info!("{message}");
        self.reload();
        done(message)
    }

    fn answer(&mut self, token: u64, response: Response) {
        if let Some(connection) = self.clients.get_mut(&token) {
            connection.send(&response);
        }
        self.serve_client(token);
        self.update_client(token);
    }

    /// Tells the client of the running import how far it got.
    pub(super) fn report_import_progress(&mut self) {
        self.imports.progress_at = None;
        let Some(job) = self.imports.queue.front().filter(|_| self.imports.running) else {
            return;
        };
        let token = job.token;
        let progress = Body::ImportProgress {
            done: job.progress.done.load(Ordering::Relaxed),
            total: job.progress.total.load(Ordering::Relaxed),
            layer: job.progress.layer.load(Ordering::Relaxed),
            layers: job.progress.layers.load(Ordering::Relaxed),
        };
        // Progress is worth nothing to a client that does not read it.
        if let Some(connection) = self.clients.get_mut(&token).filter(|c| !c.wants_write()) {
            connection.send(&Response::new(progress));
        }
        self.update_client(token);
        self.imports.progress_at = Some(deadline_after(PROGRESS_EVERY));
    }

    /// What units hold on to: the digests they run (or are set to run)
    /// and the tags they name.
    fn images_in_use(&self) -> InUse {
        let mut in_use = InUse::default();
        for entry in self.entries.values() {
            let Some(image) = entry.unit.as_ref().and_then(|u| u.image.as_ref()) else {
                continue;
            };
            if let Some(digest) = &image.digest {
                in_use
                    .digests
                    .entry(digest.clone())
                    .or_default()
                    .insert(entry.name.clone());
            }
            if let Ok(Reference::Tag(tag)) = Reference::parse(&image.reference) {
                in_use.tags.insert(tag);
            }
        }
        for (name, rollback) in self.rollbacks.iter() {
            in_use
                .digests
                .entry(rollback.from.clone())
                .or_default()
                .insert(name.clone());
        }
        in_use
    }

    pub(super) fn image_list(&self) -> Response {
        let in_use = self.images_in_use();
        let images = self
            .images
            .images
            .values()
            .map(|record| ImageSummary {
                tags: self.images.tags_of(&record.id),
                digest: record.id.clone(),
                size: record.size(),
                created: record.created.clone(),
                used_by: in_use.units_of(&record.id),
                previous_of: self
                    .images
                    .tags
                    .iter()
                    .filter(|(_, t)| t.previous.as_deref() == Some(record.id.as_str()))
                    .map(|(name, _)| name.clone())
                    .collect(),
            })
            .collect();
        Response::new(Body::Images { images })
    }

    pub(super) fn image_inspect(&self, name: &str) -> Response {
        let reference = match Reference::parse(name) {
            Ok(r) => r,
            Err(e) => return Response::error(e),
        };
        let Some(record) = self.images.lookup(&reference) else {
            return Response::error(format!("no image {reference}"));
        };
        let mut image = match serde_json::to_value(record) {
            Ok(value) => value,
            Err(e) => return Response::error(format!("cannot encode the record: {e}")),
        };
        if let Some(object) = image.as_object_mut() {
            object.insert("tags".into(), self.images.tags_of(&record.id).into());
            object.insert(
                "used_by".into(),
                self.images_in_use().units_of(&record.id).into(),
            );
            object.insert("size".into(), record.size().into());
            object.insert(
                "layer_dirs".into(),
                self.images
                    .layer_dirs(record)
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        Response::new(Body::ImageInspect { image })
    }

    pub(super) fn image_rm(&mut self, name: &str) -> Response {
        let reference = match Reference::parse(name) {
            Ok(r) => r,
            Err(e) => return Response::error(e),
        };
        let in_use = self.images_in_use();
        match self.images.remove(&reference, &in_use, self.imports.busy()) {
            Ok(removed) => done(format!(
                "removed {}{}",
                reference,
                freed(removed.images.len(), removed.layers, removed.bytes)
            )),
            Err(e) => Response::error(e),
        }
    }

    pub(super) fn image_prune(&mut self) -> Response {
        if self.imports.busy() {
            return Response::error("an import is running: prune once it is done");
        }
        let in_use = self.images_in_use();
        let removed = self.images.prune(&in_use);
        done(format!(
            "pruned{}",
            freed(removed.images.len(), removed.layers, removed.bytes)
        ))
    }

    /// After every event of an `image:` unit: a digest it got running on
    /// is proven; one it failed on before ever running (start limit, start
    /// timeout) is rolled back to the tag's previous image.
    pub(super) fn follow_image(&mut self, name: &str) {
        let Some(entry) = self.entries.get(name) else {
            return;
        };
        let Some(image) = entry.unit.as_ref().and_then(|u| u.image.as_ref()) else {
            return;
        };
        let Some(digest) = image.digest.clone() else {
            return;
        };
        if entry.machine.is_up() {
            self.proven.insert(name.to_string(), digest);
            return;
        }
        let failed =
            entry.state() == super::entry::State::Failed || entry.machine.last_start_timed_out();
        if !failed || self.proven.get(name) == Some(&digest) || self.rollbacks.get(name).is_some() {
            return;
        }
        let Ok(Reference::Tag(tag)) = Reference::parse(&image.reference) else {
            return;
        };
        let Some(previous) = self
            .images
            .tags
            .get(&tag)
            .filter(|t| t.digest == digest)
            .and_then(|t| t.previous.clone())
            .filter(|p| self.images.image(p).is_some())
        else {
            return;
        };
        let reason = entry
            .machine
            .error()
            .unwrap_or("it did not get running")
            .to_string();
        log::warn!(
            "{name}: {tag} {} never got running ({reason}); rolling back to {}",
            short_digest(&digest),
            short_digest(&previous)
        );
        self.rollbacks.insert(
            name,
            Rollback {
                tag,
                from: digest,
                to: previous,
                reason,
            },
        );
        // Not now: this runs inside a reconcile's or an event's handling.
        self.reload_scope.everything = true;
        self.reload_at = Some(deadline_after(Duration::ZERO));
    }

    /// The image a unit is pinned to by a rollback, while its tag still
    /// names the image it rolled back from.
    pub(super) fn pinned_image(&mut self, name: &str, reference: &str) -> Option<String> {
        let rollback = self.rollbacks.get(name)?.clone();
        let current = match Reference::parse(reference) {
            Ok(Reference::Tag(tag)) if tag == rollback.tag => {
                self.images.tags.get(&tag).map(|t| t.digest.clone())
            }
            _ => None,
        };
        if current.as_deref() != Some(rollback.from.as_str())
            || self.images.image(&rollback.to).is_none()
        {
            self.rollbacks.remove(name);
            return None;
        }
        Some(rollback.to)
    }

    pub(super) fn rollback_note(&self, name: &str) -> Option<String> {
        let rollback = self.rollbacks.get(name)?;
        Some(format!(
            "rolled back from {} to {}: {}",
            rollback.from,
            short_digest(&rollback.to),
            rollback.reason
        ))
    }
}

fn freed(images: usize, layers: usize, bytes: u64) -> String {
    format!(
        ": {images} image(s) and {layers} layer(s) deleted, {:.1} MB freed",
        bytes as f64 / 1e6
    )
}

fn done(message: String) -> Response {
    Response::new(Body::Done {
        message,
        failed: Vec::new(),
    })
}
