//! `doctor`: what a start needs, checked, each problem with its fix.
//!
//! The engine's checks come from the backend, the host's from the library;
//! only the terminal is checked here, where it is known. Nothing is
//! created, so `doctor` is safe to run at any time, even beside bottles.

use std::fmt::Write as _;
use std::io::{self, IsTerminal};
use std::process::ExitCode;

use bottle::backend;
use bottle::doctor::{Finding, Verdict, host_findings, start_can_work};
use bottle::settings::{self, Settings};
use rustix::termios;

use crate::cli::Format;
use crate::error::CommandError;
use crate::progress::while_waiting;
use crate::terminal::TerminalUi;

pub(crate) async fn run(format: Format) -> Result<ExitCode, CommandError> {
    let (cwd, home) = super::manifest_dirs()?;
    let lookup = |name: &str| std::env::var(name).ok();
    let mut findings = Vec::new();
    let has_token = match Settings::from_env() {
        Ok(settings) => {
            let checkup = async {
                match backend::select(&settings.backend) {
                    Ok(backend) => backend.checkup(&settings, &home, &TerminalUi).await,
                    Err(err) => vec![Finding::failed("engine", &err)],
                }
            };
            findings.extend(match format {
                Format::Text => while_waiting("checking the engine", checkup).await,
                Format::Json => checkup.await,
            });
            settings.oauth_token.is_some()
        }
        Err(err) => {
            findings.push(Finding::failed("settings", &err));
            std::env::var_os(settings::OAUTH_TOKEN.name).is_some_and(|t| !t.is_empty())
        }
    };
    findings.extend(host_findings(&cwd, &home, has_token, &lookup));
    findings.push(terminal());
    let can_start = start_can_work(&findings);
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "start_can_work": can_start,
                "checks": findings,
            }))
            .expect("findings serialise")
        ),
        Format::Text => print!("{}", text(&findings, can_start)),
    }
    Ok(ExitCode::from(u8::from(!can_start)))
}

fn text(findings: &[Finding], can_start: bool) -> String {
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for finding in findings {
        let verdict = match finding.verdict {
            Verdict::Ok => "ok",
            Verdict::Skipped => "skip",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        let _ = writeln!(
            out,
            "{verdict:<5} {:<width$}  {}",
            finding.check, finding.summary
        );
        if let Some(fix) = &finding.fix {
            let _ = writeln!(out, "{:<5} {:<width$}  fix: {fix}", "", "");
        }
    }
    out.push_str(if can_start {
        "\n`claude-bottle start` can work.\n"
    } else {
        "\n`claude-bottle start` cannot work until each FAIL above is fixed.\n"
    });
    out
}

/// Whether questions can be asked, whether claude gets a TTY, and of what
/// kind and size.
fn terminal() -> Finding {
    let (stdin, stdout, stderr) = (
        io::stdin().is_terminal(),
        io::stdout().is_terminal(),
        io::stderr().is_terminal(),
    );
    let term = std::env::var(settings::TERM.name).unwrap_or_default();
    let size = termios::tcgetwinsize(io::stdout())
        .ok()
        .filter(|s| s.ws_row > 0 && s.ws_col > 0);
    let finding = if stdin && stdout {
        let size = size.map_or_else(String::new, |s| format!(", {}x{}", s.ws_col, s.ws_row));
        let summary = format!(
            "a terminal (TERM={}{size}): `start` asks before it creates anything, and claude \
             runs on a TTY",
            if term.is_empty() { "unset" } else { &term }
        );
        if term.is_empty() || term == "dumb" {
            Finding::new("terminal", Verdict::Warn, summary).fix(
                "claude's screen needs a terminal that draws colours and moves the cursor: \
                 run from a terminal emulator, or set TERM=xterm-256color",
            )
        } else {
            Finding::ok("terminal", summary)
        }
    } else if stdin && stderr {
        Finding::ok(
            "terminal",
            "questions can be asked, but stdout is not a terminal: claude runs without a TTY",
        )
    } else {
        Finding::ok(
            "terminal",
            "not a terminal: `start` needs --yes, secrets marked \"?\" cannot be asked, and \
             claude runs without a TTY (give it a task: `-- -p \"...\"`)",
        )
    };
    finding
        .fact("stdin", stdin)
        .fact("stdout", stdout)
        .fact("stderr", stderr)
        .fact("term", term)
}
