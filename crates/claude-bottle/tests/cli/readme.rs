//! The README's quickstart, run as written: each command of its block, on
//! a terminal, the y/N question answered when it is asked.

use std::time::{Duration, Instant};

use crate::support::{
    FAKE_CLAUDE_IMAGE, Sandbox, TEST_LABEL, Terminal, leftovers, run_label, with_fake_claude,
};

const README: &str = include_str!("../../../../README.md");

/// The commands of the first `sh` block under "## Quickstart", as words.
fn quickstart() -> Vec<Vec<String>> {
    let section = README
        .split("\n## Quickstart\n")
        .nth(1)
        .expect("the README has a Quickstart section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the Quickstart has an sh block");
    block
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| shlex::split(line).unwrap_or_else(|| panic!("not shell words: {line}")))
        .collect()
}

#[tokio::test]
async fn the_readme_quickstart_works_as_written() {
    let Some(docker) = with_fake_claude("README quickstart").await else {
        return;
    };
    let commands = quickstart();
    assert!(commands.len() >= 3, "{commands:?}");
    let label = run_label("quickstart");
    let sandbox = Sandbox::new()
        .env("CLAUDE_BOTTLE_IMAGE", FAKE_CLAUDE_IMAGE)
        .env(
            "CLAUDE_BOTTLE_EXTRA_LABELS",
            &format!("{TEST_LABEL}={label}"),
        );
    // "In a git repository of yours".
    crate::cwd::repository(&sandbox.cwd);
    let mut starts = 0;
    for words in &commands {
        assert_eq!(
            words[0], "claude-bottle",
            "not a claude-bottle command: {words:?}"
        );
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        let terminal = Terminal::start(&sandbox, &args);
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut answered = false;
        let screen = loop {
            let screen = terminal.screen();
            if !answered && screen.contains("[y/N]") {
                terminal.type_text("y\n");
                answered = true;
            }
            if screen.contains("exit=") {
                break screen;
            }
            assert!(
                Instant::now() < deadline,
                "{words:?} did not end:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(terminal.exit_status(), 0, "{words:?}:\n{screen}");
        if args[0] == "start" {
            starts += 1;
            assert!(answered, "{words:?} did not ask before starting:\n{screen}");
            assert!(
                screen.contains("@@fixture:report"),
                "claude never ran:\n{screen}"
            );
        }
        if args[0] == "doctor" {
            assert!(
                screen.contains("`claude-bottle start` can work."),
                "{screen}"
            );
        }
    }
    assert!(starts >= 2, "the quickstart starts a bottle: {commands:?}");
    assert_eq!(leftovers(&docker, &label).await, (vec![], vec![]));
}
