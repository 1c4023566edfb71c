//! The default image, built by the binary on the real engine from the
//! fixture base and Claude Code's native binary served by a local registry
//! fixture: built once, verified, reused, cleaned up when superseded.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptions, EventsOptions, ListImagesOptions};
use futures_util::StreamExt;
use serde_json::{Value, json};

use bottle::images::claude_code::{PINNED_VERSION, Platform};
use bottle::images::npm::Integrity;

use crate::support::{
    BASE_IMAGE, BIN, FAKE_CLAUDE_IMAGE, FIXTURES_IMAGE, Output, Sandbox, Service, Session,
    TEST_LABEL, TestContainer, TestImage, TestNetwork, connect, fixture_json, leftovers, run_label,
    skip,
};

/// The engine here is x86-64, like the tarball `scripts/fixture-images`
/// caches.
const PACKAGE: &str = "@anthropic-ai/claude-code-linux-x64";

fn pinned_integrity() -> &'static str {
    Platform::for_architecture("x86_64")
        .unwrap()
        .pinned_integrity
}
const MANIFEST: &str =
    r#"{"bottles": {"dev": {"egress": {"builtin": false}}}, "agents": {"a": {"bottle": "dev"}}}"#;

/// The tarball `scripts/fixture-images` downloaded and checked.
fn cached_tarball() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"),
        PathBuf::from,
    );
    cache.join(format!(
        "claude-bottle-test/anthropic-ai-claude-code-linux-x64-{PINNED_VERSION}.tgz"
    ))
}

async fn engine_and_tarball(test: &str) -> Option<Docker> {
    let docker = connect(test).await?;
    if !cached_tarball().exists() {
        return skip(
            test,
            format!("{} is not cached", cached_tarball().display()),
        );
    }
    Some(docker)
}

/// The registry fixture serving `file` (a host path) as `version` of the
/// package, its metadata claiming `integrity`. A container on `network`
/// when the engine's networks are this machine's; else a process on this
/// machine's loopback, where the CLI, which downloads, still reaches it.
struct Registry {
    container: Option<TestContainer>,
    _process: Option<LoopbackRegistry>,
    /// `host` or `host:port`, as its URL has it.
    address: String,
}

impl Registry {
    async fn start(
        docker: &Docker,
        label: &str,
        network: &TestNetwork,
        file: &std::path::Path,
        versions: &[(&str, &str)],
    ) -> Self {
        let local = crate::support::engine::networks_are_local();
        let served = if local {
            "/data/package.tgz".to_owned()
        } else {
            file.display().to_string()
        };
        let packages: Vec<Value> = versions
            .iter()
            .map(|(version, integrity)| {
                json!({ "name": PACKAGE, "version": version, "file": served, "integrity": integrity })
            })
            .collect();
        let packages = Value::from(packages).to_string();
        if !local {
            let process = LoopbackRegistry::spawn(&[("NPM_PACKAGES", &packages)])
                .expect("the npm-registry fixture is built");
            let address = process
                .url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned();
            return Self {
                container: None,
                _process: Some(process),
                address,
            };
        }
        let (container, address) = Service::new(FIXTURES_IMAGE, network)
            .cmd(&["npm-registry"])
            .env("NPM_PACKAGES", &packages)
            .alias("registry")
            .bind(file, "/data/package.tgz")
            .start(docker, label)
            .await;
        Self {
            container: Some(container),
            _process: None,
            address,
        }
    }

    /// The registry serving the real pinned tarball, on a network of its
    /// own (which must outlive it).
    async fn publishing_claude_code(docker: &Docker, label: &str) -> (TestNetwork, Self) {
        let network = TestNetwork::create(docker, label).await;
        let registry = Self::start(
            docker,
            label,
            &network,
            &cached_tarball(),
            &[(PINNED_VERSION, pinned_integrity())],
        )
        .await;
        (network, registry)
    }

    /// The containers it leaves on the engine while it runs: 1 or 0.
    fn containers(&self) -> usize {
        usize::from(self.container.is_some())
    }

    fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    fn requests(&self) -> Vec<Value> {
        let (host, port) = self
            .address
            .rsplit_once(':')
            .map_or((self.address.as_str(), 80), |(h, p)| {
                (h, p.parse().unwrap())
            });
        fixture_json(host, port, "/_requests")
    }
}

/// A sandbox using the default image, made from `base` with Claude Code
/// from `registry`, labelled with the test's run.
fn default_image_sandbox(label: &str, base: &str, registry: &str) -> Sandbox {
    Sandbox::with_manifest(MANIFEST)
        .env("CLAUDE_BOTTLE_BASE_IMAGE", base)
        .env("CLAUDE_BOTTLE_NPM_REGISTRY", registry)
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{TEST_LABEL}={label}"),
        )
}

fn planned_image(sandbox: &Sandbox) -> (String, Value) {
    let plan = sandbox
        .run(&["start", "a", "--dry-run", "--format", "json"])
        .json();
    (plan["image"].as_str().unwrap().to_owned(), plan)
}

/// `doctor` sees what the first start will do, asking the registry for
/// the metadata alone.
#[track_caller]
fn doctor_foresees_the_build(sandbox: &Sandbox, registry: &Registry) {
    let summary = doctor_image(sandbox);
    assert!(summary.contains("not built yet"), "{summary}");
    assert!(
        summary.contains(&format!("on `{BASE_IMAGE}`, which the engine has")),
        "{summary}"
    );
    assert!(
        summary.contains("downloaded from the npm registry, which answers"),
        "{summary}"
    );
    assert_eq!(registry.requests().len(), 1, "{:?}", registry.requests());
}

/// What `doctor` says of the image.
#[track_caller]
fn doctor_image(sandbox: &Sandbox) -> String {
    let out = sandbox.run(&["doctor", "--format", "json"]);
    let report: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|err| panic!("{err}: {out:?}"));
    let image = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "image")
        .unwrap_or_else(|| panic!("no image finding: {report:#}"));
    assert_eq!(image["verdict"], "ok", "{image:#}");
    image["summary"].as_str().unwrap().to_owned()
}

fn downloads(sandbox: &Sandbox) -> Vec<String> {
    std::fs::read_dir(sandbox.home.join(".cache/claude-bottle/downloads"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The engine's events between two Unix times for images that carry
/// `label` (the test's run): what builds and removals of other tests,
/// running alongside, do is not in it.
async fn image_events(docker: &Docker, label: &str, since: &str, until: &str) -> Vec<String> {
    let mut events = docker.events(Some(EventsOptions {
        since: Some(since.to_owned()),
        until: Some(until.to_owned()),
        filters: Some(HashMap::from([
            ("type".to_owned(), vec!["image".to_owned()]),
            ("label".to_owned(), vec![format!("{TEST_LABEL}={label}")]),
        ])),
    }));
    let mut seen = Vec::new();
    while let Some(event) = events.next().await {
        let event = event.unwrap();
        seen.push(format!(
            "{} {}",
            event.action.unwrap_or_default(),
            event.actor.and_then(|a| a.id).unwrap_or_default()
        ));
    }
    seen
}

/// Now, as the engine's event filters take it: Unix seconds and nanoseconds
/// (so that the first build, just before, is not in the same second).
fn now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

#[track_caller]
fn assert_runs_pinned_claude(out: &Output) {
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("{PINNED_VERSION} (Claude Code)")),
        "{out:?}"
    );
}

#[tokio::test]
async fn the_default_image_is_built_once_from_the_registry_and_then_reused() {
    let test = "default image build";
    let Some(docker) = engine_and_tarball(test).await else {
        return;
    };
    let label = run_label("default-image");
    let (_network, registry) = Registry::publishing_claude_code(&docker, &label).await;
    let sandbox = default_image_sandbox(&label, BASE_IMAGE, &registry.url());
    let (tag, plan) = planned_image(&sandbox);
    // The tag is this test's alone (its label is part of the content).
    let image = TestImage::adopt(&docker, &tag);
    assert!(
        tag.starts_with("claude-bottle/claude-code:2.1.332-"),
        "{plan}"
    );
    assert_eq!(plan["default_image"]["built"], false, "{plan}");
    assert_eq!(plan["default_image"]["base"], BASE_IMAGE, "{plan}");
    doctor_foresees_the_build(&sandbox, &registry);

    // On a terminal, so the build shows its steps as it goes.
    let (code, shown) = sandbox.run_on_terminal(&["start", "a", "--yes", "--", "--version"]);
    let shown = String::from_utf8_lossy(&shown);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains(&format!("{PINNED_VERSION} (Claude Code)")),
        "{shown}"
    );
    assert!(shown.contains(&format!("building {tag}: Step ")), "{shown}");
    assert!(
        !shown.contains(&format!("{tag} building")),
        "said twice: {shown}"
    );
    assert!(
        shown.contains(&format!("building {tag}: built in")),
        "{shown}"
    );
    let id = image.id().await.expect("the default image exists");
    let built = docker.inspect_image(&tag).await.unwrap();
    let config = built.config.unwrap();
    assert_eq!(config.user.as_deref(), Some("claude"));
    assert_eq!(config.working_dir.as_deref(), Some("/workspace"));
    assert!(
        config
            .env
            .unwrap_or_default()
            .contains(&"DISABLE_AUTOUPDATER=1".to_owned())
    );
    let labels = config.labels.unwrap_or_default();
    assert_eq!(labels.get(TEST_LABEL), Some(&label));
    assert_eq!(
        labels.get("io.claude-bottle.role").map(String::as_str),
        Some("claude-code-image")
    );
    let fetched = registry.requests();
    assert_eq!(fetched.len(), 3, "doctor's, then the start's: {fetched:?}");
    assert_eq!(downloads(&sandbox).len(), 1, "{:?}", downloads(&sandbox));
    assert_eq!(planned_image(&sandbox).1["default_image"]["built"], true);
    assert_eq!(
        doctor_image(&sandbox),
        format!("the default image {tag} is built")
    );

    let since = now();
    let second = sandbox.run(&["start", "a", "--yes", "--", "--version"]);
    let until = now();
    assert_runs_pinned_claude(&second);
    assert!(!second.stderr.contains("building"), "{second:?}");
    assert!(!second.stderr.contains("downloading"), "{second:?}");
    assert_eq!(image.id().await.as_ref(), Some(&id), "the image changed");
    assert_eq!(registry.requests(), fetched, "the second start fetched");
    let events = image_events(&docker, &label, &since, &until).await;
    assert!(events.is_empty(), "the second start built: {events:?}");
    let (containers, _) = leftovers(&docker, &label).await;
    assert_eq!(
        containers.len(),
        registry.containers(),
        "only the registry: {containers:?}"
    );

    // Another image (other labels, so another tag) from the same cache:
    // the pinned tarball needs no registry, not even a reachable one.
    let other_label = format!("{label}-again");
    let sandbox = sandbox
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{TEST_LABEL}={other_label}"),
        )
        .env("CLAUDE_BOTTLE_NPM_REGISTRY", "http://127.0.0.1:9/");
    let (other_tag, _) = planned_image(&sandbox);
    let other = TestImage::adopt(&docker, &other_tag);
    assert_ne!(other_tag, tag);
    let third = sandbox.run(&["start", "a", "--yes", "--", "--version"]);
    assert_runs_pinned_claude(&third);
    assert!(
        third.stderr.contains(&format!("building {other_tag}")),
        "{third:?}"
    );
    assert!(!third.stderr.contains("downloading"), "{third:?}");
    assert!(other.id().await.is_some());
    assert_eq!(registry.requests(), fetched, "the cache was not enough");
}

#[tokio::test]
async fn a_tarball_that_fails_its_integrity_check_is_refused_and_deleted() {
    let test = "default image integrity";
    let Some(docker) = engine_and_tarball(test).await else {
        return;
    };
    let label = run_label("integrity");
    let network = TestNetwork::create(&docker, &label).await;
    let dir = tempfile::tempdir().unwrap();
    let tampered = dir.path().join("tampered.tgz");
    std::fs::write(&tampered, b"not the published package").unwrap();
    // One registry states the published integrity, the other the tampered
    // file's own: the pin decides either way.
    let honest = Registry::start(
        &docker,
        &label,
        &network,
        &tampered,
        &[(PINNED_VERSION, pinned_integrity())],
    )
    .await;
    let own = Integrity::of_file(&tampered).unwrap().to_string();
    let lying = Registry::start(
        &docker,
        &label,
        &network,
        &tampered,
        &[(PINNED_VERSION, &own), ("2.1.0", &own)],
    )
    .await;
    for registry in [&honest, &lying] {
        let sandbox = default_image_sandbox(&label, BASE_IMAGE, &registry.url());
        let (tag, _) = planned_image(&sandbox);
        let out = sandbox.run(&["start", "a", "--yes", "--", "--version"]);
        assert_eq!(out.code, 125, "{out:?}");
        assert!(
            out.stderr.contains(&format!(
                "the tarball of {PACKAGE}@{PINNED_VERSION} from http://{}/",
                registry.address
            )) && out.stderr.contains(&format!(
                "failed its integrity check (expected {}, got {own}); the download was deleted",
                pinned_integrity()
            )),
            "{out:?}"
        );
        assert!(downloads(&sandbox).is_empty(), "{:?}", downloads(&sandbox));
        assert!(docker.inspect_image(&tag).await.is_err(), "{tag} was built");
    }
    // Another version takes its integrity from the metadata: over plain
    // http that proves nothing, so it is refused before any download.
    let sandbox = default_image_sandbox(&label, BASE_IMAGE, &lying.url())
        .env("CLAUDE_BOTTLE_CLAUDE_VERSION", "2.1.0");
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr.contains("over plain http, which proves nothing"),
        "{out:?}"
    );
    assert_eq!(lying.requests().len(), 2, "metadata and tarball, once");
    let (containers, _) = leftovers(&docker, &label).await;
    assert_eq!(
        containers.len(),
        honest.containers() + lying.containers(),
        "only the registries: {containers:?}"
    );
}

#[tokio::test]
async fn the_tag_follows_the_base() {
    let Some(_docker) = connect("default image tag").await else {
        return;
    };
    let registry = "http://127.0.0.1:9/";
    let label = run_label("tag");
    let (one, plan) = planned_image(&default_image_sandbox(&label, BASE_IMAGE, registry));
    let (other, _) = planned_image(&default_image_sandbox(&label, FAKE_CLAUDE_IMAGE, registry));
    assert!(
        one.starts_with("claude-bottle/claude-code:2.1.332-"),
        "{plan}"
    );
    assert!(other.starts_with("claude-bottle/claude-code:2.1.332-"));
    assert_ne!(one, other, "two bases, one tag");
    assert_eq!(
        one,
        planned_image(&default_image_sandbox(&label, BASE_IMAGE, registry)).0,
        "the same content gave another tag"
    );
    assert!(plan["default_image"]["registry"] == registry, "{plan}");
}

#[tokio::test]
async fn a_base_that_cannot_be_had_names_the_variable_and_leaves_nothing() {
    let Some(docker) = connect("default image without base").await else {
        return;
    };
    let label = run_label("no-base");
    // The engine tries a registry on this machine's loopback, and fails.
    let base = "127.0.0.1:9/claude-bottle-test/absent:1";
    let sandbox = default_image_sandbox(&label, base, "http://127.0.0.1:9/");
    let (tag, plan) = planned_image(&sandbox);
    assert_eq!(tag, "claude-bottle/claude-code:2.1.332", "{plan}");
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "the base image `{base}` is not on the engine and cannot be pulled"
        )),
        "{out:?}"
    );
    assert!(out.stderr.contains("CLAUDE_BOTTLE_BASE_IMAGE"), "{out:?}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
    assert!(sandbox.stage_dirs().is_empty());
}

#[tokio::test]
async fn cleanup_offers_images_that_are_no_longer_current() {
    let Some(docker) = connect("image cleanup").await else {
        return;
    };
    let label = run_label("image-cleanup");
    let sandbox = default_image_sandbox(&label, BASE_IMAGE, "http://127.0.0.1:9/");
    let (current_tag, _) = planned_image(&sandbox);
    // Images as claude-bottle labels what it builds (no content of their own).
    let ours = async |tag: String, role: &str| {
        let labels = [
            ("io.claude-bottle.managed", "true"),
            ("io.claude-bottle.role", role),
            (TEST_LABEL, label.as_str()),
        ];
        TestImage::labelled(&docker, &tag, &labels).await
    };
    let current = ours(current_tag, "claude-code-image").await;
    let old_default = ours(
        format!("claude-bottle/claude-code:2.0.0-{label}"),
        "claude-code-image",
    )
    .await;
    let old_gate = ours(format!("claude-bottle/gate:{label}"), "gate-image").await;
    // Kept: those CLAUDE_BOTTLE_IMAGE and CLAUDE_BOTTLE_GATE_IMAGE name, one
    // a container uses, and a user's image built on an old one (it inherits
    // the labels, not the repository).
    let named = ours(
        format!("claude-bottle/claude-code:1.0.0-{label}"),
        "claude-code-image",
    )
    .await;
    let named_gate = ours(format!("claude-bottle/gate:named-{label}"), "gate-image").await;
    let used = ours(format!("claude-bottle/gate:used-{label}"), "gate-image").await;
    let child = TestImage::build(
        &docker,
        &format!("claude-bottle-test/child:{label}"),
        &format!("FROM {}\nLABEL child=yes\n", old_default.tag),
        &[],
    )
    .await;
    let holder = docker
        .create_container(
            None::<CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(used.tag.clone()),
                cmd: Some(vec!["true".to_owned()]),
                labels: Some([(TEST_LABEL.to_owned(), label.clone())].into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let _holder = TestContainer::adopt(holder.id);
    let sandbox = sandbox
        .env("CLAUDE_BOTTLE_IMAGE", &named.tag)
        .env("CLAUDE_BOTTLE_GATE_IMAGE", &named_gate.tag);

    let dry = sandbox.run(&["cleanup", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    for stale in [&old_default.tag, &old_gate.tag] {
        assert!(
            dry.stderr.contains(&format!("image {stale} (")),
            "{stale}: {dry:?}"
        );
    }
    for kept in [
        &current.tag,
        &named.tag,
        &named_gate.tag,
        &used.tag,
        &child.tag,
    ] {
        assert!(!dry.stderr.contains(kept.as_str()), "{kept}: {dry:?}");
    }
    assert!(
        old_default.id().await.is_some(),
        "a dry run removed an image"
    );

    let out = sandbox.run(&["cleanup", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("and 2 image(s)"), "{out:?}");
    assert!(old_gate.id().await.is_none());
    // The old default image's tag is gone; its layers stay for the child.
    assert!(old_default.id().await.is_none() && child.id().await.is_some());
    for kept in [&named, &named_gate, &used] {
        assert!(kept.id().await.is_some(), "{} was removed", kept.tag);
    }
    assert!(
        current.id().await.is_some(),
        "the current image was removed"
    );
    // The current image is never offered.
    assert!(
        sandbox
            .run(&["cleanup", "--dry-run"])
            .stderr
            .contains("nothing to clean up")
    );
}

#[tokio::test]
async fn the_download_goes_through_the_hosts_proxy_unless_no_proxy_says_otherwise() {
    let Some(docker) = connect("download through a proxy").await else {
        return;
    };
    let label = run_label("proxy");
    let network = TestNetwork::create(&docker, &label).await;
    // The sink plays the proxy: it records the request and answers junk.
    let (_sink, sink) = Service::sink(&network, "proxy")
        .start(&docker, &label)
        .await;
    // Nothing listens there: only the proxy can answer.
    let registry = "http://127.0.0.1:9/";
    let metadata = format!("GET {registry}@anthropic-ai%2fclaude-code-linux-x64 HTTP/1.1");
    let proxied = |records: &[Value]| {
        records
            .iter()
            .filter(|r| {
                r["first_bytes"]
                    .as_str()
                    .is_some_and(|b| b.starts_with(&metadata))
            })
            .count()
    };
    let sandbox = default_image_sandbox(&label, BASE_IMAGE, registry)
        .env("HTTP_PROXY", &format!("http://{sink}:80"));
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    let records: Vec<Value> = fixture_json(&sink, 9999, "/_records");
    assert_eq!(proxied(&records), 1, "{records:?}");

    let out = sandbox
        .env("NO_PROXY", "127.0.0.1")
        .run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr.contains("cannot read http://127.0.0.1:9/"),
        "{out:?}"
    );
    let records: Vec<Value> = fixture_json(&sink, 9999, "/_records");
    assert_eq!(
        proxied(&records),
        1,
        "NO_PROXY was not honoured: {records:?}"
    );
}

#[tokio::test]
async fn only_the_packages_the_base_lacks_are_installed() {
    let Some(docker) = engine_and_tarball("default image on a lacking base").await else {
        return;
    };
    let label = run_label("lacking-base");
    // A base without procps whose package source is this machine's
    // loopback, where nothing answers: the install is tried, and fails.
    let base = TestImage::build(
        &docker,
        &format!("claude-bottle-test/no-procps:{label}"),
        &format!(
            "FROM {BASE_IMAGE}\n\
         RUN dpkg --purge --force-depends procps \
         && echo 'deb http://127.0.0.1:9/debian bookworm main' >/etc/apt/sources.list\n"
        ),
        &[(TEST_LABEL, &label)],
    )
    .await;
    let (_network, registry) = Registry::publishing_claude_code(&docker, &label).await;
    let sandbox = default_image_sandbox(&label, &base.tag, &registry.url());
    let (tag, _) = planned_image(&sandbox);
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("building {tag} (installing procps)...")),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(&format!(
            "cannot build the default image {tag}: a build step exited with code 100"
        )),
        "{out:?}"
    );
    // What apt said, and what to do.
    assert!(out.stderr.contains("  | "), "{out:?}");
    assert!(
        out.stderr
            .contains("help: the base lacks procps, which the build installs with apt-get"),
        "{out:?}"
    );
    assert!(docker.inspect_image(&tag).await.is_err(), "{tag} was built");
    // The steps that succeeded left no image on the (test's own) base.
    let base_id = base.id().await.unwrap();
    let children: Vec<_> = docker
        .list_images(Some(ListImagesOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .filter(|image| image.parent_id == base_id)
        .collect();
    assert!(children.is_empty(), "{children:?}");
    let (containers, _) = leftovers(&docker, &label).await;
    assert_eq!(containers.len(), 1, "only the registry: {containers:?}");
}

/// The registry fixture as a process on this machine's loopback, where a
/// certificate for 127.0.0.1 is valid; killed when dropped.
struct LoopbackRegistry {
    child: std::process::Child,
    url: String,
}

impl LoopbackRegistry {
    fn spawn(env: &[(&str, &str)]) -> Option<Self> {
        let program = std::path::Path::new(BIN).with_file_name("npm-registry");
        if !program.exists() {
            return skip(
                "https registry",
                format!("{} is not built", program.display()),
            );
        }
        let mut child = std::process::Command::new(program)
            .env_clear()
            .env("NPM_LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stderr.take().unwrap()),
            &mut first,
        )
        .unwrap();
        let url = ["https", "http"]
            .into_iter()
            .find_map(|scheme| {
                let address = first
                    .trim()
                    .strip_prefix(&format!("serving {scheme} on "))?;
                Some(format!("{scheme}://{address}/"))
            })
            .unwrap_or_else(|| panic!("the registry said {first:?}"));
        Some(Self { child, url })
    }
}

impl Drop for LoopbackRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA, and a certificate it signed for 127.0.0.1, made with `openssl`.
fn certificates(dir: &std::path::Path) {
    let openssl = |args: &str| {
        let status = std::process::Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args}");
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout ca.key -out ca.pem -days 2 -subj /CN=claude-bottle-test-ca",
    );
    openssl(
        "req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout server.key -out server.csr -subj /CN=127.0.0.1",
    );
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
         -out server.pem -days 2 -extfile san.ext",
    );
}

#[tokio::test]
async fn an_https_registry_is_trusted_through_ssl_cert_file() {
    let Some(_docker) = connect("https registry").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let tampered = dir.path().join("tampered.tgz");
    std::fs::write(&tampered, b"not the published package").unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    // A version that is not pinned: its integrity comes from the
    // metadata, which over https counts, and which this file fails.
    let packages = json!([{
        "name": PACKAGE,
        "version": "2.1.0",
        "file": path("tampered.tgz"),
        "integrity": pinned_integrity(),
    }])
    .to_string();
    let Some(registry) = LoopbackRegistry::spawn(&[
        ("NPM_TLS_CERT", &path("server.pem")),
        ("NPM_TLS_KEY", &path("server.key")),
        ("NPM_PACKAGES", &packages),
    ]) else {
        return;
    };
    let label = run_label("https");
    let sandbox = default_image_sandbox(&label, BASE_IMAGE, &registry.url)
        .env("CLAUDE_BOTTLE_CLAUDE_VERSION", "2.1.0");

    // The system's CAs do not know this one: refused before any download.
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("cannot read {}", registry.url)),
        "{out:?}"
    );
    assert!(out.stderr.contains("certificate"), "{out:?}");

    // Trusted through SSL_CERT_FILE: the tarball arrives (and fails its
    // check, which shows it came through).
    let sandbox = sandbox.env("SSL_CERT_FILE", &path("ca.pem"));
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{PACKAGE}@2.1.0 from {}{PACKAGE}/-/claude-code-linux-x64-2.1.0.tgz failed its integrity check (expected {}",
            registry.url,
            pinned_integrity()
        )),
        "{out:?}"
    );
    assert!(downloads(&sandbox).is_empty(), "{:?}", downloads(&sandbox));
}

/// A start paused while the engine builds the default image, then cut
/// short by `signal` (`KILL`, `TERM`); nothing labelled is left, and the
/// next start has a working image.
async fn cut_short_while_building(signal: &str) {
    let test = "default image build cut short";
    let Some(docker) = engine_and_tarball(test).await else {
        return;
    };
    let label = run_label(&format!("image-{}", signal.to_ascii_lowercase()));
    // Labelled apart, so the fixtures are not taken for leftovers.
    let (_network, registry) =
        Registry::publishing_claude_code(&docker, &format!("{label}-registry")).await;
    let sandbox = default_image_sandbox(&label, BASE_IMAGE, &registry.url());
    let (tag, _) = planned_image(&sandbox);
    let _image = TestImage::adopt(&docker, &tag);
    let sandbox = sandbox.env("CLAUDE_BOTTLE_PAUSE_AT", "image");
    let session = Session::spawn(&sandbox, &["start", "a", "--yes", "--", "--version"]);
    crate::phases::wait_paused(&session, "image").await;
    session.signal(signal);
    let out = session.wait();
    if signal == "TERM" {
        assert_eq!(out.code, 143, "{out:?}");
    }
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
    // Whatever the engine did with the build, the next start has an image
    // that works.
    let sandbox = sandbox.env("CLAUDE_BOTTLE_PAUSE_AT", "");
    let out = sandbox.run(&["start", "a", "--yes", "--", "--version"]);
    assert_runs_pinned_claude(&out);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn kill_9_while_the_default_image_builds_leaves_nothing_and_the_next_start_works() {
    cut_short_while_building("KILL").await;
}

#[tokio::test]
async fn sigterm_while_the_default_image_builds_leaves_nothing_and_the_next_start_works() {
    cut_short_while_building("TERM").await;
}
