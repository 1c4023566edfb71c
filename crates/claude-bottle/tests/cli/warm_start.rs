//! What makes a second start quick, and how a start shows where its time
//! goes: the image's facts kept by image ID, and `CLAUDE_BOTTLE_LOG=timing`.

use fixtures::report::frames;

use crate::support::instance::bottle_sandbox;
use crate::support::{leftovers, with_fake_claude};

#[tokio::test]
async fn a_second_start_of_an_image_takes_its_facts_from_the_cache_not_a_probe() {
    let Some(docker) = with_fake_claude("facts cache").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("facts-cache", &[]);
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let dir = sandbox.home.join(".cache/claude-bottle/image-facts");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("no facts cache at {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("sha256-") && name.ends_with("-v2.json"),
        "{name}"
    );
    // What the cache says is what the next start uses: with a home changed
    // there, the prompt goes there, so no probe looked again.
    let mut facts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(facts["home"], "/home/agent", "{facts}");
    facts["home"] = "/tmp".into();
    std::fs::write(&files[0], facts.to_string()).unwrap();
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let report = frames(&out.stdout, "report").remove(0);
    assert_eq!(
        report["argv"][3], "/tmp/.claude-bottle/prompt.md",
        "{report}"
    );
    // A damaged entry is probed again and rewritten.
    std::fs::write(&files[0], "{\"user\":").unwrap();
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let report = frames(&out.stdout, "report").remove(0);
    assert_eq!(
        report["argv"][3], "/home/agent/.claude-bottle/prompt.md",
        "{report}"
    );
    let rewritten: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(rewritten["home"], "/home/agent");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}

#[tokio::test]
async fn the_timing_log_shows_each_phase_of_a_start_in_order() {
    let Some(docker) = with_fake_claude("timing log").await else {
        return;
    };
    let (sandbox, label) = bottle_sandbox("timing-log", &[]);
    let sandbox = sandbox.env("CLAUDE_BOTTLE_LOG", "timing");
    let out = sandbox.run(&["start", "a", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    // `timing BEGAN ENDED s MS ms  PHASE`, for each phase as it ends.
    let phases: Vec<(f64, f64, &str)> = out
        .stderr
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let ["timing", began, ended, "s", _, "ms", ..] = fields.as_slice() else {
                return None;
            };
            Some((
                began.parse().ok()?,
                ended.parse().ok()?,
                line.split("ms  ").nth(1)?,
            ))
        })
        .collect();
    let find = |name: &str| {
        phases
            .iter()
            .find(|(_, _, phase)| *phase == name)
            .copied()
            .unwrap_or_else(|| panic!("no `{name}` in {}", out.stderr))
    };
    // Each pair: the first ends before the second begins.
    let before = [
        ("engine", "internal network"),
        ("internal network", "gate create"),
        ("gate create", "agent create"),
        ("agent create", "gate/start"),
        ("egress network", "gate/start"),
        ("gate/start", "gate/ready"),
        ("gate/ready", "claude"),
        ("agent create", "agent start"),
        ("agent start", "provision"),
        ("provision", "claude"),
        ("claude", "teardown"),
    ];
    for (first, then) in before {
        let (first_phase, then_phase) = (find(first), find(then));
        assert!(
            first_phase.0 <= first_phase.1 && first_phase.1 <= then_phase.0,
            "{first} does not end before {then} begins: {}",
            out.stderr
        );
    }
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("timing") && l.ends_with("claude: first byte")),
        "{}",
        out.stderr
    );
    // Without the setting, none of it.
    let quiet = sandbox
        .env("CLAUDE_BOTTLE_LOG", "")
        .run(&["start", "a", "--yes"]);
    assert_eq!(quiet.code, 0, "{quiet:?}");
    assert!(!quiet.stderr.contains("timing"), "{}", quiet.stderr);
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}
