//! The test harness proves itself on the real engine: the fixture images
//! that `scripts/test` builds, real Claude Code talking to the mock API,
//! and the fake claude on a terminal — under runc and under gVisor.

use std::time::Duration;

use bollard::Docker;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use bollard::query_parameters::ResizeExecOptions;
use fixtures::report::frames;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::{
    BASE_IMAGE, CLAUDE_CODE_IMAGE, FAKE_CLAUDE_IMAGE, FIXTURES_IMAGE, Service, TestNetwork,
    containers_labelled, engine_with, exec, fixture_json, http_get, run_in_container, run_label,
    runtimes,
};

/// The engine and every fixture image, or a loud skip.
async fn harness_ready(test: &str) -> Option<Docker> {
    engine_with(
        test,
        &[
            BASE_IMAGE,
            FAKE_CLAUDE_IMAGE,
            FIXTURES_IMAGE,
            CLAUDE_CODE_IMAGE,
        ],
    )
    .await
}

#[tokio::test]
async fn the_base_image_has_its_tools_under_runc_and_under_gvisor() {
    let Some(docker) = harness_ready("base image").await else {
        return;
    };
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let run_label = run_label("base");
    let script = "git --version && ssh -V 2>&1 && curl --version && tar --version \
                  && ps --version && echo kernel=$(cat /proc/sys/kernel/osrelease)";
    for runtime in runtimes(&docker).await {
        let (code, output) =
            run_in_container(&docker, BASE_IMAGE, runtime, &run_label, script).await;
        assert_eq!(code, 0, "{runtime}: {output}");
        for tool in ["git version", "OpenSSH", "curl ", "GNU tar", "procps"] {
            assert!(output.contains(tool), "{runtime}: no `{tool}` in {output}");
        }
        let kernel = output
            .lines()
            .find_map(|l| l.strip_prefix("kernel="))
            .unwrap();
        // gVisor answers with its own kernel: proof the sandbox really ran.
        assert_eq!(
            kernel == host_kernel.trim(),
            runtime == "runc",
            "{runtime}: kernel {kernel}"
        );
    }
    assert_eq!(
        containers_labelled(&docker, &run_label).await,
        0,
        "a test container was left"
    );
}

/// Runs real `claude -p PROMPT` against a mock playing `script` on a fresh
/// network; returns claude's exit code and output, and what the mock got.
async fn claude_against_mock(
    docker: &Docker,
    runtime: &str,
    script: &Value,
    prompt: &str,
) -> (i64, String, Vec<Value>) {
    let run_label = run_label(&format!("claude-{runtime}"));
    let network = TestNetwork::create(docker, &run_label).await;
    let (_mock, mock_address) = Service::mock(&network, script)
        .start(docker, &run_label)
        .await;
    assert_eq!(http_get(&mock_address, 80, "/_health"), "ok");
    let (claude, _) = Service::idle(CLAUDE_CODE_IMAGE, &network, "agent")
        .runtime(runtime)
        .start(docker, &run_label)
        .await;
    let (code, output) = exec(
        docker,
        &claude.id,
        &["claude", "-p", prompt, "--dangerously-skip-permissions"],
        &[
            "ANTHROPIC_BASE_URL=http://mock",
            "ANTHROPIC_API_KEY=test-key-not-secret",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
        ],
    )
    .await;
    let requests: Vec<Value> = fixture_json(&mock_address, 80, "/_requests");
    (code, output, requests)
}

#[tokio::test]
async fn real_claude_code_answers_from_the_mock_under_runc_and_gvisor() {
    let Some(docker) = harness_ready("real claude smoke").await else {
        return;
    };
    for runtime in runtimes(&docker).await {
        let script = json!([{ "text": "scripted answer 7d1f" }]);
        let (code, output, requests) =
            claude_against_mock(&docker, runtime, &script, "say hello").await;
        assert_eq!(code, 0, "{runtime}: {output}");
        assert_eq!(output.trim(), "scripted answer 7d1f", "{runtime}");
        assert_eq!(requests.len(), 1, "{runtime}: {requests:#?}");
        let request = &requests[0];
        assert_eq!(request["method"], "POST");
        assert!(
            request["target"]
                .as_str()
                .unwrap()
                .starts_with("/v1/messages"),
            "{request}"
        );
        assert_eq!(request["body"]["stream"], true);
        let api_key = request["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == "x-api-key");
        assert_eq!(api_key.map(|h| &h[1]), Some(&json!("test-key-not-secret")));
        let asked = request["body"]["messages"].to_string();
        assert!(
            asked.contains("say hello"),
            "{runtime}: the prompt is not in {asked}"
        );
    }
}

#[tokio::test]
async fn a_scripted_bash_tool_use_runs_in_the_container_and_its_output_comes_back() {
    let Some(docker) = harness_ready("real claude tool use").await else {
        return;
    };
    let script = json!([
        { "tool_use": { "name": "Bash", "input": { "command": "echo marker-$((6*7)) $(id -un)", "description": "print a marker" } } },
        { "text": "done" }
    ]);
    let (code, output, requests) = claude_against_mock(&docker, "runc", &script, "run it").await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(output.trim(), "done");
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let result = crate::support::tool_result(&requests[1]);
    // Computed in the container, as the bottle's non-root user.
    assert_eq!(result["content"], "marker-42 agent");
    assert_eq!(result["is_error"], false);
}

#[tokio::test]
async fn the_fake_claude_reports_its_terminal_and_every_resize() {
    let Some(docker) = harness_ready("fake claude on a terminal").await else {
        return;
    };
    let run_label = run_label("fake-tty");
    let network = TestNetwork::create(&docker, &run_label).await;
    let (container, _) = Service::idle(FAKE_CLAUDE_IMAGE, &network, "agent")
        .start(&docker, &run_label)
        .await;
    let exec = docker
        .create_exec(
            &container.id,
            ExecConfig {
                cmd: Some(vec!["claude".into(), "--some-flag".into()]),
                env: Some(vec![
                    "FAKE_CLAUDE_SLEEP=20".into(),
                    "FAKE_CLAUDE_EXIT=3".into(),
                ]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                attach_stdin: Some(true),
                tty: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // With a TTY the exec starts without start options: bollard would
    // otherwise split the raw stream into frames and corrupt it.
    let StartExecResults::Attached {
        mut output,
        input: _input,
    } = docker.start_exec(&exec.id, None).await.unwrap()
    else {
        panic!("the exec is attached");
    };
    let mut screen = String::new();
    let mut resizes = vec![(31, 101), (42, 132)].into_iter();
    let mut wanted = None;
    let read = async {
        while let Some(chunk) = output.next().await {
            screen.push_str(&chunk.unwrap().to_string());
            let ready = !frames(&screen, "ready").is_empty();
            let seen = frames(&screen, "resize").len();
            if ready && wanted.is_none_or(|n| seen >= n) {
                let Some((rows, cols)) = resizes.next() else {
                    break;
                };
                docker
                    .resize_exec(&exec.id, ResizeExecOptions { h: rows, w: cols })
                    .await
                    .unwrap();
                wanted = Some(seen + 1);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the fake claude reports resizes");
    let report = &frames(&screen, "report")[0];
    assert_eq!(
        report["tty"],
        json!({ "stdin": true, "stdout": true }),
        "{report}"
    );
    assert_eq!(report["user"], "agent");
    assert_eq!(report["cwd"], "/workspace");
    assert_eq!(report["argv"], json!(["claude", "--some-flag"]));
    let sizes: Vec<Value> = frames(&screen, "resize");
    assert_eq!(
        sizes,
        [
            json!({ "rows": 31, "cols": 101 }),
            json!({ "rows": 42, "cols": 132 })
        ]
    );
}

#[tokio::test]
async fn the_sink_records_what_arrives_and_nothing_else() {
    let Some(docker) = harness_ready("sink").await else {
        return;
    };
    let run_label = run_label("sink");
    let network = TestNetwork::create(&docker, &run_label).await;
    let (_sink, sink_address) = Service::sink(&network, "sink")
        .env("SINK_PORTS", "80,443")
        .start(&docker, &run_label)
        .await;
    let records = || -> Vec<Value> { fixture_json(&sink_address, 9999, "/_records") };
    assert!(
        records().is_empty(),
        "the sink recorded before anything was sent"
    );
    let (client, _) = Service::idle(BASE_IMAGE, &network, "client")
        .start(&docker, &run_label)
        .await;
    let (code, output) = exec(
        &docker,
        &client.id,
        &["sh", "-c", "curl -fsS http://sink/hello-4a2c && printf 'not tls' | curl -s --max-time 3 telnet://sink:443 || true"],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{output}");
    assert!(output.starts_with("sink"), "{output}");
    let records = records();
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[0]["port"], 80);
    assert!(
        records[0]["first_bytes"]
            .as_str()
            .unwrap()
            .starts_with("GET /hello-4a2c "),
        "{records:#?}"
    );
    assert_eq!(records[1]["port"], 443);
    assert_eq!(records[1]["first_bytes"], "not tls");
}

#[tokio::test]
async fn the_claude_images_meet_the_bottle_image_contract() {
    let Some(docker) = harness_ready("image contract").await else {
        return;
    };
    let run_label = run_label("contract");
    for image in [FAKE_CLAUDE_IMAGE, CLAUDE_CODE_IMAGE] {
        let user = docker
            .inspect_image(image)
            .await
            .unwrap()
            .config
            .and_then(|c| c.user)
            .unwrap_or_default();
        assert!(
            !user.is_empty() && user != "root" && user != "0",
            "{image}: USER is `{user}`"
        );
        let (code, output) = run_in_container(
            &docker,
            image,
            "runc",
            &run_label,
            "command -v claude sh cat tar && id -u && test -w /workspace",
        )
        .await;
        assert_eq!(code, 0, "{image}: {output}");
        assert_ne!(
            output.lines().nth(4),
            Some("0"),
            "{image} runs as root: {output}"
        );
    }
}
