//! Commands run in the agent container through exec: unpacking files and
//! running claude itself.
//!
//! Files go in as a tar stream into `tar -x`, which works on read-only
//! roots, under tmpfs and under gVisor, where the engine's archive upload
//! does not. Every exec's exit code is checked: a missing command comes
//! back as output text, not as an error.

use bollard::Docker;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use bollard::query_parameters::ResizeExecOptions;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::engine::Engine;
use super::raw_terminal;
use crate::error::{Error, Result};
use crate::ui::{ClaudeStreams, Ui};

/// Unpacks `archive` into `dir` as `user`.
pub(super) async fn untar(
    docker: &Docker,
    container: &str,
    user: &str,
    dir: &str,
    archive: Vec<u8>,
) -> Result<()> {
    let cmd = ["tar", "-x", "-C", dir].map(String::from).to_vec();
    let mut input: &[u8] = &archive;
    match piped(
        docker,
        container,
        user,
        cmd,
        vec![],
        Some(&mut input),
        None,
        None,
    )
    .await?
    {
        (0, _) => Ok(()),
        (code, said) => Err(Error::new(format!(
            "cannot copy files into the bottle: tar exited with {code}: {}",
            said.trim()
        ))),
    }
}

/// What claude runs as and with.
pub(super) struct ClaudeExec<'a> {
    pub(super) container: &'a str,
    pub(super) user: &'a str,
    pub(super) workdir: &'a str,
    pub(super) cmd: Vec<String>,
    /// `NAME=value`; only ever in the exec, never in the container config.
    pub(super) env: Vec<String>,
}

/// Runs claude with the user's streams, a TTY when the user has one, and
/// returns its exit code.
pub(super) async fn run_claude(engine: &Engine, spec: ClaudeExec<'_>, ui: &dyn Ui) -> Result<i64> {
    let docker = &engine.docker;
    let failed =
        |err: crate::error::Cause| Error::caused_by("cannot run claude in the bottle", err);
    let tty = ui.is_tty();
    let mut env = spec.env;
    if tty {
        env.extend([
            "TERM=xterm-256color".to_owned(),
            "COLORTERM=truecolor".to_owned(),
        ]);
    }
    let exec = create(
        docker,
        spec.container,
        ExecConfig {
            cmd: Some(spec.cmd),
            env: Some(env),
            user: Some(spec.user.into()),
            working_dir: Some(spec.workdir.into()),
            tty: Some(tty),
            ..Default::default()
        },
    )
    .await
    .map_err(failed)?;
    let raw = if tty {
        raw_terminal::needed_for(engine)
    } else {
        None
    };
    let (mut output, mut input) = match raw {
        Some(endpoint) => raw_terminal::start(docker, endpoint, &exec)
            .await
            .map_err(|err| failed(err.into()))?,
        None => start(docker, &exec).await.map_err(failed)?,
    };
    let _raw = if tty {
        resize(docker, &exec, ui).await;
        Some(ui.raw_mode().map_err(|e| failed(e.into()))?)
    } else {
        None
    };
    let ClaudeStreams {
        mut stdin,
        mut stdout,
        mut stderr,
        mut resized,
    } = ui.claude_streams();
    let mut stdin_open = true;
    let mut first_byte = true;
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(log)) => {
                    if std::mem::take(&mut first_byte) {
                        tracing::info!("first byte");
                    }
                    let to = if matches!(log, bollard::container::LogOutput::StdErr { .. }) {
                        &mut stderr
                    } else {
                        &mut stdout
                    };
                    let bytes = log.into_bytes();
                    if to.write_all(&bytes).await.is_err() || to.flush().await.is_err() {
                        break;
                    }
                }
                Some(Err(err)) => return Err(failed(err.into())),
                None => break,
            },
            chunk = stdin.recv(), if stdin_open => {
                if let Some(bytes) = chunk {
                    stdin_open = input.write_all(&bytes).await.is_ok();
                } else {
                    stdin_open = false;
                    let _ = input.shutdown().await;
                }
            }
            Some(()) = resized.recv(), if tty => resize(docker, &exec, ui).await,
        }
    }
    let inspect = docker
        .inspect_exec(&exec)
        .await
        .map_err(|e| failed(e.into()))?;
    match inspect.exit_code {
        // 126/127 come from the runtime: claude could not be started at all.
        Some(code @ (126 | 127)) => Err(Error::new(format!(
            "claude could not be started in the bottle (exit {code})"
        ))
        .hint("check that the image has an executable `claude` on its PATH")),
        Some(code) => Ok(code),
        None => Err(failed("no exit code".into())),
    }
}

pub(super) type Output = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
            > + Send,
    >,
>;
pub(super) type Input = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// Creates and starts an exec with all three streams attached; returns
/// its id and streams.
pub(super) async fn attached(
    docker: &Docker,
    container: &str,
    config: ExecConfig,
) -> Result<(String, Output, Input), crate::error::Cause> {
    let exec = create(docker, container, config).await?;
    let (output, input) = start(docker, &exec).await?;
    Ok((exec, output, input))
}

/// Creates an exec with all three streams to be attached; returns its id.
async fn create(
    docker: &Docker,
    container: &str,
    config: ExecConfig,
) -> Result<String, crate::error::Cause> {
    let config = ExecConfig {
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..config
    };
    let exec =
        docker
            .create_exec(container, config)
            .await
            .map_err(|err| -> crate::error::Cause {
                match err {
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 404, ..
                    } => "its container is gone: removed from outside, or the engine restarted"
                        .into(),
                    err => err.into(),
                }
            })?;
    Ok(exec.id)
}

/// Starts the exec `id`, its streams attached. Without start options: the
/// request then asks for no TTY, and Docker frames even a terminal's
/// output, which bollard reads right (`raw_terminal` says why).
async fn start(docker: &Docker, id: &str) -> Result<(Output, Input), crate::error::Cause> {
    match docker.start_exec(id, None).await? {
        StartExecResults::Attached { output, input } => Ok((output, input)),
        StartExecResults::Detached => Err("the exec did not attach".into()),
    }
}

/// Sizes the exec's terminal like the user's. Engines below API 1.42
/// ignore the size given at creation, and a resize right after start can
/// race the exec's own set-up, so it is retried as the docker CLI does.
async fn resize(docker: &Docker, exec: &str, ui: &dyn Ui) {
    let Some((rows, cols)) = ui.size() else {
        return;
    };
    for _ in 0..5 {
        let options = ResizeExecOptions {
            h: i32::from(rows),
            w: i32::from(cols),
        };
        if docker.resize_exec(exec, options).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// What of an exec's stderr is kept: its end, where errors are.
const STDERR_KEPT: usize = 16 << 10;
/// How long an exec's output may go on once its process has ended: a
/// process it left behind may hold the pipe open for ever.
const AFTER_EXIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How often an exec is asked whether its process still runs.
const STILL_RUNNING_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether an exec's process has ended, asked every [`STILL_RUNNING_EVERY`]:
/// its output is waited for only [`AFTER_EXIT`] past that, since a process
/// it left behind may hold the pipe open for ever.
struct ExitWatch {
    asked: tokio::time::Interval,
    ended: Option<tokio::time::Instant>,
}

impl ExitWatch {
    fn new() -> Self {
        Self {
            asked: tokio::time::interval(STILL_RUNNING_EVERY),
            ended: None,
        }
    }

    /// Resolves once the exec's process ended [`AFTER_EXIT`] ago. Safe to
    /// drop at any point: what it learnt is kept.
    async fn past_grace(&mut self, docker: &Docker, exec: &str) {
        loop {
            if let Some(at) = self.ended {
                return tokio::time::sleep_until(at + AFTER_EXIT).await;
            }
            self.asked.tick().await;
            let running = docker.inspect_exec(exec).await.ok().and_then(|i| i.running);
            if running == Some(false) {
                self.ended = Some(tokio::time::Instant::now());
            }
        }
    }
}

/// Runs `cmd` as `user` with `env`, its stdin fed from `input` and its
/// stdout written to `output`; returns its exit code and what it said on
/// stderr, made safe to print and kept to its end (`bottle_text`). For
/// streams too large to hold (a repository, a bundle). The wait ends soon
/// after the process does, and fails past `within` where one is given.
#[allow(
    clippy::too_many_arguments,
    reason = "each is one part of the exec, and every caller names them all"
)]
pub(super) async fn piped(
    docker: &Docker,
    container: &str,
    user: &str,
    cmd: Vec<String>,
    env: Vec<String>,
    input: Option<&mut (dyn tokio::io::AsyncRead + Unpin + Send)>,
    output: Option<&mut (dyn tokio::io::AsyncWrite + Unpin + Send)>,
    within: Option<std::time::Duration>,
) -> Result<(i64, String)> {
    let failed = |err: crate::error::Cause| {
        Error::caused_by(format!("cannot run {} in the bottle", cmd[0]), err)
    };
    let (exec, mut stream, mut stdin) = attached(
        docker,
        container,
        ExecConfig {
            cmd: Some(cmd.clone()),
            env: Some(env),
            user: Some(user.into()),
            ..Default::default()
        },
    )
    .await
    .map_err(failed)?;
    let feed = async {
        if let Some(input) = input {
            // Large writes: a repository moves in far fewer syscalls.
            let mut input = tokio::io::BufReader::with_capacity(1 << 20, input);
            tokio::io::copy_buf(&mut input, &mut stdin).await?;
        }
        stdin.shutdown().await
    };
    let mut said = crate::bottle_text::Tail::new(STDERR_KEPT);
    let drain = async {
        let mut output = output;
        let mut exited = ExitWatch::new();
        loop {
            tokio::select! {
                chunk = stream.next() => match chunk {
                    Some(chunk) => match chunk.map_err(|e| failed(e.into()))? {
                        bollard::container::LogOutput::StdOut { message } => {
                            if let Some(out) = &mut output {
                                out.write_all(&message)
                                    .await
                                    .map_err(|e| failed(e.into()))?;
                            }
                        }
                        other => said.push(&other.into_bytes()),
                    },
                    None => break,
                },
                () = exited.past_grace(docker, &exec) => break,
            }
        }
        if let Some(out) = &mut output {
            out.flush().await.map_err(|e| failed(e.into()))?;
        }
        Ok::<_, Error>(())
    };
    let both = async { tokio::join!(feed, drain) };
    let (written, drained) = match within {
        Some(within) => tokio::time::timeout(within, both)
            .await
            .map_err(|_| failed(format!("it did not end within {} s", within.as_secs()).into()))?,
        None => both.await,
    };
    drained?;
    written.map_err(|e| failed(e.into()))?;
    let code = docker
        .inspect_exec(&exec)
        .await
        .map_err(|e| failed(e.into()))?
        .exit_code
        .unwrap_or(-1);
    Ok((code, said.shown()))
}

/// A writer that takes at most `limit` bytes and fails past them: what a
/// bottle sends the host is bounded, however much it sends.
pub(super) struct Capped<W> {
    inner: W,
    left: u64,
    limit: u64,
}

impl<W> Capped<W> {
    pub(super) fn new(inner: W, limit: u64) -> Self {
        Self {
            inner,
            left: limit,
            limit,
        }
    }

    pub(super) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Capped<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if buf.len() as u64 > self.left {
            let limit = self.limit;
            return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                "it sent more than the {limit} bytes allowed"
            ))));
        }
        let written = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = written {
            self.left -= n as u64;
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
