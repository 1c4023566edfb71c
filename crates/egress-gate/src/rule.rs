//! One allowlist entry: `host`, `host:port`, `*.domain[:port]` or an IP
//! literal.
//!
//! Entries are parsed strictly. Anything a URL parser would read in more
//! than one way (a scheme, a path, an IPv4 address in octal or hex) is
//! refused at load rather than guessed at, because a guess in an allowlist
//! is a hole in it.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use crate::address::{AddressClass, classify};
use crate::suffix;

fn others_below(others: usize) -> String {
    match others {
        0 => String::new(),
        1 => " (and 1 more is)".to_owned(),
        n => format!(" (and {n} more are)"),
    }
}

/// A parsed allowlist entry. Two entries that admit the same traffic compare
/// equal, whatever their spelling (`Example.COM.` and `example.com`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EgressRule {
    pub host: HostPattern,
    /// The one port this entry admits; `None` means the web ports (443 for
    /// CONNECT, 80 for plain HTTP).
    pub port: Option<u16>,
}

/// What an entry matches, before the port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostPattern {
    /// Exactly this name (lower case, no trailing dot).
    Name(String),
    /// This registrable domain and every name below it (`*.example.com`).
    Domain(String),
    /// Exactly this address; the only way an address is ever admitted.
    Address(IpAddr),
}

/// Why an entry is not a valid allowlist entry. Each variant carries a hint
/// saying how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("is empty")]
    Empty,
    #[error("contains white space")]
    WhiteSpace,
    #[error("has a scheme (`{0}://`)")]
    Scheme(String),
    #[error("has a path")]
    Path,
    #[error("has a bad port `{0}`")]
    Port(String),
    #[error("is not a valid host name")]
    Name(String),
    #[error("is not ASCII")]
    NotAscii(String),
    #[error("has `*` somewhere other than first")]
    WildcardPlacement,
    #[error("covers other owners' names: `{suffix}` is a public suffix{}", others_below(*.others))]
    WildcardTooBroad {
        domain: String,
        /// The first public suffix at or below the wildcard's domain.
        suffix: String,
        /// How many more lie below it.
        others: usize,
    },
    #[error("looks like an IP address in a non-standard spelling")]
    AmbiguousAddress(String),
    #[error("has an IPv6 address with a port outside brackets")]
    UnbracketedIpv6,
    #[error("is a {class} address, which the gate never dials")]
    ForbiddenAddress {
        address: IpAddr,
        class: &'static str,
    },
}

impl RuleError {
    /// How to write the entry so that it loads.
    pub fn hint(&self) -> String {
        match self {
            Self::Empty | Self::WhiteSpace => {
                "write one host per entry, e.g. `pypi.org` or `gitea.example.com:8443`".into()
            }
            Self::Scheme(_) | Self::Path => {
                "write only the host and, if it is not 443/80, the port: `example.com:8443`".into()
            }
            Self::Port(_) => {
                "write the port as a number from 1 to 65535: `example.com:8443`".into()
            }
            Self::Name(_) => {
                "a host name is made of labels of letters, digits and `-`, separated by dots".into()
            }
            Self::NotAscii(_) => {
                "write internationalised names in their ASCII form (`xn--...`)".into()
            }
            Self::WildcardPlacement => {
                "name one domain under the wildcard, e.g. `*.example.com` or `*.example.co.uk`"
                    .into()
            }
            Self::WildcardTooBroad { domain, suffix, .. } if domain == suffix => {
                format!("name one owner's domain under it, e.g. `*.example.{domain}`")
            }
            Self::WildcardTooBroad { domain, suffix, .. } => {
                let suffix = suffix.trim_start_matches("*.");
                format!(
                    "list the hosts you need (`api.{domain}`), or one owner's names under \
                     the suffix (`*.yours.{suffix}`)"
                )
            }
            Self::AmbiguousAddress(_) => {
                "write IPv4 addresses as four decimal numbers, e.g. `203.0.113.7`".into()
            }
            Self::UnbracketedIpv6 => "write it as `[2001:db8::7]:8443`".into(),
            Self::ForbiddenAddress { .. } => {
                "loopback, link-local, metadata, multicast, reserved and unspecified addresses \
                 cannot be allowed; remove the entry"
                    .into()
            }
        }
    }
}

impl FromStr for EgressRule {
    type Err = RuleError;

    fn from_str(entry: &str) -> Result<Self, RuleError> {
        if entry.is_empty() {
            return Err(RuleError::Empty);
        }
        if entry.chars().any(char::is_whitespace) {
            return Err(RuleError::WhiteSpace);
        }
        if let Some((scheme, _)) = entry.split_once("://") {
            return Err(RuleError::Scheme(scheme.to_owned()));
        }
        if entry.contains(['/', '?', '#', '@']) {
            return Err(RuleError::Path);
        }
        let (host, port) = split_port(entry)?;
        let host = parse_host(host)?;
        Ok(Self { host, port })
    }
}

/// Splits `host[:port]` and `[v6][:port]`; a bare IPv6 address has no port.
fn split_port(entry: &str) -> Result<(&str, Option<u16>), RuleError> {
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or(RuleError::UnbracketedIpv6)?;
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(RuleError::Name(format!("[{inside}]")));
        }
        return match after {
            "" => Ok((inside, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((inside, Some(parse_port(port)?))),
                None => Err(RuleError::Name(entry.to_owned())),
            },
        };
    }
    match entry.matches(':').count() {
        0 => Ok((entry, None)),
        1 => {
            let (host, port) = entry.split_once(':').expect("one colon");
            Ok((host, Some(parse_port(port)?)))
        }
        _ if entry.parse::<Ipv6Addr>().is_ok() => Ok((entry, None)),
        _ => Err(RuleError::UnbracketedIpv6),
    }
}

fn parse_port(text: &str) -> Result<u16, RuleError> {
    match text.parse::<u16>() {
        Ok(port) if port != 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(RuleError::Port(text.to_owned())),
    }
}

fn parse_host(host: &str) -> Result<HostPattern, RuleError> {
    if let Ok(address) = host.parse::<IpAddr>() {
        check_address(address)?;
        return Ok(HostPattern::Address(address));
    }
    if !host.is_ascii() {
        return Err(RuleError::NotAscii(host.to_owned()));
    }
    let lower = host.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if let Some(domain) = name.strip_prefix("*.") {
        check_name(domain, host)?;
        if suffix::is_suffix(domain) {
            return Err(RuleError::WildcardTooBroad {
                domain: domain.to_owned(),
                suffix: domain.to_owned(),
                others: 0,
            });
        }
        // The broadest suffix below is named: the one the user most likely
        // did not mean to cover.
        let mut covered = suffix::within(domain);
        covered.sort_by_key(|s| (s.split('.').count(), s.clone()));
        if let Some(first) = covered.first() {
            return Err(RuleError::WildcardTooBroad {
                domain: domain.to_owned(),
                suffix: first.clone(),
                others: covered.len() - 1,
            });
        }
        return Ok(HostPattern::Domain(domain.to_owned()));
    }
    check_name(name, host)?;
    Ok(HostPattern::Name(name.to_owned()))
}

fn check_name(name: &str, original: &str) -> Result<(), RuleError> {
    if name.contains('*') {
        return Err(RuleError::WildcardPlacement);
    }
    let last = name.rsplit('.').next().unwrap_or_default();
    let numeric = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    let hex = last.len() > 1 && last[..2].eq_ignore_ascii_case("0x");
    if numeric || hex {
        return Err(RuleError::AmbiguousAddress(original.to_owned()));
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(RuleError::Name(original.to_owned()));
    }
    // The gate reads request hosts through IDNA; a name it would read
    // differently (`xn--` labels that are not valid punycode) could never
    // match, so it is refused here.
    if idna::domain_to_ascii(name).ok().as_deref() != Some(name) {
        return Err(RuleError::Name(original.to_owned()));
    }
    Ok(())
}

/// Refuses the address classes the gate never dials, whatever the list says.
fn check_address(address: IpAddr) -> Result<(), RuleError> {
    match classify(address) {
        AddressClass::Forbidden(class) => Err(RuleError::ForbiddenAddress { address, class }),
        AddressClass::Private | AddressClass::Public => Ok(()),
    }
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.port) {
            (HostPattern::Name(name), _) => f.write_str(name)?,
            (HostPattern::Domain(domain), _) => write!(f, "*.{domain}")?,
            (HostPattern::Address(IpAddr::V6(v6)), Some(_)) => write!(f, "[{v6}]")?,
            (HostPattern::Address(address), _) => write!(f, "{address}")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entry: &str) -> Result<String, RuleError> {
        entry.parse::<EgressRule>().map(|rule| rule.to_string())
    }

    #[test]
    fn accepts_each_form_and_normalises_it() {
        assert_eq!(parse("Example.COM."), Ok("example.com".into()));
        assert_eq!(parse("example.com:8443"), Ok("example.com:8443".into()));
        assert_eq!(parse("*.Example.com"), Ok("*.example.com".into()));
        assert_eq!(parse("*.example.co.uk:22"), Ok("*.example.co.uk:22".into()));
        assert_eq!(parse("mock"), Ok("mock".into()));
        assert_eq!(parse("203.0.113.7"), Ok("203.0.113.7".into()));
        assert_eq!(parse("10.0.0.5:3000"), Ok("10.0.0.5:3000".into()));
        assert_eq!(parse("[2001:db8::7]:8443"), Ok("[2001:db8::7]:8443".into()));
        assert_eq!(parse("2001:db8::7"), Ok("2001:db8::7".into()));
        assert_eq!(parse("[2001:db8::7]"), Ok("2001:db8::7".into()));
    }

    #[test]
    fn equal_rules_compare_equal_whatever_the_spelling() {
        let a: EgressRule = "GITEA.example.com.:30009".parse().unwrap();
        let b: EgressRule = "gitea.example.com:30009".parse().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn refuses_what_fits_no_form() {
        let cases: &[(&str, RuleError)] = &[
            ("", RuleError::Empty),
            ("pypi .org", RuleError::WhiteSpace),
            ("https://pypi.org", RuleError::Scheme("https".into())),
            ("pypi.org/simple", RuleError::Path),
            ("pypi.org:0", RuleError::Port("0".into())),
            ("pypi.org:65536", RuleError::Port("65536".into())),
            ("pypi.org:", RuleError::Port(String::new())),
            ("pypi.org:+80", RuleError::Port("+80".into())),
            ("pypi.org:http", RuleError::Port("http".into())),
            ("-bad.org", RuleError::Name("-bad.org".into())),
            ("a..b", RuleError::Name("a..b".into())),
            ("xn--0.example", RuleError::Name("xn--0.example".into())),
            ("bücher.de", RuleError::NotAscii("bücher.de".into())),
            ("api.*.com", RuleError::WildcardPlacement),
            ("*", RuleError::WildcardPlacement),
            ("*.lan", too_broad("lan", "lan", 0)),
            ("127.1", RuleError::AmbiguousAddress("127.1".into())),
            (
                "0x7f.0.0.1",
                RuleError::AmbiguousAddress("0x7f.0.0.1".into()),
            ),
            (
                "2130706433",
                RuleError::AmbiguousAddress("2130706433".into()),
            ),
            (
                "0177.0.0.1",
                RuleError::AmbiguousAddress("0177.0.0.1".into()),
            ),
            ("2001:db8:7", RuleError::UnbracketedIpv6),
        ];
        for (entry, expected) in cases {
            assert_eq!(parse(entry).as_ref(), Err(expected), "entry {entry:?}");
        }
    }

    fn too_broad(domain: &str, suffix: &str, others: usize) -> RuleError {
        RuleError::WildcardTooBroad {
            domain: domain.into(),
            suffix: suffix.into(),
            others,
        }
    }

    #[test]
    fn a_wildcard_covers_one_owners_names_never_a_public_suffix() {
        for (entry, suffix) in [
            ("*.com", "com"),
            ("*.co.uk", "co.uk"),
            ("*.amazonaws.com", "*.compute-1.amazonaws.com"),
            ("*.s3.amazonaws.com", "s3.amazonaws.com"),
            ("*.windows.net", "blob.core.windows.net"),
            ("*.core.windows.net", "blob.core.windows.net"),
            ("*.fastly.net", "freetls.fastly.net"),
            ("*.github.io", "github.io"),
        ] {
            match parse(entry) {
                Err(RuleError::WildcardTooBroad { suffix: found, .. }) => {
                    let listed = suffix::within(entry.trim_start_matches("*."));
                    assert!(
                        found == suffix || listed.iter().any(|s| s == suffix),
                        "{entry}: {found}, and {suffix} in {listed:?}"
                    );
                }
                other => panic!("{entry}: expected a refusal, got {other:?}"),
            }
        }
        let message = parse("*.amazonaws.com").unwrap_err();
        assert!(message.to_string().contains("more are"), "{message}");
        assert!(message.hint().contains("*.yours."), "{}", message.hint());
        for owned in [
            "*.example.com",
            "*.example.co.uk",
            "*.corp.lan",
            "*.mybucket.s3.amazonaws.com",
        ] {
            assert!(parse(owned).is_ok(), "{owned}");
        }
    }

    #[test]
    fn refuses_addresses_the_gate_never_dials() {
        for (entry, class) in [
            ("127.0.0.1", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("169.254.169.254", "link-local"),
            ("224.0.0.1", "multicast"),
            ("[::1]:80", "loopback"),
            ("[fe80::1]", "link-local"),
            ("[::ffff:127.0.0.1]", "loopback"),
            ("[::]", "unspecified"),
        ] {
            match parse(entry) {
                Err(RuleError::ForbiddenAddress { class: got, .. }) => {
                    assert_eq!(got, class, "entry {entry}");
                }
                other => panic!("{entry}: expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn private_addresses_may_be_listed_explicitly() {
        assert_eq!(parse("192.168.1.10"), Ok("192.168.1.10".into()));
        assert_eq!(parse("[fd00::1]:22"), Ok("[fd00::1]:22".into()));
    }
}
