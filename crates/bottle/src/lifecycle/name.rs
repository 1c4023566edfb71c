//! Names of bottle instances: `claude-bottle-<agent-slug>-<random>`.
//!
//! Every launch gets a fresh random suffix so two runs of the same agent
//! never collide. The name is only for people; `list` and `cleanup` find
//! resources by their labels, never by this prefix.

use std::fmt;

use rand::Rng;

const PREFIX: &str = "claude-bottle";
const SLUG_MAX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceName(String);

impl InstanceName {
    pub fn generate(agent: &str) -> Self {
        let suffix: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .map(|c| char::from(c).to_ascii_lowercase())
            .take(6)
            .collect();
        Self(format!("{PREFIX}-{}-{suffix}", slug(agent)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lower-case letters and digits, runs of anything else as one `-`.
fn slug(agent: &str) -> String {
    let mut slug = String::new();
    for c in agent.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    let slug = &slug[..slug.len().min(SLUG_MAX)];
    match slug.trim_end_matches('-') {
        "" => "agent".to_owned(),
        s => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe_for_container_names() {
        assert_eq!(slug("implementer"), "implementer");
        assert_eq!(slug("Code Reviewer!"), "code-reviewer");
        assert_eq!(slug("über"), "ber");
        assert_eq!(slug("***"), "agent");
        assert_eq!(slug(&"a".repeat(50)).len(), SLUG_MAX);
    }

    #[test]
    fn two_launches_of_one_agent_get_different_names() {
        let a = InstanceName::generate("dev");
        let b = InstanceName::generate("dev");
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("claude-bottle-dev-"), "{a}");
        assert_eq!(a.as_str().len(), "claude-bottle-dev-".len() + 6);
    }
}
