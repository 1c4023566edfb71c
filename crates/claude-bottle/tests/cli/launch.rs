//! Real bottles on the real engine, with the fake claude: what claude sees,
//! how its container is hardened, and that nothing is left on any way out.

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use fixtures::report::frames;
use serde_json::{Value, json};

use crate::support::instance::{HOST_VALUE, LITERAL_VALUE, OAUTH_VALUE, label_filter};
use crate::support::{
    BASE_IMAGE, Output, Service, Session, TEST_LABEL, TestNetwork, agent_and_gate, bottle_sandbox,
    connect, containers_gone, engine_relay::EngineRelay, fixture_json, has_runsc, is_podman,
    kill_9, leftovers, run_label, running_agent, with_fake_claude,
};

#[track_caller]
fn report(out: &Output) -> Value {
    frames(&out.stdout, "report")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no report in {out:?}"))
}

#[tokio::test]
async fn claude_runs_as_the_images_user_with_everything_it_should_see() {
    let Some(docker) = with_fake_claude("session contents").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("contents", &[]);
    let out = sandbox.run(&["start", "a", "--yes", "--", "--model", "mock-model"]);
    assert_eq!(out.code, 0, "{out:?}");
    let report = report(&out);
    assert_eq!(report["user"], "agent");
    assert_eq!(report["uid"], 1000);
    assert_eq!(report["cwd"], "/workspace");
    assert_eq!(
        report["argv"],
        json!([
            "claude",
            "--dangerously-skip-permissions",
            "--append-system-prompt-file",
            "/home/agent/.claude-bottle/prompt.md",
            "--model",
            "mock-model"
        ])
    );
    let home = report["files"]["home"].as_array().unwrap();
    for file in [
        ".claude-bottle/prompt.md",
        ".claude/skills/tdd/SKILL.md",
        ".claude.json",
        ".claude/settings.json",
    ] {
        assert!(home.contains(&json!(file)), "{file} not in {home:?}");
    }
    let env = &report["env"];
    assert_eq!(env["NAME"], LITERAL_VALUE);
    assert_eq!(env["TOKEN"], HOST_VALUE);
    assert_eq!(env["CLAUDE_CODE_OAUTH_TOKEN"], OAUTH_VALUE);
    // The only way out is the gate, and claude is told so.
    for proxy in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        assert_eq!(env[proxy], "http://gate:3128", "{proxy}");
    }
    for unset in ["HOST_TOKEN", "CLAUDE_BOTTLE_OAUTH_TOKEN"] {
        assert!(env.get(unset).is_none(), "{unset} reached claude: {env}");
    }
    assert_eq!(report["tty"], json!({ "stdin": false, "stdout": false }));
    // The tool's own messages stay on stderr; claude's output is stdout.
    assert!(
        out.stderr
            .contains("Everything in the bottle is gone when it exits.")
    );
    assert!(!out.stdout.contains("Everything in the bottle"));
    // A fresh home holds nothing dead: a start sweeps nothing, least of all
    // its own stage.
    assert!(!out.stderr.contains("swept"), "{}", out.stderr);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn start_exits_with_claudes_exit_code_and_leaves_nothing() {
    let Some(docker) = with_fake_claude("exit code").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("exit-code", &[("FAKE_CLAUDE_EXIT", "7")]);
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 7, "{out:?}");
    assert_eq!(frames(&out.stdout, "exit"), [json!({ "code": 7 })]);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
    assert!(sandbox.stage_dirs().is_empty(), "the stage was left");
}

/// Checks a running instance's agent container, then ends the session and
/// checks that none of the instance's resources is left.
async fn hardened_lifecycle(runtime: &str) {
    let Some(docker) = with_fake_claude("hardened lifecycle").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("hardened", &[("FAKE_CLAUDE_READ_STDIN", "1")]);
    let sandbox = sandbox
        .env("CLAUDE_BOTTLE_RUNTIME", runtime)
        .env("CLAUDE_BOTTLE_MEMORY", "768m")
        .env("CLAUDE_BOTTLE_PIDS", "321")
        .env("CLAUDE_BOTTLE_CPUS", "1.5");
    let podman = is_podman(&docker).await;
    let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    let agent = running_agent(&docker, &label, &session).await;
    let (containers, networks) = agent_and_gate(&docker, &label).await;
    assert_eq!(
        networks.len(),
        if podman { 1 } else { 2 },
        "the gate's way out, and the internal network unless the agent has none (Podman)"
    );

    let gate = gate_is_bounded(&docker, &containers, podman).await;
    assert_agent_hardened(&agent, runtime, gate, podman);
    let config = agent.config.clone().unwrap();
    assert_eq!(config.user.as_deref(), Some("agent"));
    let labels = config.labels.clone().unwrap();
    let instance = agent
        .name
        .clone()
        .unwrap()
        .trim_start_matches('/')
        .trim_end_matches("-agent")
        .to_owned();
    assert!(instance.starts_with("claude-bottle-a-"), "{instance}");
    for (key, value) in [
        ("io.claude-bottle.managed", "true"),
        ("io.claude-bottle.instance", instance.as_str()),
        ("io.claude-bottle.agent", "a"),
        ("io.claude-bottle.bottle", "dev"),
        ("io.claude-bottle.role", "agent"),
        ("io.claude-bottle.runtime", runtime),
        (
            "io.claude-bottle.owner.pid",
            &session.child.id().to_string(),
        ),
        (TEST_LABEL, label.as_str()),
    ] {
        assert_eq!(
            labels.get(key).map(String::as_str),
            Some(value),
            "label {key}: {labels:?}"
        );
    }
    for key in [
        "io.claude-bottle.created",
        "io.claude-bottle.owner.boot-id",
        "io.claude-bottle.owner.start-time",
        "io.claude-bottle.owner.host",
    ] {
        assert!(
            labels.get(key).is_some_and(|v| !v.is_empty()),
            "label {key}: {labels:?}"
        );
    }
    // The values reached claude (the report) but no container's config.
    let report = frames(&session.stdout.lock().unwrap(), "report")[0].clone();
    assert_eq!(report["env"]["TOKEN"], HOST_VALUE);
    for id in &containers {
        let inspect = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .unwrap();
        crate::secrets::assert_never_shown(
            &serde_json::to_string(&inspect).unwrap(),
            &[HOST_VALUE, OAUTH_VALUE, LITERAL_VALUE],
        );
    }

    let out = session.finish("bye\n");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        frames(&out.stdout, "stdin")[0]["text"],
        "bye\n",
        "stdin reached claude"
    );
    let (left_containers, left_networks) = leftovers(&docker, &label).await;
    assert!(
        left_containers.iter().all(|id| !containers.contains(id)),
        "containers left: {left_containers:?}"
    );
    assert!(
        left_networks.iter().all(|id| !networks.contains(id)),
        "networks left: {left_networks:?}"
    );
    assert_eq!((left_containers, left_networks), (vec![], vec![]));
}

/// The agent's container: no capabilities or new privileges, an init, the
/// limits the sandbox set, no IPv6, and the gate at `gate` by address; on
/// Podman, no network at all.
fn assert_agent_hardened(
    agent: &bollard::models::ContainerInspectResponse,
    runtime: &str,
    gate: String,
    podman: bool,
) {
    let host = &agent.host_config.clone().unwrap();
    if podman {
        // Podman gives back the capabilities it dropped, one by one, and
        // its own security options: the first process shows what holds.
        let pid = agent.state.as_ref().and_then(|s| s.pid).unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert!(
                status.contains(&format!("{field}:\t0000000000000000")),
                "{field}: {status}"
            );
        }
        assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    } else {
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_owned()])
        );
    }
    assert_eq!(host.init, Some(true));
    assert_eq!(host.memory, Some(768 << 20));
    assert_eq!(host.pids_limit, Some(321));
    assert_eq!(host.nano_cpus, Some(1_500_000_000));
    if podman {
        // Podman's record of the runtime says `oci`; the label says which.
        assert_eq!(host.network_mode.as_deref(), Some("none"));
    } else {
        assert_eq!(host.runtime.as_deref(), Some(runtime));
    }
    assert_no_ipv6(agent, podman);
    // The gate by address, and the engine's resolver pointed at it, where
    // nothing answers DNS.
    assert_eq!(host.extra_hosts, Some(vec![format!("gate:{gate}")]));
    assert_eq!(host.dns, Some(vec![gate]));
}

/// IPv6 is off in a container, whatever the engine's default. Podman's
/// Docker API gives no sysctls back: there the container's network
/// namespace shows it, which has no IPv6 address but loopback's.
fn assert_no_ipv6(container: &bollard::models::ContainerInspectResponse, podman: bool) {
    if podman {
        let pid = container.state.as_ref().and_then(|s| s.pid).unwrap();
        let addresses = std::fs::read_to_string(format!("/proc/{pid}/net/if_inet6")).unwrap();
        assert!(
            addresses.lines().all(|line| line.ends_with(" lo")),
            "{addresses}"
        );
        return;
    }
    let host = container.host_config.clone().unwrap();
    let sysctls = host.sysctls.clone().unwrap_or_default();
    for scope in ["all", "default"] {
        let key = format!("net.ipv6.conf.{scope}.disable_ipv6");
        assert_eq!(
            sysctls.get(&key).map(String::as_str),
            Some("1"),
            "{sysctls:?}"
        );
    }
}

/// The gate among `containers` has its memory, CPU and log bounded, and
/// no IPv6; returns its address on the bottle's network, or the agent's
/// loopback where there is none (Podman).
async fn gate_is_bounded(docker: &bollard::Docker, containers: &[String], podman: bool) -> String {
    for id in containers {
        let inspect = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .unwrap();
        let labels = inspect.config.clone().unwrap().labels.unwrap_or_default();
        if labels.get("io.claude-bottle.role").map(String::as_str) != Some("gate") {
            continue;
        }
        let host = inspect.host_config.clone().unwrap();
        assert_eq!(host.nano_cpus, Some(1_000_000_000), "at most one CPU");
        assert_eq!(host.memory, Some(256 << 20));
        let log = host.log_config.clone().unwrap();
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        // Podman's Docker API does not give the options back (it keeps
        // `max-size` and has no `max-file`).
        if !podman {
            let options = log.config.unwrap();
            assert_eq!(options.get("max-size").map(String::as_str), Some("8m"));
            assert_eq!(options.get("max-file").map(String::as_str), Some("2"));
        }
        assert_no_ipv6(&inspect, podman);
        let networks = inspect.network_settings.unwrap().networks.unwrap();
        return networks
            .into_iter()
            .find(|(name, _)| name.ends_with("-internal"))
            .map_or_else(|| "127.0.0.1".to_owned(), |(_, e)| e.ip_address.unwrap());
    }
    panic!("no gate among {containers:?}");
}

#[tokio::test]
async fn a_session_is_hardened_labelled_and_leaves_nothing_under_runc() {
    hardened_lifecycle("runc").await;
}

#[tokio::test]
async fn a_session_is_hardened_labelled_and_leaves_nothing_under_gvisor() {
    let Some(docker) = connect("gvisor lifecycle").await else {
        return;
    };
    if has_runsc(&docker).await {
        hardened_lifecycle("runsc").await;
    }
}

#[tokio::test]
async fn a_launch_failing_half_way_leaves_nothing() {
    let Some(docker) = with_fake_claude("failure half-way").await else {
        return;
    };
    // The engine refuses a 1 MiB memory limit when the agent container is
    // created (Docker), or when it is readied to run (Podman, as the dead
    // man's switch attaches): after the probe, the networks and the gate.
    let (sandbox, label) = bottle_sandbox("half-way", &[]);
    let sandbox = sandbox.env("CLAUDE_BOTTLE_MEMORY", "1m");
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    let refused = if crate::support::is_podman(&docker).await {
        "cannot attach to the agent container"
    } else {
        "cannot create the agent container"
    };
    assert!(out.stderr.contains(refused), "{out:?}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
    assert!(sandbox.stage_dirs().is_empty(), "the stage was left");
}

#[tokio::test]
async fn images_that_break_the_contract_are_refused_clearly() {
    let Some(docker) = with_fake_claude("bad images").await else {
        return;
    };
    for (image, expected) in [
        (BASE_IMAGE, "runs as root"),
        ("claude-bottle-test/no-claude", "lacks `claude`"),
        ("claude-bottle-test/no-tar", "lacks `tar`"),
        ("claude-bottle-test/not-there", "is not on the engine"),
    ] {
        let (sandbox, label) = bottle_sandbox("bad-image", &[]);
        let out = sandbox
            .env("CLAUDE_BOTTLE_IMAGE", image)
            .run(&["start", "a", "--yes"]);
        assert_eq!(out.code, 125, "{image}: {out:?}");
        assert!(
            out.stderr.contains(expected),
            "{image}: expected `{expected}` in {out:?}"
        );
        assert_eq!(
            leftovers(&docker, &label).await,
            (vec![], vec![]),
            "{image}"
        );
    }
}

#[tokio::test]
async fn kill_9_of_the_cli_takes_its_containers_down() {
    let Some(docker) = with_fake_claude("kill -9").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("kill9", &[("FAKE_CLAUDE_READ_STDIN", "1")]);
    let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    running_agent(&docker, &label, &session).await;
    kill_9(session, &docker, &label, "the agent container").await;
    // Networks do not remove themselves; sweeping them is `cleanup`'s job.
    for network in leftovers(&docker, &label).await.1 {
        docker.remove_network(&network).await.unwrap();
    }
}

#[tokio::test]
async fn a_dropped_connection_to_the_engine_tears_the_bottle_down_without_the_cli() {
    let Some(docker) = with_fake_claude("dropped connection").await else {
        return;
    };
    // Over ssh the connections are ssh processes; otherwise a relay that
    // can drop them stands in front of the engine (bytes only, under TLS).
    let over_ssh = std::env::var("DOCKER_HOST").is_ok_and(|h| h.starts_with("ssh://"));
    let relay = EngineRelay::start();
    let (sandbox, label) = bottle_sandbox("dropped", &[("FAKE_CLAUDE_READ_STDIN", "1")]);
    let sandbox = if over_ssh {
        sandbox
    } else {
        sandbox.env("DOCKER_HOST", &relay.url)
    };
    let mut session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    running_agent(&docker, &label, &session).await;
    // Frozen, the CLI tears nothing down: the engine must, on its own.
    session.signal("STOP");
    if over_ssh {
        let killed = std::process::Command::new("pkill")
            .args(["-KILL", "-P", &session.child.id().to_string(), "-x", "ssh"])
            .status()
            .unwrap();
        assert!(killed.success(), "the CLI has no ssh connection to kill");
    } else {
        relay.cut();
    }
    containers_gone(
        &docker,
        &label,
        "the bottle outlived its dropped connection",
    )
    .await;
    session.signal("CONT");
    let ended = session.child.wait().unwrap();
    assert!(!ended.success(), "{ended:?}");
    let out = sandbox.run(&["cleanup", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn two_instances_of_one_agent_run_at_once_and_both_clean_up() {
    let Some(docker) = with_fake_claude("two instances").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("two", &[("FAKE_CLAUDE_READ_STDIN", "1")]);
    let first = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    let second = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let names = loop {
        let agents = docker
            .list_containers(Some(ListContainersOptions {
                filters: Some(label_filter(
                    &label,
                    Some("io.claude-bottle.role=agent".to_owned()),
                )),
                ..Default::default()
            }))
            .await
            .unwrap();
        let reported = [&first, &second]
            .iter()
            .all(|s| !frames(&s.stdout.lock().unwrap(), "report").is_empty());
        if agents.len() == 2 && reported {
            break agents
                .into_iter()
                .flat_map(|c| c.names.unwrap_or_default())
                .collect::<Vec<_>>();
        }
        assert!(Instant::now() < deadline, "both sessions never ran at once");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(names.len(), 2);
    assert_ne!(names[0], names[1]);
    let (a, b) = (first.finish("one\n"), second.finish("two\n"));
    assert_eq!((a.code, b.code), (0, 0), "{a:?} {b:?}");
    assert_eq!(frames(&a.stdout, "stdin")[0]["text"], "one\n");
    assert_eq!(frames(&b.stdout, "stdin")[0]["text"], "two\n");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

/// A listener on all of the host's addresses that answers HTTP and counts
/// who reached it.
fn host_listener() -> (u16, Arc<AtomicUsize>) {
    // `[::]` takes IPv4 too (the control below proves it).
    let listener = TcpListener::bind("[::]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\nhost\n");
        }
    });
    (port, hits)
}

fn host_addresses() -> Vec<String> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .map(ToOwned::to_owned)
        .collect()
}

/// One IPv6 address of the host: its interface, and whether its scope is
/// global.
struct HostIpv6 {
    interface: String,
    address: std::net::Ipv6Addr,
    global: bool,
}

impl HostIpv6 {
    /// Every IPv6 address of the host but loopback, from `ip -6 -o addr`.
    fn all() -> Vec<Self> {
        let out = std::process::Command::new("ip")
            .args(["-6", "-o", "addr", "show"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let address = fields.get(3)?.split('/').next()?.parse().ok()?;
                Some(Self {
                    // A veth is named `vethX@ifN`; its zone is `vethX`.
                    interface: fields[1].split('@').next()?.to_owned(),
                    address,
                    global: fields.get(5) == Some(&"global"),
                })
            })
            .filter(|a| !a.address.is_loopback())
            .collect()
    }

    /// As a URL authority; a link-local address with the zone `interface`.
    fn authority(&self, interface: &str, port: u16) -> String {
        let address = self.address;
        if address.is_unicast_link_local() {
            format!("[{address}%25{interface}]:{port}")
        } else {
            format!("[{address}]:{port}")
        }
    }
}

#[tokio::test]
async fn no_ipv6_address_of_the_host_is_reachable_from_inside_a_bottle() {
    let Some(docker) = with_fake_claude("ipv6 isolation").await else {
        return;
    };
    let (port, hits) = host_listener();
    let (sandbox, label) = bottle_sandbox("ipv6", &[("FAKE_CLAUDE_READ_STDIN", "1")]);
    let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    let agent = running_agent(&docker, &label, &session).await;
    // Taken now: the bottle's own bridges have their link-local addresses.
    // From inside, a link-local one is tried through the bottle's `eth0`.
    let addresses = HostIpv6::all();
    let targets: Vec<String> = addresses
        .iter()
        .map(|a| a.authority("eth0", port))
        .collect();
    let script = format!(
        "for a in {}; do \
           if curl -g -s --noproxy '*' --max-time 2 \"http://$a/\" >/dev/null; then echo \"reached $a\"; else echo \"blocked $a\"; fi; \
         done",
        targets.join(" ")
    );
    let (_, out) = crate::support::exec(
        &docker,
        agent.id.as_deref().unwrap(),
        &["sh", "-c", &script],
        &[],
    )
    .await;
    assert_eq!(
        out.lines().filter(|l| l.starts_with("blocked ")).count(),
        targets.len(),
        "{out}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the host listener was reached: {out}"
    );
    assert_eq!(session.finish("").code, 0);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
    // The control: from the host, each of those addresses reaches the
    // listener (a link-local one through its own interface).
    let mut reached = 0;
    for host in addresses {
        if !host.global && !host.address.is_unicast_link_local() {
            continue;
        }
        let url = format!("http://{}/", host.authority(&host.interface, port));
        let ok = std::process::Command::new("curl")
            .args(["-g", "-s", "--noproxy", "*", "--max-time", "2", &url])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&ok.stdout) == "host\n" {
            reached += 1;
        }
    }
    assert!(
        targets.is_empty() || reached > 0,
        "the control reached no IPv6 address of the host"
    );
    assert_eq!(hits.load(Ordering::SeqCst), reached);
}

#[tokio::test]
async fn from_inside_a_bottle_there_is_no_way_out_and_the_host_is_unreachable() {
    let Some(docker) = with_fake_claude("isolation").await else {
        return;
    };
    // "Elsewhere": a sink on an ordinary network, and a listener on every
    // address of the host.
    let outside_label = run_label("isolation-outside");
    let outside = TestNetwork::create_routed(&docker, &outside_label).await;
    let (_sink, sink_address) = Service::sink(&outside, "sink")
        .start(&docker, &outside_label)
        .await;
    let sink_records = || -> Vec<Value> { fixture_json(&sink_address, 9999, "/_records") };
    let (port, hits) = host_listener();
    let hosts = host_addresses();
    let docker0 = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "docker0"])
        .output()
        .unwrap();
    let docker0 = String::from_utf8(docker0.stdout).unwrap();
    let docker0 = docker0
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.split('/').next())
        .unwrap()
        .to_owned();
    assert!(
        hosts.contains(&docker0),
        "docker0's {docker0} not among the host's addresses {hosts:?}"
    );

    // One line: manifest values are single lines. The gateway of the
    // bottle's own network is its address with a last .1.
    let script = format!(
        "gw=$(hostname -i | cut -d' ' -f1 | sed 's/[.][0-9]*$/.1/'); \
         for a in $gw:{port} {hosts} {sink_address}:80; do \
           if curl -s --noproxy '*' --max-time 2 http://$a/ >/dev/null; then echo \"reached $a\"; else echo \"blocked $a\"; fi; \
         done; \
         if timeout 5 getent hosts deb.debian.org >/dev/null; then echo 'dns resolves'; else echo 'no dns'; fi",
        hosts = hosts
            .iter()
            .map(|h| format!("{h}:{port}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    let (sandbox, label) = bottle_sandbox("isolation", &[("FAKE_CLAUDE_RUN", &script)]);
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        frames(&out.stdout, "ran"),
        [json!({ "code": 0 })],
        "{}",
        out.stdout
    );
    let said = |prefix: &str| out.stdout.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(said("reached "), 0, "{}", out.stdout);
    assert_eq!(said("blocked "), hosts.len() + 2, "{}", out.stdout);
    assert_eq!(said("no dns"), 1, "{}", out.stdout);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the host listener was reached from the bottle"
    );
    assert!(
        sink_records().is_empty(),
        "the sink was reached from the bottle"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));

    // The control: an ordinary container on the ordinary network reaches
    // the host listener at its gateway, and the sink.
    let (control, _) = Service::idle(BASE_IMAGE, &outside, "control")
        .start(&docker, &outside_label)
        .await;
    // An engine on another machine has another host: its gateway does not
    // lead to this machine's listener, so only the sink is the control.
    let local = crate::support::engine::networks_are_local();
    let check = if local {
        format!(
            "gw=$(hostname -i | cut -d' ' -f1 | sed 's/[.][0-9]*$/.1/'); curl -s --max-time 5 http://$gw:{port}/ && curl -s --max-time 5 http://sink/"
        )
    } else {
        "curl -s --max-time 5 http://sink/".to_owned()
    };
    let (code, output) =
        crate::support::exec(&docker, &control.id, &["sh", "-c", &check], &[]).await;
    assert_eq!(
        (code, output.as_str()),
        (0, if local { "host\nsink\n" } else { "sink\n" }),
        "the control reached neither"
    );
    assert_eq!(hits.load(Ordering::SeqCst), usize::from(local));
    assert_eq!(sink_records().len(), 1);
}

#[tokio::test]
async fn an_image_without_a_workspace_gets_one_owned_by_its_user() {
    let Some(docker) = with_fake_claude("no workspace").await else {
        return;
    };
    let probe = "touch /workspace/made-here && stat -c '%U %a' /workspace";
    let (sandbox, label) = bottle_sandbox("no-workspace", &[("FAKE_CLAUDE_RUN", probe)]);
    let out = sandbox
        .env("CLAUDE_BOTTLE_IMAGE", "claude-bottle-test/no-workspace")
        .run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(report(&out)["user"], "worker");
    assert_eq!(report(&out)["cwd"], "/workspace");
    assert!(
        out.stdout.lines().any(|l| l == "worker 755"),
        "{}",
        out.stdout
    );
    assert_eq!(frames(&out.stdout, "ran"), [json!({ "code": 0 })]);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

/// A signal to the CLI during a session without a terminal tears the
/// bottle down and exits 128 + the signal's number.
async fn signal_during_session(signal: &str, code: i32) {
    let Some(docker) = with_fake_claude("signal during a session").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("signal", &[("FAKE_CLAUDE_READ_STDIN", "1")]);
    let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    running_agent(&docker, &label, &session).await;
    let (containers, networks) = leftovers(&docker, &label).await;
    session.signal(signal);
    let out = session.wait();
    assert_eq!(out.code, code, "{out:?}");
    let (left_containers, left_networks) = leftovers(&docker, &label).await;
    assert!(
        left_containers.iter().all(|c| !containers.contains(c)),
        "{signal}: containers left"
    );
    assert!(
        left_networks.iter().all(|n| !networks.contains(n)),
        "{signal}: networks left"
    );
    assert!(
        sandbox.stage_dirs().is_empty(),
        "{signal}: the stage was left"
    );
}

#[tokio::test]
async fn sigint_during_a_session_without_a_terminal_tears_down_and_exits_130() {
    signal_during_session("INT", 130).await;
}

#[tokio::test]
async fn sigterm_during_a_session_tears_down_and_exits_143() {
    signal_during_session("TERM", 143).await;
}

#[tokio::test]
async fn sighup_during_a_session_tears_down_and_exits_129() {
    signal_during_session("HUP", 129).await;
}
