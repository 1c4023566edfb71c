//! Prepare from a real manifest and a real home directory, with a backend
//! whose resources are fixed so the plan can be snapshotted.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use async_trait::async_trait;
use bottle::backend::{Backend, ImageSource, Launch, LaunchTarget, Networks, Resolution, Runtime};
use bottle::lifecycle::instance::Instance;
use bottle::lifecycle::stage::StageDir;
use bottle::manifest::Manifest;
use bottle::plan::DefaultImagePlan;
use bottle::prepare::prepare;
use bottle::settings::Settings;
use bottle::spec::BottleSpec;

/// Resolves fixed names; launching is not what these tests are about.
#[derive(Debug)]
struct FixedBackend;

#[async_trait]
impl Backend for FixedBackend {
    fn name(&self) -> &'static str {
        "fixed"
    }

    async fn prepare(&self, spec: &BottleSpec<'_>, _: &StageDir) -> bottle::Result<Resolution> {
        Ok(Resolution {
            target: LaunchTarget {
                image: ImageSource::Default(spec.settings.default_image(&spec.home)),
                runtime: Some(Runtime::Runc),
                container: "the-agent".into(),
                networks: Networks {
                    internal: Some("internal".into()),
                    egress: "egress".into(),
                },
                facts_cache: spec.home.join("facts"),
            },
            image: "claude-bottle/claude-code:2.1.332-0123456789ab".into(),
            default_image: Some(DefaultImagePlan {
                base: "debian:bookworm-slim".into(),
                claude_code_version: "2.1.332".into(),
                registry: "https://registry.npmjs.org/".into(),
                built: false,
            }),
            engine: "Fixed Engine 1.0 (API 1.45) at unix:///fixed.sock".into(),
            warnings: vec![],
        })
    }

    async fn launch(&self, _: Launch) -> bottle::Result<i32> {
        unreachable!("prepare tests never launch")
    }

    async fn engine(&self) -> bottle::Result<String> {
        unreachable!("prepare tests name no engine")
    }

    async fn instances(&self, _: &[(String, String)]) -> bottle::Result<Vec<Instance>> {
        unreachable!("prepare tests list nothing")
    }

    async fn remove(&self, _: &Instance) -> bottle::Result<()> {
        unreachable!("prepare tests remove nothing")
    }

    async fn bundle_branches(
        &self,
        _: &str,
        _: &[(String, String)],
        _: &[String],
        _: &std::path::Path,
        _: u64,
    ) -> bottle::Result<()> {
        unreachable!("prepare tests bundle nothing")
    }

    async fn gate_log(
        &self,
        _: &str,
        _: &[(String, String)],
    ) -> bottle::Result<Vec<egress_gate::event::GateEvent>> {
        unreachable!("prepare tests run no gate")
    }
}

const MANIFEST: &str = r#"{
  "bottles": {
    "dev": {
      "env": {
        "GITEA_TOKEN": "?paste your Gitea API token",
        "GITHUB_TOKEN": "${GH_PAT}",
        "GIT_AUTHOR_NAME": "Ada",
        "ANTHROPIC_API_KEY": "?"
      },
      "ssh": [
        { "Host": "gitea", "Hostname": "gitea.example.com", "User": "git",
          "Port": "30009", "IdentityFile": "~/.ssh/id_gitea",
          "KnownHostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN5JHWXfXnB6Rx8LMAS/LL70xAFG6dMKBhk2qtPakweA" }
      ],
      "egress": { "allowlist": ["gitea.example.com", "pypi.org", "*.example.org:8443"],
                  "private": ["gitea.example.com"] }
    },
    "broken": { "ssh": [ { "Host": "gone", "IdentityFile": "~/.ssh/missing" } ] }
  },
  "agents": {
    "implementer": { "bottle": "dev", "skills": ["tdd"], "prompt": "\n  You implement.\nSecond line." },
    "lost": { "bottle": "dev", "skills": ["nope"] },
    "keyless": { "bottle": "broken" }
  }
}"#;

fn home_with_skill_and_key(home: &Path) {
    fs::create_dir_all(home.join(".claude/skills/tdd")).unwrap();
    fs::write(
        home.join(".claude/skills/tdd/SKILL.md"),
        "---\nname: tdd\n---\n",
    )
    .unwrap();
    fs::create_dir_all(home.join(".ssh")).unwrap();
    // A fixed key, so the plan is the same on every run.
    let key = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[7; 32]));
    let pem = key.to_openssh(ssh_key::LineEnding::LF).unwrap();
    fs::write(home.join(".ssh/id_gitea"), pem.as_bytes()).unwrap();
}

async fn prepare_agent(
    agent: &str,
    home: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> bottle::Result<bottle::prepare::Prepared> {
    fs::write(home.join("claude-bottle.json"), MANIFEST).unwrap();
    let manifest = Manifest::load(home, home)?;
    let spec = BottleSpec {
        manifest: &manifest,
        agent: agent.into(),
        copy_cwd: bottle::spec::CopyCwd::No,
        cwd: home.to_path_buf(),
        home: home.to_path_buf(),
        remote_control: false,
        dry_run: true,
        settings: Settings::from_lookup(|name| match name {
            "CLAUDE_BOTTLE_OAUTH_TOKEN" => Some("oauth-value".into()),
            "CLAUDE_BOTTLE_GATE_IMAGE" => Some("example/gate:1".into()),
            _ => None,
        })?,
    };
    prepare(&FixedBackend, &spec, lookup).await
}

#[tokio::test]
async fn the_plan_holds_names_and_never_values() {
    let home = tempfile::tempdir().unwrap();
    home_with_skill_and_key(home.path());
    let prepared = prepare_agent("implementer", home.path(), |var| {
        (var == "GH_PAT").then(|| "ghp-host-value".into())
    })
    .await
    .unwrap();
    let mut plan = prepared.plan.clone();
    assert!(plan.instance.starts_with("claude-bottle-implementer-"));
    plan.instance = "[INSTANCE]".into();
    let json = plan.to_json();
    assert!(!json.contains("ghp-host-value") && !json.contains("oauth-value"));
    insta::assert_snapshot!("plan_json", json);
    insta::assert_snapshot!("plan_text", plan.to_text());

    // The stage holds the prompt and the plan, readable by the owner only.
    let stage = prepared.stage.path().to_path_buf();
    let prompt = fs::read_to_string(stage.join("prompt.md")).unwrap();
    assert!(prompt.contains("You implement."));
    let mode = fs::metadata(stage.join("plan.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        fs::metadata(&stage).unwrap().permissions().mode() & 0o777,
        0o700
    );
    drop(prepared);
    assert!(!stage.exists(), "the stage is removed when dropped");
}

#[tokio::test]
async fn host_checks_run_for_the_selected_agent_only() {
    let home = tempfile::tempdir().unwrap();
    home_with_skill_and_key(home.path());
    let with_pat = |var: &str| (var == "GH_PAT").then(|| "x".to_owned());

    let err = prepare_agent("lost", home.path(), with_pat)
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("skill `nope` of agent `lost`"),
        "{err}"
    );

    let err = prepare_agent("keyless", home.path(), with_pat)
        .await
        .unwrap_err();
    assert!(
        err.message().contains("key file of ssh host `gone`"),
        "{err}"
    );
    assert!(err.message().contains(".ssh/missing"), "{err}");

    let err = prepare_agent("implementer", home.path(), |_| None)
        .await
        .unwrap_err();
    assert!(err.message().contains("`GH_PAT`"), "{err}");

    // The two broken agents do not stop the one whose host has everything.
    assert!(
        prepare_agent("implementer", home.path(), with_pat)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_skill_folder_without_skill_md_is_refused() {
    let home = tempfile::tempdir().unwrap();
    home_with_skill_and_key(home.path());
    fs::remove_file(home.path().join(".claude/skills/tdd/SKILL.md")).unwrap();
    let err = prepare_agent("implementer", home.path(), |_| Some("x".into()))
        .await
        .unwrap_err();
    assert!(err.message().ends_with("has no SKILL.md"), "{err}");
}
