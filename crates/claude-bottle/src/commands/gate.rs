//! `gate` (hidden): the egress gate, as run in a bottle's gate container.
//!
//! Its policy comes in its arguments (the gate image has no shell and no
//! files to read it from). It exits when its stdin closes: the CLI that
//! started it holds that pipe, so the gate cannot outlive its bottle. A
//! `flush` line on that stdin asks for a `flushed` notice in the log once
//! every decision before it is written (the log is written off the
//! request path).

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use egress_gate::event::Notice;
use egress_gate::{Config, DecisionLog, EgressRule, Policy, handoff, host};

use crate::cli::GateArgs;
use crate::error::CommandError;

/// Raises the soft limit on open files to the hard one: each tunnel holds
/// six descriptors (the client's, the upstream's and two pipes), and engines
/// since Docker 25 start containers at a soft 1024, which would hold the
/// gate to about 170 tunnels whatever its cap.
fn raise_descriptor_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        // Where it cannot be raised, the accept loop's backoff bounds the rest.
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

pub(crate) async fn run(args: GateArgs) -> Result<ExitCode, CommandError> {
    let rules = |entries: &[String]| -> Result<Vec<EgressRule>, CommandError> {
        entries
            .iter()
            .map(|entry| {
                entry.parse().map_err(|err: egress_gate::RuleError| {
                    CommandError::usage(format!("gate entry `{entry}` {err}"), err.hint())
                })
            })
            .collect()
    };
    let ssh = args
        .ssh
        .iter()
        .map(|pair| {
            pair.rsplit_once(':')
                .and_then(|(h, p)| Some((host::parse(h)?, p.parse().ok()?)))
                .ok_or_else(|| {
                    CommandError::usage(
                        format!("`{pair}` is not host:port"),
                        "write --ssh gitea.example.com:22",
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let config = Config {
        listen: args.listen,
        policy: Policy::new(rules(&args.allow)?, rules(&args.private)?, ssh)
            .expecting(args.expected.clone()),
        dns: args.dns,
        max_connections: args.max_connections,
        header_timeout: Duration::from_secs(args.header_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
    };
    let log = DecisionLog::stdout();
    raise_descriptor_limit();
    // The dead-man switch: stdin reaching its end ends the gate. Before
    // that, a `flush` line asks for a notice once the log is written.
    let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    let control = log.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) if line.trim() == "flush" => control.flush(),
                // The key holder's decisions, to be logged with the gate's.
                Ok(line) => {
                    if let Ok(notice @ Notice::Ssh { .. }) = serde_json::from_str(&line) {
                        control.pass_on(notice);
                    }
                }
                Err(_) => break,
            }
        }
        let _ = closed.send(());
    });
    // Without its report the gate still gates, and still ends with its
    // stdin; the summary then has the log's redacted names only.
    let report = log.clone();
    tokio::spawn(async move {
        if let Err(err) = egress_gate::serve_report(report).await {
            eprintln!("the gate's report could not be served: {err}");
        }
    });
    let serving = async {
        match &args.listen_from {
            Some(socket) => {
                // Awaited beside stdin: the dead-man switch ends the wait.
                let listener = handoff::take_over(socket, handoff::WITHIN).await?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                egress_gate::serve_on(listener, config, log).await
            }
            None => egress_gate::serve(config, log).await,
        }
    };
    tokio::select! {
        served = serving => {
            served.map_err(|err| bottle::Error::caused_by("the gate could not serve", err))?;
            Ok(ExitCode::SUCCESS)
        }
        _ = stdin_closed => Ok(ExitCode::SUCCESS),
    }
}

/// `gate-report` (hidden): the gate's report, from its loopback to stdout,
/// which is an exec's stream and so never in the container's log.
pub(crate) async fn report() -> Result<ExitCode, CommandError> {
    let failed = |err| bottle::Error::caused_by("cannot read the gate's report", err);
    let mut stream = tokio::net::TcpStream::connect(egress_gate::REPORT_ADDRESS)
        .await
        .map_err(failed)?;
    tokio::io::copy(&mut stream, &mut tokio::io::stdout())
        .await
        .map_err(failed)?;
    Ok(ExitCode::SUCCESS)
}

/// `gate-handoff` (hidden): in the agent's network namespace, binds the
/// gate's port on its loopback and hands the listener to the gate.
pub(crate) fn hand_over(
    listen: std::net::SocketAddr,
    socket: &std::path::Path,
) -> Result<ExitCode, CommandError> {
    // The dead-man switch: stdin, held by the CLI, reaching its end ends
    // the helper, whether it still waits for the gate or not.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(1);
    });
    handoff::hand_over(listen, socket, handoff::WITHIN)
        .map_err(|err| bottle::Error::caused_by("cannot hand the gate its listener", err))?;
    Ok(ExitCode::SUCCESS)
}
