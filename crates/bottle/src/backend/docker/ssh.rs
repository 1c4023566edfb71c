//! SSH in a bottle on Docker: the files and the helper go into the agent's
//! home, the relay runs as an exec of the agent's user, and the key holder
//! answers it from this process for as long as the session lasts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::models::ExecConfig;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::exec;
use super::gate::GateControl;
use crate::archive::{append_dir, append_file};
use crate::error::{Error, Result};
use crate::ssh::frame::{Decoder, Frame, Kind};
use crate::ssh::holder::{HeldKey, Holder, SignDecision};
use crate::ssh::{AGENT_SOCKET, HELPER, HomeFile};
use egress_gate::event::{Notice, Verdict};

const READY_WITHIN: Duration = Duration::from_secs(15);

/// The helper executable and the SSH files, as a tar for the agent's home.
pub(super) fn home_archive(files: &[HomeFile], exe: &[u8]) -> Result<Vec<u8>> {
    let failed = |err: std::io::Error| Error::caused_by("cannot pack the SSH files", err);
    let mut archive = tar::Builder::new(Vec::new());
    append_dir(&mut archive, ".ssh", 0o700).map_err(failed)?;
    append_dir(&mut archive, ".claude-bottle", 0o755).map_err(failed)?;
    append_dir(&mut archive, ".claude-bottle/bin", 0o755).map_err(failed)?;
    append_file(&mut archive, HELPER, 0o755, exe.len() as u64, exe).map_err(failed)?;
    for file in files {
        let size = file.contents.len() as u64;
        append_file(
            &mut archive,
            &file.path,
            file.mode,
            size,
            file.contents.as_slice(),
        )
        .map_err(failed)?;
    }
    archive.into_inner().map_err(failed)
}

/// The holder at work: answering the relay until the session ends.
#[derive(Debug)]
pub(super) struct RunningHolder {
    task: tokio::task::JoinHandle<()>,
    holder: Arc<Mutex<Holder>>,
}

impl RunningHolder {
    /// Stops answering; every distinct decision made and how often, and
    /// how many session bindings were refused past the bound.
    pub(super) fn stop(self) -> (BTreeMap<SignDecision, u64>, u64) {
        self.task.abort();
        let holder = self
            .holder
            .lock()
            .expect("the holder's lock is never poisoned");
        (holder.tally().clone(), holder.bindings_past_bound())
    }
}

/// Starts the relay in the agent container and the holder here; returns
/// once the relay listens.
pub(super) async fn start(
    docker: &Docker,
    container: &str,
    user: &str,
    home: &str,
    keys: Vec<HeldKey>,
    gate: GateControl,
) -> Result<RunningHolder> {
    let failed = |what: &str| Error::new(format!("the SSH agent relay {what}"));
    let home = home.trim_end_matches('/');
    let (_, mut output, mut input) = exec::attached(
        docker,
        container,
        ExecConfig {
            cmd: Some(vec![
                format!("{home}/{HELPER}"),
                "ssh-relay".into(),
                "--socket".into(),
                format!("{home}/{AGENT_SOCKET}"),
            ]),
            user: Some(user.into()),
            ..Default::default()
        },
    )
    .await
    .map_err(|err| Error::caused_by("the SSH agent relay cannot start", err))?;
    let mut decoder = Decoder::default();
    let ready = async {
        while let Some(Ok(chunk)) = output.next().await {
            if let bollard::container::LogOutput::StdOut { message } = chunk {
                decoder.push(&message);
                if let Ok(Some(frame)) = decoder.next_frame() {
                    return frame.kind == Kind::Ready;
                }
            }
        }
        false
    };
    match tokio::time::timeout(READY_WITHIN, ready).await {
        Ok(true) => {}
        Ok(false) => return Err(failed("exited before it listened")),
        Err(_) => return Err(failed("did not listen in time")),
    }
    let holder = Arc::new(Mutex::new(Holder::new(keys)));
    let answering = holder.clone();
    let task = tokio::spawn(async move {
        while let Some(Ok(chunk)) = output.next().await {
            // Only stdout carries frames; what the relay says on stderr is
            // not the holder's business.
            let bollard::container::LogOutput::StdOut { message } = chunk else {
                continue;
            };
            decoder.push(&message);
            loop {
                let frame = match decoder.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    // A relay that breaks the framing is not answered again.
                    Err(_) => return,
                };
                let (answer, decided) = {
                    let mut holder = answering
                        .lock()
                        .expect("the holder's lock is never poisoned");
                    let answer = match frame.kind {
                        Kind::Message => Some(holder.answer(frame.connection, &frame.payload)),
                        Kind::Closed => {
                            holder.closed(frame.connection);
                            None
                        }
                        Kind::Ready => None,
                    };
                    (answer, holder.take_latest())
                };
                // Logged by the gate, with its own decisions.
                if let Some(decision) = decided {
                    let _ = gate.line(&notice(&decision)).await;
                }
                if let Some(payload) = answer {
                    let reply = Frame {
                        connection: frame.connection,
                        kind: Kind::Message,
                        payload,
                    };
                    if input.write_all(&reply.encode()).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(RunningHolder { task, holder })
}

/// A decision as the gate's log takes it on its stdin.
fn notice(decision: &SignDecision) -> String {
    let verdict = if decision.signed {
        Verdict::Allow
    } else {
        Verdict::Refuse
    };
    serde_json::to_string(&Notice::Ssh {
        key_for: decision.key_for.clone(),
        verdict,
        reason: decision.reason.to_owned(),
    })
    .expect("a notice always serialises")
}

/// The line a session ends with when its keys were asked for anything:
/// each distinct refusal once, with how often it came.
pub(super) fn summary((tally, past_bound): &(BTreeMap<SignDecision, u64>, u64)) -> Option<String> {
    if tally.is_empty() && *past_bound == 0 {
        return None;
    }
    let count = |signed: bool| -> u64 {
        tally
            .iter()
            .filter(|(d, _)| d.signed == signed)
            .map(|(_, n)| n)
            .sum()
    };
    let refused: Vec<String> = tally
        .iter()
        .filter(|(d, _)| !d.signed)
        .map(|(d, &n)| {
            let times = if n > 1 {
                format!(", {n} times")
            } else {
                String::new()
            };
            format!("the key for {}: {}{times}", d.key_for, d.reason)
        })
        .collect();
    let mut line = format!("ssh: {} signed, {} refused", count(true), count(false));
    if !refused.is_empty() {
        let _ = write!(line, " ({})", refused.join("; "));
    }
    if *past_bound > 0 {
        let _ = write!(
            line,
            "; {past_bound} session bindings refused, the holder holding its most"
        );
    }
    Some(line)
}
