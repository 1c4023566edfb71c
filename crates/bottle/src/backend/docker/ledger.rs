//! The ledger of what a launch created, torn down in reverse order:
//! containers together, then the networks they were on together.
//!
//! Teardown runs on every path: explicitly at the end of a session, and
//! from `Drop` when a launch fails, panics or is abandoned (a signal drops
//! the launch future). `Drop` cannot await, so it tears down on a thread of
//! its own with a small runtime. Each removal is bounded in time, and a
//! resource that is already gone counts as removed.

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::RemoveContainerOptions;

use crate::ui::Ui;

const REMOVE_WITHIN: Duration = Duration::from_secs(15);
/// How long a removal Podman refuses for now is asked again: less than
/// `REMOVE_WITHIN`, so that its last refusal, not a timeout, is told.
const REFUSED_FOR: Duration = Duration::from_secs(10);

/// Something a launch created on the engine.
#[derive(Debug, Clone)]
pub(super) enum Created {
    Container(String),
    Network(String),
}

impl std::fmt::Display for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, id) = match self {
            Self::Container(id) => ("container", id),
            Self::Network(id) => ("network", id),
        };
        write!(f, "{kind} {}", id.get(..12).unwrap_or(id))
    }
}

/// A resource a teardown could not remove, and why.
#[derive(Debug)]
pub(super) struct Left {
    resource: Created,
    why: Why,
}

#[derive(Debug)]
enum Why {
    /// The engine stopped answering: nothing more can be removed now.
    EngineLost(String),
    Failed(String),
}

impl std::fmt::Display for Left {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.why {
            Why::EngineLost(detail) => {
                write!(
                    f,
                    "{} (the engine stopped answering: {detail})",
                    self.resource
                )
            }
            Why::Failed(why) => write!(f, "{} ({why})", self.resource),
        }
    }
}

#[derive(Debug)]
pub(super) struct Ledger {
    docker: Docker,
    created: Vec<Created>,
    /// Told what a teardown could not remove; without it the caller is.
    ui: Option<Arc<dyn Ui>>,
}

impl Ledger {
    pub(super) fn new(docker: &Docker) -> Self {
        Self {
            docker: docker.clone(),
            created: Vec::new(),
            ui: None,
        }
    }

    /// Teardowns warn `ui` of what they leave, from `Drop` too.
    pub(super) fn warning_to(mut self, ui: Arc<dyn Ui>) -> Self {
        self.ui = Some(ui);
        self
    }

    pub(super) fn record(&mut self, created: Created) {
        self.created.push(created);
    }

    /// Tears down, and warns of what is left.
    pub(super) async fn teardown_and_warn(&mut self) {
        let failures = self.teardown().await;
        warn_left(self.ui.as_deref(), &failures);
    }

    /// Removes everything recorded, newest first; returns what could not be
    /// removed (already-gone counts as removed). Once the engine stops
    /// answering, the rest is left without asking it.
    pub(super) async fn teardown(&mut self) -> Vec<Left> {
        let mut left = Vec::new();
        while !self.created.is_empty() {
            let failures = self.remove_newest_kind().await;
            let lost = failures.iter().find_map(|failure| match &failure.why {
                Why::EngineLost(detail) => Some(detail.clone()),
                Why::Failed(_) => None,
            });
            left.extend(failures);
            if let Some(detail) = lost {
                left.extend(self.created.drain(..).rev().map(|resource| Left {
                    resource,
                    why: Why::EngineLost(detail.clone()),
                }));
            }
        }
        left
    }

    /// Removes, all at once, the newest resources recorded that are of one
    /// kind: containers do not wait on each other, while a network waits
    /// for the containers recorded after it. They leave the record only
    /// once all are removed (or given up on), so a teardown cut short by a
    /// signal leaves them to the teardown on drop, where the ones already
    /// gone count as removed.
    async fn remove_newest_kind(&mut self) -> Vec<Left> {
        let Some(newest) = self.created.last() else {
            return Vec::new();
        };
        let kind = std::mem::discriminant(newest);
        let from = self
            .created
            .iter()
            .rposition(|r| std::mem::discriminant(r) != kind)
            .map_or(0, |i| i + 1);
        let outcomes = futures_util::future::join_all(
            self.created[from..]
                .iter()
                .rev()
                .map(|resource| remove(&self.docker, resource)),
        )
        .await;
        let wave: Vec<_> = self.created.drain(from..).rev().collect();
        wave.into_iter()
            .zip(outcomes)
            .filter_map(|(resource, outcome)| outcome.err().map(|why| Left { resource, why }))
            .collect()
    }

    /// Removes the newest resource recorded. It leaves the record only
    /// once removed (or given up on), so a teardown cut short by a signal
    /// leaves it to the teardown on drop.
    pub(super) async fn remove_newest(&mut self) -> Result<(), Left> {
        let Some(resource) = self.created.last() else {
            return Ok(());
        };
        let removed = remove(&self.docker, resource).await;
        let resource = self.created.pop().expect("the newest is still there");
        removed.map_err(|why| Left { resource, why })
    }
}

/// One warning per resource left, or one for all of them when the engine
/// stopped answering.
fn warn_left(ui: Option<&dyn Ui>, left: &[Left]) {
    let Some(ui) = ui else { return };
    let lost: Vec<_> = left
        .iter()
        .filter_map(|l| match &l.why {
            Why::EngineLost(detail) => Some((&l.resource, detail)),
            Why::Failed(_) => None,
        })
        .collect();
    if let Some((_, detail)) = lost.first() {
        let count = |container: bool| {
            lost.iter()
                .filter(|(r, _)| matches!(r, Created::Container(_)) == container)
                .count()
        };
        ui.warn(&format!(
            "the engine stopped answering ({detail}), so the teardown left {}; once it \
             answers again, `claude-bottle cleanup` removes them",
            counted(&[(count(true), "container"), (count(false), "network")])
        ));
    }
    for failure in left.iter().filter(|l| matches!(l.why, Why::Failed(_))) {
        ui.warn(&format!(
            "teardown left {failure}; `claude-bottle cleanup` removes it"
        ));
    }
}

/// `2 containers and 1 network`, leaving out what there are none of.
fn counted(counts: &[(usize, &str)]) -> String {
    counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}{}", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(" and ")
}

async fn remove(docker: &Docker, resource: &Created) -> Result<(), Why> {
    let removal = async {
        match resource {
            Created::Container(id) => remove_container(docker, id).await,
            Created::Network(id) => docker.remove_network(id).await,
        }
    };
    let container = matches!(resource, Created::Container(_));
    let span = if container {
        tracing::info_span!("container")
    } else {
        tracing::info_span!("network")
    };
    match tokio::time::timeout(
        REMOVE_WITHIN,
        tracing::Instrument::instrument(removal, span),
    )
    .await
    {
        // Removed, or (404) already gone.
        Ok(
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }),
        ) => Ok(()),
        // 409 on a container: its removal is already under way (auto-remove
        // after the dead-man switch fired); done once the engine says gone.
        Ok(Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        })) if container => {
            let Created::Container(id) = resource else {
                unreachable!("a container")
            };
            gone_within(docker, id, REMOVE_WITHIN)
                .await
                .map_err(Why::Failed)
        }
        Ok(Err(err)) => Err(crate::error::lost_engine(&err)
            .map_or_else(|| Why::Failed(err.to_string()), Why::EngineLost)),
        Err(_) => Err(Why::Failed(format!(
            "no answer within {} s",
            REMOVE_WITHIN.as_secs()
        ))),
    }
}

/// Removes a container, stopping it first. The engine refuses, with a 500,
/// where asking again a moment later removes it or finds it gone (or its
/// removal under way, a 409): while the container is between running and
/// stopped (Podman's "container state improper", Docker's "Could not kill
/// running container … is not running": its first process has just ended,
/// and its auto-removal begins).
/// Asked ever less often, and not past `REFUSED_FOR`: then the refusal is
/// the answer.
async fn remove_container(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let give_up = tokio::time::Instant::now() + REFUSED_FOR;
    let mut pause = Duration::from_millis(50);
    loop {
        let removed = docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    // With its anonymous volumes (the gate's handoff directory).
                    v: true,
                    ..Default::default()
                }),
            )
            .await;
        match removed {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                ref message,
            }) if (message.contains("container state improper")
                || message.contains("is not running"))
                && tokio::time::Instant::now() < give_up =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            done => return done,
        }
    }
}

/// How long a removal under way may take before it is asked for again.
const ASK_AGAIN_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Waits until the engine no longer knows the container `id`, asking for
/// its removal again now and then: Podman's own auto-removal can fail and
/// leave the container `stopped` for good, where a removal asked for then
/// succeeds at once.
async fn gone_within(docker: &Docker, id: &str, within: std::time::Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut ask_again = tokio::time::Instant::now() + ASK_AGAIN_AFTER;
    loop {
        if tokio::time::Instant::now() >= ask_again {
            ask_again += ASK_AGAIN_AFTER;
            let _ = tokio::time::timeout(ASK_AGAIN_AFTER, remove_container(docker, id)).await;
        }
        match docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(()),
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(format!("still being removed after {} s", within.as_secs()));
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if self.created.is_empty() {
            return;
        }
        let mut ledger = Ledger {
            docker: self.docker.clone(),
            created: std::mem::take(&mut self.created),
            ui: None,
        };
        let ui = self.ui.clone();
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            Some(runtime.block_on(ledger.teardown()))
        })
        .join();
        if let Ok(Some(failures)) = outcome {
            warn_left(ui.as_deref(), &failures);
        }
    }
}
