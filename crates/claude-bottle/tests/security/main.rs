//! The security suite: a hostile agent, held.
//!
//! An agent that runs with `--dangerously-skip-permissions` is treated as
//! hostile. One session of real Claude Code, driven by the mock API's
//! scripted `Bash` tool calls and given all five kinds of secret, tries
//! every way out and every way up it can; meanwhile the suite searches
//! every place a secret could land. Each attempt, the path it took and
//! what happened go in a report printed at the end of every run, passing
//! or not. An attempt that gets through is a product bug: the suite fails.
//!
//! Its own harness (not libtest's), so the report comes last and whole.
//! Runs with the rest of `scripts/test`; a positional filter that does not
//! match `security` skips it, as a test name filter would.

#[path = "../cli/support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

mod attempts;
mod report;
mod search;
mod secrets;
mod world;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use report::Report;
use secrets::Secrets;
use support::{
    CLAUDE_CODE_IMAGE, FAKE_CLAUDE_IMAGE, FIXTURES_IMAGE, SSHD_IMAGE, Sandbox, TEST_LABEL,
    Terminal, engine_with, entry, exec, has_runsc, key_lines, leftovers, run_label,
};
use world::{HostListeners, Neighbour, Outside};

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let listing = std::env::args().any(|a| a == "--list");
    if listing || (!filters.is_empty() && !filters.iter().any(|f| "security".contains(f.as_str())))
    {
        return ExitCode::SUCCESS;
    }
    secrets::forms_are_found_at_every_alignment();
    let report = Report::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(run(&report))
    }));
    match ran {
        Ok(false) => return ExitCode::SUCCESS,
        Ok(true) => {}
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic".to_owned());
            report.broke(why);
        }
    }
    drop(runtime);
    report.print();
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What the hostile bottle's attempts could be seen by, read at the
/// second checkpoint while the bottle still runs.
struct Evidence {
    sink: Vec<Value>,
    dns: Vec<String>,
    host_heard: Vec<String>,
    host_taken: usize,
    mock_paths: String,
    gate_log: String,
    neighbour_gate_log: String,
    /// The agent container's pids, memory and CPU limits in its cgroup on
    /// this machine (where the engine is local and uses cgroup v1).
    host_limits: [Option<String>; 3],
    /// What the CLI wrote on the terminal, and the branches of the user's
    /// repository, once the session has ended.
    session_end: String,
    host_refs: String,
}

fn host_limits(container: &str) -> [Option<String>; 3] {
    let read = |path: String| {
        std::fs::read_to_string(path)
            .ok()
            .map(|v| v.trim().to_owned())
    };
    [
        read(format!("/sys/fs/cgroup/pids/docker/{container}/pids.max")),
        read(format!(
            "/sys/fs/cgroup/memory/docker/{container}/memory.limit_in_bytes"
        )),
        read(format!(
            "/sys/fs/cgroup/cpu/docker/{container}/cpu.cfs_quota_us"
        )),
    ]
}

/// The hostile bottle's world, and what it is given.
struct Suite {
    docker: bollard::Docker,
    label: String,
    runsc: bool,
    sandbox: Sandbox,
    secrets: Secrets,
    attempts: Vec<attempts::Attempt>,
    outside: Outside,
    neighbour: Neighbour,
    listeners: HostListeners,
}

impl Suite {
    /// The fixtures, the neighbour, and a sandbox whose bottle is given
    /// all five kinds of secret. `None` when skipped (no engine, outside CI).
    async fn prepare() -> Option<Self> {
        let docker = engine_with(
            "the security suite",
            &[
                CLAUDE_CODE_IMAGE,
                FIXTURES_IMAGE,
                SSHD_IMAGE,
                FAKE_CLAUDE_IMAGE,
            ],
        )
        .await?;
        let label = run_label("security");
        let runsc = has_runsc(&docker).await;
        let sandbox = Sandbox::new();
        let public_key = sandbox.ssh_key("id_sec", "");
        let secrets = Secrets::new(&label).with_ssh_key(key_lines(&sandbox, "id_sec"));
        let attempts = attempts::hostile();
        let outside =
            Outside::start(&docker, &label, &attempts::script(&attempts), &public_key).await;
        let neighbour = Neighbour::start(&docker, &label).await;
        let manifest = json!({
            "bottles": { "dev": {
                "env": {
                    "ANTHROPIC_BASE_URL": "http://mock",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                    "ANTHROPIC_API_KEY": secrets.literal.value,
                    "HOST_TOKEN": "${HOST_SECRET}",
                    "PASSWORD": "?the password",
                },
                // `mock:80` admits CONNECT there; `*.mock.test` names
                // Azure's WireServer (meta.mock.test), through the fixture DNS.
                "egress": {
                    "allowlist": ["mock", "mock:80", "*.mock.test"],
                    "private": ["mock", "mock:80", "*.mock.test"],
                    "builtin": false,
                },
                "ssh": [entry("git-host", "git-host", 22, "id_sec", Some(&outside.ssh_host.host_key))],
            } },
            "agents": { "a": { "bottle": "dev", "prompt": "You are the security suite's agent." } },
        });
        sandbox.cwd_manifest(&manifest.to_string());
        // The user's repository, which the bottle gets with `--cwd`.
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["config", "user.name", "Ada Host"],
            &["config", "user.email", "ada@host.example"],
            &["commit", "-q", "--allow-empty", "-m", "first"],
        ] {
            let made = std::process::Command::new("git")
                .arg("-C")
                .arg(&sandbox.cwd)
                .args(args)
                .status()
                .expect("git runs");
            assert!(made.success(), "git {args:?}");
        }
        let sandbox = sandbox
            .env("CLAUDE_BOTTLE_IMAGE", CLAUDE_CODE_IMAGE)
            .env(
                "CLAUDE_BOTTLE_EXTRA_LABELS",
                &format!("{TEST_LABEL}={label}"),
            )
            .env("CLAUDE_BOTTLE_GATE_NETWORKS", &outside.network.name)
            .env("CLAUDE_BOTTLE_GATE_DNS", &format!("{}:53", outside.dns))
            .env(
                "CLAUDE_BOTTLE_RUNTIME",
                if runsc { "runsc" } else { "runc" },
            )
            .env("HOST_SECRET", &secrets.host_variable.value)
            .env("CLAUDE_BOTTLE_OAUTH_TOKEN", &secrets.oauth.value);
        Some(Self {
            docker,
            label,
            runsc,
            sandbox,
            secrets,
            attempts,
            outside,
            neighbour,
            listeners: HostListeners::start(),
        })
    }

    /// The refs of the repository the bottle was given (`--cwd`).
    fn host_refs(&self) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.sandbox.cwd)
            .args(["for-each-ref", "--format=%(refname)"])
            .output()
            .expect("git runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The files under HOME the user made (the key pair), left out of the
    /// search for what claude-bottle wrote.
    fn user_files(&self) -> [std::path::PathBuf; 2] {
        [
            self.sandbox.home.join(".ssh/id_sec"),
            self.sandbox.home.join(".ssh/id_sec.pub"),
        ]
    }

    fn search_home(&self, report: &Report, when: &str) {
        let user_files = self.user_files();
        let except: Vec<&std::path::Path> = user_files.iter().map(AsRef::as_ref).collect();
        let (read, found) = search::home(&self.sandbox.home, &except, &self.secrets);
        report.record(
            "secrets",
            format!("the secrets in what claude-bottle wrote under HOME, {when}"),
            format!("{read} files under HOME (the user's key pair aside)"),
            found.is_empty(),
            search::describe(&found),
        );
    }

    /// While the session runs: the engine's record, the agent container's
    /// files and processes, and HOME.
    async fn search_while_running(&self, report: &Report, agent: &str) {
        let labels = [
            self.label.clone(),
            format!("{}-outside", self.label),
            self.neighbour.label.clone(),
        ];
        let (containers, execs, found) =
            search::containers(&self.docker, &labels, &self.secrets).await;
        report.record(
            "secrets",
            "the secrets in `docker inspect` of every container and exec",
            format!(
                "{containers} containers (the bottle's, its neighbour's, the fixtures'), {execs} execs"
            ),
            found.is_empty(),
            search::describe(&found),
        );
        let (images, found) = search::images(&self.docker, &self.secrets).await;
        report.record(
            "secrets",
            "the secrets in the config and history of every image",
            format!("{images} images on the engine"),
            found.is_empty(),
            search::describe(&found),
        );
        let inside = search::inside(&self.docker, agent, &self.secrets).await;
        record_inside(report, &inside, &self.secrets);
        self.search_home(report, "while the session runs");
    }

    /// Writes the attempts' targets into the agent's `/tmp`, now that every
    /// address is known, with a control file for the key search, and lets
    /// the session go on.
    async fn send_targets(&self, agent: &str) {
        let (host_v4, host_v6) = world::host_addresses();
        let gate = world::role_container(&self.docker, &self.label, "gate").await;
        let (gate_egress, egress_gateway) =
            world::address_on(&gate, "-egress").expect("the gate is on its egress network");
        let agent_inspect = world::role_container(&self.docker, &self.label, "agent").await;
        let (_, internal_gateway) =
            world::address_on(&agent_inspect, "-internal").expect("the agent is on its network");
        let mut v4 = host_v4;
        v4.extend(
            [internal_gateway, egress_gateway.clone()]
                .into_iter()
                .filter(|a| !a.is_empty()),
        );
        let v4 = v4.join(" ");
        let targets = format!(
            "set -a\nSINK_IP={}\nDNS_IP={}\nHOST_V4=\"{v4}\"\nHOST_V6=\"{}\"\nHOST_PORT={}\nHOST_V6_PORT={}\n\
             NEIGHBOUR_GATE={}\nNEIGHBOUR_AGENT={}\nGATE_EGRESS={gate_egress}\nEGRESS_GATEWAY={egress_gateway}\n\
             ENGINE_ADDRS=\"{v4}\"\n{}",
            self.outside.sink,
            self.outside.dns,
            host_v6.join(" "),
            self.listeners.v4_port,
            self.listeners.v6_port,
            self.neighbour.gate,
            self.neighbour.agent,
            attempts::HELPERS,
        );
        let (code, out) = exec(
            &self.docker,
            agent,
            &[
                "sh",
                "-c",
                "printf '%s' \"$T\" >/tmp/cb-targets.sh && chmod 644 /tmp/cb-targets.sh \
                 && printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\\ncontrol\\n' >/tmp/cb-control-key \
                 && chmod 644 /tmp/cb-control-key && touch /tmp/cb-go-1",
            ],
            &[&format!("T={targets}")],
        )
        .await;
        assert_eq!(code, 0, "writing the targets: {out}");
    }

    /// What the attempts could be seen by, while the bottle still runs.
    async fn evidence(&self, agent: &str, logs: &support::Output) -> Evidence {
        let gate = world::role_container(&self.docker, &self.label, "gate").await;
        let neighbour_gate =
            world::role_container(&self.docker, &self.neighbour.label, "gate").await;
        Evidence {
            sink: self.outside.sink_records(),
            dns: self.outside.dns_queries(),
            host_heard: self.listeners.heard(),
            host_taken: self.listeners.taken(),
            mock_paths: self
                .outside
                .mock_requests()
                .iter()
                .map(|r| r["target"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
                .join(" "),
            gate_log: format!(
                "{}{}",
                logs.all(),
                search::container_log(&self.docker, gate.id.as_deref().unwrap()).await
            ),
            neighbour_gate_log: search::container_log(
                &self.docker,
                neighbour_gate.id.as_deref().unwrap(),
            )
            .await,
            host_limits: host_limits(agent),
            session_end: String::new(),
            host_refs: String::new(),
        }
    }
}

/// `false` when skipped (no engine, outside CI).
async fn run(report: &Report) -> bool {
    let Some(suite) = Suite::prepare().await else {
        return false;
    };
    let mut cli_output = Vec::new();
    for args in [
        &["start", "a", "--dry-run"][..],
        &["start", "a", "--dry-run", "--format", "json"],
        &["info", "a"],
    ] {
        let out = suite.sandbox.run(args);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        cli_output.push((args.join(" "), out.all()));
    }

    let terminal = Terminal::start(
        &suite.sandbox,
        &["start", "a", "--cwd", "--yes", "--", "-p", "go"],
    );
    terminal.wait_for("the password");
    terminal.type_text(&format!("{}\n", suite.secrets.prompted.value));
    let agent = wait_for_agent(&suite.docker, &suite.label).await;
    checkpoint(&suite.docker, &agent, &terminal, 1).await;
    let instance = instance_of(&suite.docker, &suite.label).await;
    suite.search_while_running(report, &agent).await;
    suite.send_targets(&agent).await;

    checkpoint(&suite.docker, &agent, &terminal, 2).await;
    let logs = suite.sandbox.run(&["logs", &instance]);
    let mut evidence = suite.evidence(&agent, &logs).await;
    let found = suite.secrets.found_in(&evidence.gate_log);
    let found: search::Found = if found.is_empty() {
        Vec::new()
    } else {
        vec![("the gate's log".to_owned(), found)]
    };
    report.record(
        "secrets",
        "the secrets in the gate's log",
        "`claude-bottle logs` and the engine's log of the gate container",
        found.is_empty(),
        search::describe(&found),
    );
    let (code, out) = exec(&suite.docker, &agent, &["touch", "/tmp/cb-go-2"], &[]).await;
    assert_eq!(code, 0, "{out}");

    let status = terminal.exit_status();
    let raw = String::from_utf8_lossy(&terminal.output()).into_owned();
    cli_output.push(("start a --yes (on a terminal)".to_owned(), raw.clone()));
    cli_output.push((format!("logs {instance}"), logs.all()));
    record_cli_output(report, &cli_output, &suite.secrets);
    suite.search_home(report, "after the session");

    evidence.session_end.clone_from(&raw);
    evidence.host_refs = suite.host_refs();
    let results = attempts::results(&suite.outside.mock_requests());
    judge(report, &suite.attempts, &results, &evidence, suite.runsc);
    report.record(
        "session",
        "the hostile session ran to its end and claude's exit code came back",
        "the CLI on a terminal",
        status == 0 && raw.contains("hostile session done"),
        format!("exit {status}; {} tool results", results.len()),
    );
    let left = leftovers(&suite.docker, &suite.label).await;
    report.record(
        "session",
        "nothing of the bottle left once it ended",
        "containers and networks labelled with the run",
        left == (vec![], vec![]),
        format!("{} containers, {} networks", left.0.len(), left.1.len()),
    );
    let done = suite.neighbour.session.finish("");
    assert_eq!(done.code, 0, "the neighbour: {done:?}");
    true
}

fn record_cli_output(report: &Report, outputs: &[(String, String)], secrets: &Secrets) {
    let found: Vec<_> = outputs
        .iter()
        .filter_map(|(run, text)| {
            let kinds = secrets.found_in(text);
            (!kinds.is_empty()).then(|| (run.clone(), kinds))
        })
        .collect();
    report.record(
        "secrets",
        "the secrets in the CLI's stdout and stderr",
        outputs
            .iter()
            .map(|(run, _)| run.as_str())
            .collect::<Vec<_>>()
            .join("; ")
            + " (text and JSON)",
        found.is_empty(),
        search::describe(&found),
    );
}

fn record_inside(report: &Report, inside: &search::Inside, secrets: &Secrets) {
    report.record(
        "secrets",
        "the secrets in the agent container's files",
        "grep -r over / as root through the engine (proc, sys and dev aside), plain and base64",
        inside.files.is_empty(),
        search::describe(&inside.files),
    );
    let outside_claude: Vec<_> = inside.environ.iter().filter(|(_, _, ok, _)| !ok).collect();
    let key_in_env = inside
        .environ
        .iter()
        .any(|(_, _, _, kinds)| kinds.contains(&"the SSH key"));
    let in_claude: Vec<&str> = {
        let mut kinds: Vec<&str> = inside
            .environ
            .iter()
            .filter(|(_, _, ok, _)| *ok)
            .flat_map(|(_, _, _, k)| k.iter().copied())
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    };
    report.record(
        "secrets",
        "the secrets in any process's environment but claude's own (and its children's)",
        "/proc/*/environ of every process in the bottle",
        outside_claude.is_empty() && !key_in_env,
        format!(
            "in claude's: {}; elsewhere: {}",
            if in_claude.is_empty() {
                "none".to_owned()
            } else {
                in_claude.join(", ")
            },
            if outside_claude.is_empty() {
                "none".to_owned()
            } else {
                outside_claude
                    .iter()
                    .map(|(pid, name, _, kinds)| {
                        format!("pid {pid} ({name}): {}", kinds.join(", "))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        ),
    );
    let expected: Vec<&str> = secrets
        .all()
        .iter()
        .filter(|s| s.in_claude_env)
        .map(|s| s.kind)
        .collect();
    report.record(
        "secrets",
        "control: claude's environment holds every secret given to it, as the search sees",
        "/proc/<claude>/environ",
        expected.iter().all(|k| in_claude.contains(k)),
        format!("expected {}", expected.join(", ")),
    );
    report.record(
        "secrets",
        "the secrets in any process's arguments",
        "/proc/*/cmdline of every process in the bottle",
        inside.argv.is_empty(),
        search::describe(&inside.argv),
    );
    // Claude Code keeps the tail in its state file, and copies that file
    // to its backups.
    let state_file = |f: &String| {
        f == "/home/agent/.claude.json"
            || f.starts_with("/home/agent/.claude/backups/.claude.json.")
    };
    report.record(
        "secrets",
        "the API key's last 20 characters anywhere but the bottle's .claude.json (and Claude Code's backups of it)",
        "grep -r over / as root",
        inside.key_tail.iter().any(|f| f == "/home/agent/.claude.json")
            && inside.key_tail.iter().all(state_file),
        format!("in {}", inside.key_tail.join(", ")),
    );
}

/// Judges each attempt from what it said and what the fixtures heard.
fn judge(
    report: &Report,
    attempts: &[attempts::Attempt],
    results: &HashMap<String, String>,
    evidence: &Evidence,
    runsc: bool,
) {
    for attempt in attempts {
        let Some(said) = results.get(attempt.id) else {
            report.record(
                attempt.area,
                attempt.what,
                attempt.path,
                false,
                "no result came back",
            );
            continue;
        };
        let said = said.as_str();
        let held = held(attempt.id, said, evidence, runsc);
        let mut detail = said.to_owned();
        if attempt.id == "gvisor" && !runsc {
            detail.push_str(" (the engine has no runsc)");
        }
        if attempt.id == "limits" {
            let [pids, memory, cpu] = &evidence.host_limits;
            let _ = write!(
                detail,
                "; on the host: pids.max={} memory={} cpu quota={}",
                pids.as_deref().unwrap_or("-"),
                memory.as_deref().unwrap_or("-"),
                cpu.as_deref().unwrap_or("-")
            );
        }
        report.record(attempt.area, attempt.what, attempt.path, held, detail);
    }
    record_outside(report, evidence);
}

/// Whether attempt `id`, which said `said`, was held.
#[allow(
    clippy::too_many_lines,
    reason = "a table of judgements, one per attempt"
)]
fn held(id: &str, said: &str, evidence: &Evidence, runsc: bool) -> bool {
    use attempts::{all_failed, field};
    let sink_heard = |marker: &str| evidence.sink.iter().any(|r| r.to_string().contains(marker));
    let dns_heard = |marker: &str| evidence.dns.iter().any(|q| q.contains(marker));
    // The path of the request line, without its query.
    let host_heard = |path: &str| {
        evidence.host_heard.iter().any(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|p| p.split('?').next())
                .is_some_and(|p| p == path)
        })
    };
    match id {
        "gate-refused" => field(said, "http") == Some("403") && !sink_heard("m-gate"),
        "gate-tls" => field(said, "connect") == Some("403") && evidence.sink.is_empty(),
        "url-path" => field(said, "http") == Some("403") && !dns_heard("evil.test"),
        "subdomain" => field(said, "http") == Some("403") && !dns_heard("m-sub"),
        "dns-resolver" => field(said, "rc") != Some("0") && !dns_heard("m-dns."),
        "dns-direct" => !dns_heard("m-dnsdirect"),
        "tcp-direct" => all_failed(field(said, "rc")) && !sink_heard("m-tcp"),
        "ipv6" => all_failed(field(said, "rc")) && !host_heard("/m-v6"),
        "second-host" => {
            said.contains(" 400")
                && !evidence.mock_paths.contains("m-host2")
                && evidence.sink.is_empty()
        }
        "pipelined" => {
            field(said, "responses") == Some("1")
                && evidence.mock_paths.contains("m-pipe1")
                && !evidence.mock_paths.contains("m-pipe2")
                && !sink_heard("m-pipe2")
        }
        // The control: a file the suite wrote with a key's header.
        "ssh-key" => {
            field(said, "private-key-files") == Some("0") && field(said, "control") == Some("1")
        }
        // The control: the declared user logs in.
        "ssh-other-user" => field(said, "git") == Some("0") && field(said, "rc") != Some("0"),
        "ssh-sign" => field(said, "rc") != Some("0") && field(said, "sig") == Some("none"),
        // Made in the bottle; at the end, refused by name, shown escaped,
        // and the plain one home.
        "branch-name" => {
            let end = &evidence.session_end;
            field(said, "rc") == Some("0")
                && end.contains("not home: the branch `x;touch${IFS}/tmp/cb-pwned`")
                && end.contains("not home: the branch `y\\u{202e}z`")
                && !end.contains('\u{202e}')
                && evidence.host_refs.contains("/plain-9d")
                && !evidence.host_refs.contains("cb-pwned")
        }
        "metadata" => {
            field(said, "http") == Some("403") && evidence.gate_log.contains("metadata-address")
        }
        "tunnel-host" => {
            field(said, "refused") == Some("1")
                && !evidence.mock_paths.contains("m-tunnel")
                && !sink_heard("m-tunnel")
        }
        "mapped-name" => said.contains(" 403") && !dns_heard("mapped"),
        "sni-spelling" => {
            field(said, "done") == Some("1") && evidence.gate_log.contains("sni-not-canonical")
        }
        // Not even the registrable domain: only `com#` and a hash.
        "log-channel" => {
            field(said, "http") == Some("403")
                && evidence.gate_log.contains("\"com#")
                && !has_hex_run(&evidence.gate_log, 20)
        }
        "host-v4" => all_failed(field(said, "rc")) && !host_heard("/m-host"),
        "host-v4-gate" => {
            field(said, "http").is_some_and(|codes| {
                codes
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .all(|c| c == "403")
            }) && !host_heard("/m-host-gate")
        }
        "host-v6" => all_failed(field(said, "rc")) && !host_heard("/m-host6"),
        "neighbour" => {
            all_failed(field(said, "rc")) && !evidence.neighbour_gate_log.contains("\"verdict\"")
        }
        "gate-egress" => all_failed(field(said, "rc")),
        "engine" => {
            field(said, "sockets") == Some("0")
                && all_failed(field(said, "tcp"))
                && field(said, "docker-host") == Some("unset")
        }
        "identity" => {
            field(said, "uid").is_some_and(|u| u != "0")
                && ["CapEff", "CapPrm"]
                    .iter()
                    .all(|c| field(said, c) == Some("0000000000000000"))
                // gVisor leaves the ambient set out.
                && field(said, "CapAmb").is_none_or(|c| c == "0000000000000000")
                && field(said, "NoNewPrivs") == Some("1")
        }
        // The image has setuid files: none found would prove nothing.
        "setuid" => {
            field(said, "files").is_some_and(|n| n != "0")
                && field(said, "ran-as-root") == Some("0")
                && field(said, "su") != Some("0")
        }
        "limits" => {
            let host = |i: usize, value: &str| evidence.host_limits[i].as_deref() == Some(value);
            // gVisor shows the sandbox cgroups of its own, without limits
            // (newer builds) or none at all: the limits in force are its
            // container's, on the host.
            if runsc {
                return host(0, "1024") && host(1, "4294967296") && host(2, "200000");
            }
            let pids = match field(said, "pids") {
                Some("none") => host(0, "1024"),
                other => other == Some("1024"),
            };
            let memory = matches!(
                field(said, "memory"),
                Some("4294967296" | "meminfo:4294967296")
            );
            let cpu = match field(said, "cpu") {
                Some(c) if c.starts_with("nproc:") => host(2, "200000"),
                other => other.is_some_and(|c| c.starts_with("200000")),
            };
            pids && memory && cpu
        }
        "gvisor" => !runsc || field(said, "dmesg").is_some_and(|n| n != "0"),
        other => unreachable!("an attempt without a judge: {other}"),
    }
}

/// What the fixtures outside heard, whatever the attempts said.
fn record_outside(report: &Report, evidence: &Evidence) {
    report.record(
        "outside",
        "the sink heard nothing at all",
        "every connection the sink took, on 80 and 443",
        evidence.sink.is_empty(),
        format!("{} connections", evidence.sink.len()),
    );
    let asked: Vec<&String> = evidence
        .dns
        .iter()
        .filter(|q| !q.starts_with("mock") && !q.starts_with("git-host") && *q != "meta.mock.test")
        .collect();
    report.record(
        "outside",
        "the DNS server was asked for no name but the allowed ones (the API's, the SSH host's, the metadata attempt's)",
        "every query the fixture DNS server got (the gate's own lookups among them)",
        asked.is_empty(),
        format!("{} queries; others: {asked:?}", evidence.dns.len()),
    );
    report.record(
        "outside",
        "the host's listeners took no connection",
        "IPv4 and IPv6 listeners on every address of this machine",
        evidence.host_taken == 0,
        format!("{} connections", evidence.host_taken),
    );
    let refusals = evidence.gate_log.matches("\"refuse\"").count();
    report.record(
        "outside",
        "the gate's log shows the refusals",
        "`claude-bottle logs`: verdict refuse",
        refusals >= 5,
        format!("{refusals} refusals logged"),
    );
}

/// The agent container of the run, once it runs.
async fn wait_for_agent(docker: &bollard::Docker, label: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (containers, _) = leftovers(docker, label).await;
        for id in containers {
            let inspect = docker
                .inspect_container(
                    &id,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await;
            let role = inspect
                .ok()
                .and_then(|i| i.config)
                .and_then(|c| c.labels)
                .and_then(|l| l.get("io.claude-bottle.role").cloned());
            if role.as_deref() == Some("agent") {
                return id;
            }
        }
        assert!(Instant::now() < deadline, "no agent container within 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The instance name of the run's agent container.
async fn instance_of(docker: &bollard::Docker, label: &str) -> String {
    let agent = world::role_container(docker, label, "agent").await;
    agent
        .config
        .and_then(|c| c.labels)
        .and_then(|l| l.get("io.claude-bottle.instance").cloned())
        .expect("the agent names its instance")
}

/// Whether `text` holds `length` hex digits in a row: a label the agent
/// made of its data.
fn has_hex_run(text: &str, length: usize) -> bool {
    text.as_bytes()
        .split(|b| !b.is_ascii_hexdigit())
        .any(|run| run.len() >= length)
}

/// Waits until the session's script reaches checkpoint `n`; when the
/// agent stops first, says how, and what the screen shows.
async fn checkpoint(docker: &bollard::Docker, agent: &str, terminal: &Terminal, n: u8) {
    use bollard::models::ContainerStateStatusEnum as Status;
    let deadline = Instant::now() + Duration::from_secs(300);
    let marker = format!("/tmp/cb-at-{n}");
    loop {
        let state = docker
            .inspect_container(
                agent,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .map(|i| i.state);
        // Found once created: it starts beside the gate, a moment later.
        let status = state.as_ref().ok().and_then(|s| s.as_ref()?.status);
        assert!(
            matches!(status, Some(Status::CREATED | Status::RUNNING)),
            "the agent stopped before checkpoint {n}: {state:#?}\nthe screen:\n{}",
            terminal.screen()
        );
        if status == Some(Status::RUNNING)
            && exec(docker, agent, &["test", "-e", &marker], &[]).await.0 == 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session never reached checkpoint {n}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
