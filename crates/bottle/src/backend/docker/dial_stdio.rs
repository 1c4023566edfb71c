//! `ssh://` engines, reached as the docker CLI reaches them: every
//! connection is its own `ssh HOST docker system dial-stdio`, and the
//! Engine API is spoken over that process's stdin and stdout.
//!
//! The user's ssh does the authentication, with their config, agent and
//! known hosts; nothing here weakens it. `BatchMode` keeps it from asking
//! for a password on a terminal a session may hold in raw mode.
//!
//! A connection lives as long as its ssh process, which dies with it
//! (`kill_on_drop`); when this CLI dies, ssh reads the end of its stdin and
//! the engine sees the stream close, so the dead-man switch holds here as
//! on a socket.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bollard::{BollardRequest, Docker};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Connects to the engine `ssh://[USER@]HOST[:PORT]` names.
pub(super) fn connect(
    host: &str,
    timeout_secs: u64,
) -> Result<(Docker, SshErrors), bollard::errors::Error> {
    let connector = DialStdio {
        args: ssh_args(host),
        errors: SshErrors::default(),
    };
    let errors = connector.errors.clone();
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let transport = move |request: BollardRequest| {
        let client = client.clone();
        async move {
            client
                .request(request)
                .await
                .map_err(bollard::errors::Error::from)
        }
    };
    // The URI only frames requests; the connector knows where they go.
    let docker = Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        timeout_secs,
        bollard::API_DEFAULT_VERSION,
    )?;
    Ok((docker, errors))
}

/// `ssh://user@host:22` as ssh's arguments: `-l user -p 22 -- host`.
fn ssh_args(host: &str) -> Vec<String> {
    let authority = host.trim_start_matches("ssh://");
    let authority = authority.split('/').next().unwrap_or_default();
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, rest)) => (Some(user), rest),
        None => (None, authority),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') && port.parse::<u16>().is_ok() => {
            (host, Some(port))
        }
        _ => (host_port, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut args: Vec<String> = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-T"]
        .map(str::to_owned)
        .into();
    if let Some(user) = user {
        args.extend(["-l".to_owned(), user.to_owned()]);
    }
    if let Some(port) = port {
        args.extend(["-p".to_owned(), port.to_owned()]);
    }
    args.extend(["--", host, "docker", "system", "dial-stdio"].map(str::to_owned));
    args
}

/// What ssh last said on stderr, for the error when the engine does not
/// answer ("Permission denied (publickey)", "Could not resolve hostname").
#[derive(Debug, Clone, Default)]
pub(super) struct SshErrors(Arc<Mutex<String>>);

impl SshErrors {
    pub(super) fn last(&self) -> Option<String> {
        let text = self.0.lock().ok()?;
        let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
        Some(line.trim().to_owned())
    }
}

#[derive(Clone)]
struct DialStdio {
    args: Vec<String>,
    errors: SshErrors,
}

impl tower_service::Service<hyper::Uri> for DialStdio {
    type Response = TokioIo<SshStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let spawned = spawn(&self.args, self.errors.clone());
        Box::pin(async move { spawned })
    }
}

/// One connection to the engine `ssh://…` names, for a request made
/// outside bollard, and what ssh says on it.
pub(super) fn open(host: &str) -> io::Result<(TokioIo<SshStream>, SshErrors)> {
    let errors = SshErrors::default();
    Ok((spawn(&ssh_args(host), errors.clone())?, errors))
}

/// Runs `ssh ARGS`; its stdin and stdout, as one connection.
fn spawn(args: &[String], errors: SshErrors) -> io::Result<TokioIo<SshStream>> {
    let mut child = Command::new("ssh")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| io::Error::new(err.kind(), format!("cannot run ssh: {err}")))?;
    let (Some(stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io::Error::other("ssh started without its pipes"));
    };
    tokio::spawn(async move {
        let mut said = Vec::new();
        let _ = stderr.read_to_end(&mut said).await;
        if !said.is_empty() {
            if let Ok(mut last) = errors.0.lock() {
                *last = String::from_utf8_lossy(&said).into_owned();
            }
        }
    });
    Ok(TokioIo::new(SshStream {
        _child: child,
        stdin: Some(stdin),
        stdout,
    }))
}

/// One ssh process's stdout and stdin, as one byte stream.
pub(super) struct SshStream {
    _child: Child,
    /// Dropped on shutdown: the engine then reads the end of the request.
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
}

impl Connection for SshStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(stdin) = self.stdin.as_mut() {
            std::task::ready!(Pin::new(stdin).poll_flush(cx))?;
        }
        self.stdin = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::ssh_args;

    #[test]
    fn the_address_becomes_ssh_arguments_and_the_host_never_an_option() {
        let tail = |host: &str| ssh_args(host)[5..].join(" ");
        assert_eq!(tail("ssh://big"), "-- big docker system dial-stdio");
        assert_eq!(
            tail("ssh://me@big:2222"),
            "-l me -p 2222 -- big docker system dial-stdio"
        );
        assert_eq!(
            tail("ssh://me@[::1]:22"),
            "-l me -p 22 -- ::1 docker system dial-stdio"
        );
        // A host that looks like an option stays a host, after `--`.
        assert_eq!(
            tail("ssh://-oProxyCommand=x"),
            "-- -oProxyCommand=x docker system dial-stdio"
        );
        assert_eq!(
            ssh_args("ssh://big")[..5].join(" "),
            "-o BatchMode=yes -o ConnectTimeout=30 -T"
        );
    }
}
