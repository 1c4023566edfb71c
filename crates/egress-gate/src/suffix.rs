//! The public suffix list: where one owner's names end and another's begin.
//!
//! A wildcard entry may cover one owner's names, never a suffix under
//! which anyone can register a name (`s3.amazonaws.com` under
//! `*.amazonaws.com` is every bucket of every AWS customer). The log
//! shows a refused name's suffix, never a label the agent chose. Both ask
//! this list, compiled in from `data/public_suffix_list.dat` (its
//! `VERSION` line says how current it is; `scripts/update-suffix-list`
//! refreshes it).

use std::sync::LazyLock;

use publicsuffix::{List, Psl};

const TEXT: &str = include_str!("../data/public_suffix_list.dat");

static LIST: LazyLock<List> = LazyLock::new(|| TEXT.parse().expect("the shipped list parses"));

/// The list's own `VERSION` line: the date it was published.
pub fn version() -> &'static str {
    TEXT.lines()
        .find_map(|line| line.strip_prefix("// VERSION: "))
        .unwrap_or("unknown")
}

/// The public suffix `name` ends in, when the list knows it (`co.uk` for
/// `a.b.co.uk`); `None` under a suffix the list does not hold (`corp`).
pub fn known_suffix(name: &str) -> Option<&str> {
    let suffix = LIST.suffix(name.as_bytes())?;
    if !suffix.is_known() {
        return None;
    }
    std::str::from_utf8(suffix.as_bytes()).ok()
}

/// Whether `name` is itself a public suffix, an unknown top-level name
/// (`lan`) included: no one owner's names end there.
pub fn is_suffix(name: &str) -> bool {
    LIST.domain(name.as_bytes()).is_none()
}

/// The list's suffixes at or below `domain`, in its order, as the list
/// writes them in ASCII (`*.compute-1.amazonaws.com`, `s3.amazonaws.com`).
pub fn within(domain: &str) -> Vec<String> {
    let below = format!(".{domain}");
    TEXT.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|rule| !rule.starts_with("//") && !rule.starts_with('!'))
        .filter_map(|rule| {
            idna::domain_to_ascii(rule.trim_start_matches("*."))
                .ok()
                .map(|ascii| (rule, ascii))
        })
        .filter(|(_, ascii)| ascii == domain || ascii.ends_with(&below))
        .map(|(rule, ascii)| {
            if rule.starts_with("*.") {
                format!("*.{ascii}")
            } else {
                ascii
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_and_registrable_domains_of_both_sections() {
        assert_eq!(known_suffix("a.b.example.co.uk"), Some("co.uk"));
        // The private section: each bucket is an owner of its own.
        assert_eq!(
            known_suffix("bucket.s3.amazonaws.com"),
            Some("s3.amazonaws.com")
        );
        assert_eq!(known_suffix("x.corp"), None);
        for suffix in [
            "co.uk",
            "s3.amazonaws.com",
            "lan",
            "x.compute-1.amazonaws.com",
        ] {
            assert!(is_suffix(suffix), "{suffix}");
        }
        for owned in ["example.co.uk", "example.lan", "amazonaws.com"] {
            assert!(!is_suffix(owned), "{owned}");
        }
        // Unicode rules are held in their ASCII form too.
        assert_eq!(
            known_suffix("www.xn--85x722f.xn--55qx5d.cn"),
            Some("xn--55qx5d.cn")
        );
        assert!(version().starts_with("20"), "{}", version());
    }

    #[test]
    fn the_readme_says_how_current_the_list_is() {
        let readme = include_str!("../../../README.md")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let date = &version()[..10];
        assert!(readme.contains(&format!("(version {date};")), "{date}");
    }

    #[test]
    fn the_suffixes_below_a_domain_are_found() {
        let aws = within("amazonaws.com");
        for expected in ["s3.amazonaws.com", "*.compute-1.amazonaws.com"] {
            assert!(aws.iter().any(|s| s == expected), "{expected} in {aws:?}");
        }
        assert!(
            within("windows.net")
                .iter()
                .any(|s| s == "blob.core.windows.net")
        );
        assert!(
            within("fastly.net")
                .iter()
                .any(|s| s.ends_with(".fastly.net"))
        );
        assert!(within("co.uk").iter().any(|s| s == "co.uk"));
        assert!(within("example.com").is_empty());
        assert!(
            within("mazonaws.com").is_empty(),
            "a whole label, not a tail"
        );
    }
}
