//! SSH from inside a bottle to real `sshd` fixtures on a network the gate
//! joins: the agent reaches exactly its declared hosts, through the gate,
//! with keys it never holds. Fresh key pairs are made for each test.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::InspectContainerOptions;
use fixtures::report::frames;
use serde_json::{Value, json};

use crate::support::{
    BASE_IMAGE, FAKE_CLAUDE_IMAGE, GATE_IMAGE, SSHD_IMAGE, Sandbox, Service, Session,
    SshHostFixture, TEST_LABEL, Terminal, TestImage, TestNetwork, copy_keys, engine_with, entry,
    fake_claude_bottle, files_holding, key_lines, leftovers, run_label, running_agent, runtimes,
    wait_for_instance,
};

/// A bottle whose agent runs `script` with the fake claude, then waits for
/// its stdin to end; `ssh` are the bottle's ssh entries.
fn ssh_sandbox(label: &str, network: &TestNetwork, ssh: &Value, script: &str) -> Sandbox {
    ssh_sandbox_with(
        label,
        network,
        ssh,
        &json!({ "FAKE_CLAUDE_RUN": script, "FAKE_CLAUDE_READ_STDIN": "1" }),
    )
}

fn ssh_sandbox_with(label: &str, network: &TestNetwork, ssh: &Value, env: &Value) -> Sandbox {
    let bottle = json!({ "ssh": ssh, "env": env, "egress": { "builtin": false } });
    fake_claude_bottle(label, &bottle).env("CLAUDE_BOTTLE_GATE_NETWORKS", &network.name)
}

/// Where the private key's lines are found while the session runs: the
/// agent container's files (searched as root through the engine), the
/// configuration of every container of the instance, and the gate's log.
async fn key_found_while_running(
    docker: &Docker,
    label: &str,
    sandbox: &Sandbox,
    session: &Session,
    agent: &str,
    lines: &[String],
) -> Vec<String> {
    let mut found = Vec::new();
    let files = files_holding(docker, agent, lines).await;
    if !files.is_empty() {
        found.push(format!("files: {files}"));
    }
    let (containers, _) = leftovers(docker, label).await;
    for id in &containers {
        let inspect = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .unwrap();
        let text = serde_json::to_string(&inspect).unwrap();
        if lines.iter().any(|l| text.contains(l.as_str())) {
            found.push(format!("docker inspect {id}"));
        }
    }
    let instance = wait_for_instance(session).await;
    let log = sandbox.run(&["logs", &instance]);
    if lines.iter().any(|l| log.all().contains(l.as_str())) {
        found.push("the gate's log".to_owned());
    }
    found
}

/// Whether `text` has `line` as a whole line (the report quotes the
/// script, markers included).
fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l.trim_end() == line)
}

#[tokio::test]
async fn the_agent_clones_and_pushes_over_ssh_and_the_key_never_enters_the_bottle() {
    let Some(docker) = engine_with("ssh clone and push", &[FAKE_CLAUDE_IMAGE, SSHD_IMAGE]).await
    else {
        return;
    };
    for runtime in runtimes(&docker).await {
        let label = run_label(&format!("ssh-{runtime}"));
        let network = TestNetwork::create(&docker, &format!("{label}-outside")).await;
        let probe = Sandbox::new();
        let public = probe.ssh_key("forge", "");
        let forge = SshHostFixture::start(
            &docker,
            &format!("{label}-outside"),
            &network,
            "forge-host",
            22,
            &[&public],
        )
        .await;
        let script = "ssh forge true && echo ssh-ok-51 \
            && git clone -q forge:repo.git /workspace/repo && cd /workspace/repo \
            && git -c user.name=Agent -c user.email=agent@bottle commit -q --allow-empty -m from-the-bottle-9c \
            && git push -q origin HEAD:main && echo push-ok-27 \
            && ssh-add -L";
        let sandbox = ssh_sandbox(
            &label,
            &network,
            &json!([entry(
                "forge",
                "forge-host",
                22,
                "forge",
                Some(&forge.host_key)
            )]),
            script,
        )
        .env("CLAUDE_BOTTLE_RUNTIME", runtime);
        copy_keys(&probe, &sandbox, &["forge", "forge.pub"]);
        let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
        let agent = running_agent(&docker, &label, &session).await;
        let lines = key_lines(&sandbox, "forge");
        let agent = agent.id.unwrap();
        let held =
            key_found_while_running(&docker, &label, &sandbox, &session, &agent, &lines).await;
        assert_eq!(held, Vec::<String>::new(), "{runtime}: the key is in these");
        let out = session.finish("");
        assert_eq!(out.code, 0, "{runtime}: {out:?}");
        assert!(has_line(&out.stdout, "ssh-ok-51"), "{runtime}: {out:?}");
        assert!(has_line(&out.stdout, "push-ok-27"), "{runtime}: {out:?}");
        // `ssh-add -L` lists exactly the declared key's public half.
        let listed: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("ssh-ed25519 "))
            .collect();
        let declared = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(listed.len(), 1, "{runtime}: {out:?}");
        assert!(listed[0].starts_with(&declared), "{runtime}: {listed:?}");
        assert!(
            out.stderr.contains("ssh: "),
            "{runtime}: no ssh summary: {out:?}"
        );
        assert!(
            forge.commits(&docker).await.contains("from-the-bottle-9c"),
            "{runtime}: the push did not arrive"
        );
        for line in &lines {
            assert!(!out.stdout.contains(line.as_str()) && !out.stderr.contains(line.as_str()));
        }
        // Nor anything claude-bottle wrote under HOME (stages, downloads).
        let written = sandbox.home.join(".cache/claude-bottle");
        let (_, grep) = std::process::Command::new("grep")
            .args(["-rlF", &lines[1]])
            .arg(&written)
            .output()
            .map(|o| (o.status, String::from_utf8_lossy(&o.stdout).into_owned()))
            .unwrap();
        assert_eq!(
            grep, "",
            "{runtime}: claude-bottle wrote the key under HOME"
        );
        let report = &frames(&out.stdout, "report")[0];
        assert!(!report.to_string().contains(lines[1].as_str()), "{runtime}");
        assert_eq!(
            leftovers(&docker, &label).await,
            (vec![], vec![]),
            "{runtime}"
        );
    }
}

#[tokio::test]
async fn a_key_signs_only_for_its_own_host_and_the_gate_admits_only_declared_hosts() {
    let Some(docker) = engine_with("ssh binding", &[FAKE_CLAUDE_IMAGE, SSHD_IMAGE]).await else {
        return;
    };
    let label = run_label("ssh-binding");
    let outside = format!("{label}-outside");
    let network = TestNetwork::create(&docker, &outside).await;
    let probe = Sandbox::new();
    let (ka, kb) = (probe.ssh_key("a", ""), probe.ssh_key("b", ""));
    // Both hosts take both keys: only the holder keeps kA to host A.
    let host_a =
        SshHostFixture::start(&docker, &outside, &network, "host-a", 22, &[&ka, &kb]).await;
    let host_b =
        SshHostFixture::start(&docker, &outside, &network, "host-b", 22, &[&ka, &kb]).await;
    let wrong = SshHostFixture::start(&docker, &outside, &network, "host-c", 22, &[&ka]).await;
    // kA offered alone to host B: only the holder stands in the way.
    let alone = "ssh -F none -o IdentityAgent=$SSH_AUTH_SOCK -o IdentitiesOnly=yes \
        -o UserKnownHostsFile=~/.ssh/known_hosts -o StrictHostKeyChecking=yes \
        -o ProxyCommand='~/.claude-bottle/bin/claude-bottle connect --proxy gate:3128 %h %p'";
    let script = format!(
        "{alone} -o IdentityFile=~/.ssh/claude-bottle-a.pub git@host-b true && echo ka-to-b-worked; \
         ssh b true && echo kb-to-b-ok; \
         ssh a true && echo ka-to-a-ok; \
         ssh c true 2>&1 | grep -o 'Host key verification failed'; \
         {alone} -o IdentityFile=~/.ssh/claude-bottle-a.pub -p 2222 git@host-a true 2>&1 | grep -o 'the gate refused [^ ]*'; \
         {alone} -o IdentityFile=~/.ssh/claude-bottle-a.pub git@undeclared.test true 2>&1 | grep -o 'the gate refused [^ ]*'"
    );
    let sandbox = ssh_sandbox(
        &label,
        &network,
        &json!([
            entry("a", "host-a", 22, "a", Some(&host_a.host_key)),
            entry("b", "host-b", 22, "b", Some(&host_b.host_key)),
            // Pinned to A's key: host C answers with its own.
            entry("c", "host-c", 22, "a", Some(&host_a.host_key)),
        ]),
        &script,
    );
    copy_keys(&probe, &sandbox, &["a", "a.pub", "b", "b.pub"]);
    let session = Session::spawn(&sandbox, &["start", "a", "--yes"]);
    let instance = wait_for_instance(&session).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !session
        .stdout
        .lock()
        .unwrap()
        .contains("the gate refused undeclared.test")
    {
        assert!(
            Instant::now() < deadline,
            "the script never ended: {:?}",
            session.stdout
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // `logs` shows the holder's refusal beside the gate's decisions.
    let logs = sandbox.run(&["logs", &instance]);
    assert_eq!(logs.code, 0, "{logs:?}");
    let refusal = logs.stdout.lines().any(|l| {
        let event: Value = serde_json::from_str(l).unwrap_or_default();
        event["event"] == "ssh" && event["verdict"] == "refuse" && event["key_for"] == "a,c"
    });
    assert!(refusal, "no ssh refusal in the log: {logs:?}");
    let out = session.finish("");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !has_line(&out.stdout, "ka-to-b-worked"),
        "kA logged in to B: {out:?}"
    );
    assert!(has_line(&out.stdout, "kb-to-b-ok"), "{out:?}");
    assert!(has_line(&out.stdout, "ka-to-a-ok"), "{out:?}");
    assert!(
        out.stdout.contains("Host key verification failed"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("the gate refused host-a:2222:"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("the gate refused undeclared.test:22:"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("the key for a,c: a session bound to another host"),
        "the refusal is not in the summary: {out:?}"
    );
    drop(wrong);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn a_key_logs_in_only_as_the_declared_user_and_signs_nothing_but_logins() {
    let Some(docker) = engine_with("ssh user", &[FAKE_CLAUDE_IMAGE, SSHD_IMAGE]).await else {
        return;
    };
    let label = run_label("ssh-user");
    let outside = format!("{label}-outside");
    let network = TestNetwork::create(&docker, &outside).await;
    let probe = Sandbox::new();
    let (ka, ku) = (probe.ssh_key("a", ""), probe.ssh_key("u", ""));
    // The host takes both keys for `git` and for `other`.
    let host = SshHostFixture::start(&docker, &outside, &network, "host-a", 22, &[&ka, &ku]).await;
    let sign = |key: &str, what: &str| {
        format!(
            "printf data >/tmp/{what}; ssh-keygen -Y sign -f ~/.ssh/claude-bottle-{key}.pub -n git /tmp/{what} \
             >/dev/null 2>&1; echo {what}=$?; test -e /tmp/{what}.sig && echo {what}-signature-made"
        )
    };
    let script = format!(
        "ssh a true && echo as-git-ok; \
         ssh -o User=other a true 2>/dev/null && echo a-as-other-worked; \
         ssh other@a true 2>/dev/null && echo other-at-a-worked; \
         ssh u true && echo unpinned-as-git-ok; \
         ssh -l other u true 2>/dev/null && echo u-as-other-worked; \
         {}; {}",
        sign("a", "sshsig-pinned"),
        sign("u", "sshsig-unpinned"),
    );
    let sandbox = ssh_sandbox_with(
        &label,
        &network,
        &json!([
            entry("a", "host-a", 22, "a", Some(&host.host_key)),
            entry("u", "host-a", 22, "u", None),
        ]),
        &json!({ "FAKE_CLAUDE_RUN": script }),
    );
    copy_keys(&probe, &sandbox, &["a", "a.pub", "u", "u.pub"]);
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(has_line(&out.stdout, "as-git-ok"), "{out:?}");
    assert!(has_line(&out.stdout, "unpinned-as-git-ok"), "{out:?}");
    for worked in [
        "a-as-other-worked",
        "other-at-a-worked",
        "u-as-other-worked",
        "sshsig-pinned-signature-made",
        "sshsig-unpinned-signature-made",
    ] {
        assert!(!has_line(&out.stdout, worked), "{worked}: {out:?}");
    }
    assert_ne!(crate::support::value_of(&out.stdout, "sshsig-pinned"), "0");
    assert_ne!(
        crate::support::value_of(&out.stdout, "sshsig-unpinned"),
        "0"
    );
    for reason in [
        "a login as another user than the one declared",
        "not a login request with this key",
    ] {
        assert!(out.stderr.contains(reason), "{reason}: {out:?}");
    }
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn an_image_without_ssh_is_refused_clearly_when_the_bottle_has_ssh_hosts() {
    let Some(docker) = engine_with("ssh without ssh", &[FAKE_CLAUDE_IMAGE]).await else {
        return;
    };
    let label = run_label("no-ssh");
    let image = TestImage::build(
        &docker,
        &format!("claude-bottle-test/no-ssh:{label}"),
        &format!("FROM {FAKE_CLAUDE_IMAGE}\nUSER root\nRUN rm /usr/bin/ssh\nUSER agent\n"),
        &[(TEST_LABEL, &label)],
    )
    .await;
    let network = TestNetwork::create(&docker, &format!("{label}-outside")).await;
    let sandbox = ssh_sandbox(
        &label,
        &network,
        &json!([entry("forge", "forge-host", 22, "forge", None)]),
        "true",
    )
    .env("CLAUDE_BOTTLE_IMAGE", &image.tag);
    sandbox.ssh_key("forge", "");
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "the image `{}` lacks `ssh`, which the bottle's ssh hosts need",
            image.tag
        )),
        "{out:?}"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn ssh_on_port_443_passes_while_other_443_tunnels_keep_their_tls_check() {
    let Some(docker) = engine_with("ssh on 443", &[FAKE_CLAUDE_IMAGE, SSHD_IMAGE]).await else {
        return;
    };
    let label = run_label("ssh-443");
    let outside = format!("{label}-outside");
    let network = TestNetwork::create(&docker, &outside).await;
    let probe = Sandbox::new();
    let public = probe.ssh_key("k", "");
    let forge =
        SshHostFixture::start(&docker, &outside, &network, "forge-443", 443, &[&public]).await;
    // The same host is also allowlisted for HTTPS: a tunnel there that is
    // not SSH-declared still has to start with TLS.
    let (_sink, _) = Service::sink(&network, "web-443")
        .start(&docker, &outside)
        .await;
    let script = "git clone -q forge:repo.git /workspace/repo && echo clone-443-ok; \
        bash -c \"exec 3<>/dev/tcp/gate/3128; printf 'CONNECT web-443:443 HTTP/1.1\\r\\n\\r\\nnot tls at all' >&3; timeout 5 cat <&3 | head -1\"";
    let manifest_ssh = json!([entry("forge", "forge-443", 443, "k", Some(&forge.host_key))]);
    let manifest = json!({
        "bottles": { "dev": {
            "ssh": manifest_ssh,
            "env": { "FAKE_CLAUDE_RUN": script },
            "egress": { "allowlist": ["web-443"], "private": ["web-443"], "builtin": false }
        } },
        "agents": { "a": { "bottle": "dev" } },
    });
    let sandbox = Sandbox::with_manifest(&manifest.to_string())
        .env("CLAUDE_BOTTLE_IMAGE", FAKE_CLAUDE_IMAGE)
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{TEST_LABEL}={label}"),
        )
        .env("CLAUDE_BOTTLE_GATE_NETWORKS", &network.name);
    copy_keys(&probe, &sandbox, &["k", "k.pub"]);
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(has_line(&out.stdout, "clone-443-ok"), "{out:?}");
    // The gate answered 200, then cut the tunnel that sent no ClientHello:
    // the summary counts the TLS refusal.
    let egress = out
        .stderr
        .lines()
        .find(|l| l.starts_with("egress: "))
        .unwrap_or_default();
    assert!(
        egress.contains("1 refused"),
        "the non-TLS tunnel got through: {out:?}"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn a_key_with_a_passphrase_is_asked_for_on_a_terminal_and_refused_without_one() {
    let Some(docker) = engine_with("ssh passphrase", &[FAKE_CLAUDE_IMAGE, SSHD_IMAGE]).await else {
        return;
    };
    let label = run_label("ssh-passphrase");
    let outside = format!("{label}-outside");
    let network = TestNetwork::create(&docker, &outside).await;
    let passphrase = "correct horse 4e1";
    let probe = Sandbox::new();
    let public = probe.ssh_key("locked", passphrase);
    let forge =
        SshHostFixture::start(&docker, &outside, &network, "forge-locked", 22, &[&public]).await;
    let sandbox = ssh_sandbox_with(
        &label,
        &network,
        &json!([entry(
            "forge",
            "forge-locked",
            22,
            "locked",
            Some(&forge.host_key)
        )]),
        &json!({ "FAKE_CLAUDE_RUN": "ssh forge true && echo locked-key-ok-3b" }),
    );
    copy_keys(&probe, &sandbox, &["locked", "locked.pub"]);
    // Without a terminal: a clear refusal, before anything is created.
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr
            .contains("has a passphrase, and there is no terminal to ask it on"),
        "{out:?}"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
    // On a terminal: asked after the y/N, with echo off, never shown.
    let terminal = Terminal::start(&sandbox, &["start", "a"]);
    terminal.wait_for("[y/N]");
    terminal.type_text("y\n");
    terminal.wait_for("passphrase of");
    assert!(
        terminal.stty().split_whitespace().any(|f| f == "-echo"),
        "echo is off while the passphrase is typed"
    );
    terminal.type_text(&format!("{passphrase}\n"));
    let shown = String::from_utf8_lossy(&terminal.output()).into_owned();
    assert!(has_line(&shown, "locked-key-ok-3b"), "{shown}");
    assert!(
        !shown.contains(passphrase),
        "the passphrase was shown: {shown}"
    );
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn with_a_named_gate_image_the_ssh_helper_is_the_executable_that_image_carries_and_rsa_keys_sign()
 {
    let Some(docker) = engine_with(
        "ssh named gate",
        &[FAKE_CLAUDE_IMAGE, SSHD_IMAGE, GATE_IMAGE],
    )
    .await
    else {
        return;
    };
    let label = run_label("ssh-named-gate");
    // The gate image's executable with bytes after its end (which the
    // loader ignores): the helper in the bottle must end the same way.
    let marker = "named-gate-marker-5e2";
    let dockerfile = format!(
        "FROM {BASE_IMAGE} AS marked\nCOPY --from={GATE_IMAGE} /claude-bottle /claude-bottle\n\
         RUN printf '{marker}' >>/claude-bottle\nFROM scratch\n\
         COPY --from=marked /claude-bottle /claude-bottle\nENTRYPOINT [\"/claude-bottle\", \"gate\"]\n"
    );
    let gate = TestImage::build(
        &docker,
        &format!("claude-bottle-test/gate-marked:{label}"),
        &dockerfile,
        &[(TEST_LABEL, &label)],
    )
    .await;
    let outside = format!("{label}-outside");
    let network = TestNetwork::create(&docker, &outside).await;
    let probe = Sandbox::new();
    // RSA, which signs with the SHA-2 hash the client asks for.
    let public = probe.ssh_key_of_type("k", "rsa", "");
    let forge = SshHostFixture::start(&docker, &outside, &network, "forge", 22, &[&public]).await;
    let script = format!(
        "tail -c {} ~/.claude-bottle/bin/claude-bottle; echo; ssh forge true && echo named-gate-ssh-ok",
        marker.len()
    );
    let sandbox = ssh_sandbox(
        &label,
        &network,
        &json!([entry("forge", "forge", 22, "k", Some(&forge.host_key))]),
        &script,
    )
    .env("CLAUDE_BOTTLE_GATE_IMAGE", &gate.tag);
    copy_keys(&probe, &sandbox, &["k", "k.pub"]);
    let out = Session::spawn(&sandbox, &["start", "a", "--yes"]).finish("");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        has_line(&out.stdout, marker),
        "the helper is not the image's: {out:?}"
    );
    assert!(has_line(&out.stdout, "named-gate-ssh-ok"), "{out:?}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}
