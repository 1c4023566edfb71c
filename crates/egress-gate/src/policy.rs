//! The decision: may this request go to this host and port?
//!
//! The name is checked here, before anything is resolved, so a refused name
//! never reaches a DNS server (where the name itself could carry data out).
//! What a name resolves to is checked again afterwards, per address.

use std::fmt;
use std::net::IpAddr;

use crate::address::{AddressClass, classify};
use crate::host::Host;
use crate::rule::{EgressRule, HostPattern};

/// How the client asked: a CONNECT tunnel or a plain HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Connect,
    Http,
}

impl Method {
    /// The port an entry without one admits.
    fn default_port(self) -> u16 {
        match self {
            Self::Connect => 443,
            Self::Http => 80,
        }
    }
}

/// The rule of a refusal of an expected name.
pub const EXPECTED_RULE: &str = "expected-not-allowed";

/// Why a request was refused; the `Display` form is the rule named in the
/// 403 and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    InvalidHost,
    NotListed,
    PortNotAllowed,
    AddressNotListed,
    ForbiddenAddress(&'static str),
    PrivateAddress,
    HostHeaderMismatch,
    SniMismatch,
    /// A server name not in the canonical form the gate checked it in.
    SniNotCanonical,
    NotTls,
    /// A tunnel to a web port that carries neither HTTP nor TLS.
    UnknownProtocol,
    /// Encrypted Client Hello: the name it shows is a cover.
    EncryptedHello,
    /// A ClientHello that names its server more than one way.
    AmbiguousHello,
    /// A request a server could read other than the gate did (framing,
    /// `Host`), or no proxy request at all.
    MalformedRequest,
    /// One of the names Claude Code itself calls for what the user did
    /// not ask for (release notes, say): refused, but expected.
    Expected,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidHost => f.write_str("invalid-host"),
            Self::NotListed => f.write_str("not-on-allowlist"),
            Self::PortNotAllowed => f.write_str("port-not-allowed"),
            Self::AddressNotListed => f.write_str("address-not-listed"),
            Self::ForbiddenAddress(class) => write!(f, "{class}-address"),
            Self::PrivateAddress => f.write_str("private-address-not-allowed"),
            Self::HostHeaderMismatch => f.write_str("host-header-mismatch"),
            Self::SniMismatch => f.write_str("sni-mismatch"),
            Self::SniNotCanonical => f.write_str("sni-not-canonical"),
            Self::NotTls => f.write_str("not-tls"),
            Self::UnknownProtocol => f.write_str("unknown-protocol"),
            Self::EncryptedHello => f.write_str("encrypted-client-hello"),
            Self::AmbiguousHello => f.write_str("ambiguous-client-hello"),
            Self::MalformedRequest => f.write_str("malformed-request"),
            Self::Expected => f.write_str(EXPECTED_RULE),
        }
    }
}

/// Leave to go: the entry that allowed it and whether it may resolve to a
/// private address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub rule: String,
    pub private: bool,
    /// A declared SSH host at its port: the tunnel carries SSH, not TLS,
    /// whatever the port.
    pub ssh: bool,
}

/// The bottle's egress policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Vec<EgressRule>,
    private: Vec<EgressRule>,
    ssh: Vec<(Host, u16)>,
    /// Exact names refused as [`Refusal::Expected`] when nothing allows them.
    expected: Vec<String>,
}

impl Policy {
    /// `ssh` are SSH hosts: each admitted for CONNECT at its port, private
    /// addresses included.
    pub fn new(allow: Vec<EgressRule>, private: Vec<EgressRule>, ssh: Vec<(Host, u16)>) -> Self {
        Self {
            allow,
            private,
            ssh,
            expected: Vec::new(),
        }
    }

    /// Names that are refused as expected: asked for by the agent's own
    /// tools, not by the agent. Only exact names, so the log may show them
    /// whole: no label of theirs is the agent's choice.
    #[must_use]
    pub fn expecting(mut self, names: Vec<String>) -> Self {
        self.expected = names;
        self
    }

    /// Decides on the host and port alone, before any lookup.
    pub fn check(&self, host: &Host, port: u16, method: Method) -> Result<Grant, Refusal> {
        if let Host::Address(address) = host {
            if let AddressClass::Forbidden(class) = classify(*address) {
                return Err(Refusal::ForbiddenAddress(class));
            }
        }
        if method == Method::Connect {
            if let Some((ssh_host, _)) = self.ssh.iter().find(|(h, p)| h == host && *p == port) {
                return Ok(Grant {
                    rule: format!("ssh {}:{port}", ssh_host.text()),
                    private: true,
                    ssh: true,
                });
            }
        }
        let matching: Vec<&EgressRule> = self
            .allow
            .iter()
            .filter(|rule| host_matches(&rule.host, host))
            .collect();
        if matching.is_empty() {
            return Err(match host {
                Host::Address(_) => Refusal::AddressNotListed,
                Host::Name(name) if self.expected.contains(name) => Refusal::Expected,
                Host::Name(_) => Refusal::NotListed,
            });
        }
        let rule = matching
            .into_iter()
            .find(|rule| rule.port.unwrap_or(method.default_port()) == port)
            .ok_or(Refusal::PortNotAllowed)?;
        Ok(Grant {
            rule: rule.to_string(),
            // A listed address is explicit enough; a name needs `private`.
            private: matches!(rule.host, HostPattern::Address(_)) || self.private.contains(rule),
            ssh: false,
        })
    }

    /// The part of `host` an entry names, for the log: the whole name or
    /// address an entry lists, else the longest wildcard domain covering it.
    pub fn listed_part(&self, host: &Host) -> Option<String> {
        let patterns = self.allow.iter().map(|rule| &rule.host);
        let exact = patterns.clone().any(|pattern| match (pattern, host) {
            (HostPattern::Name(name), Host::Name(host)) => name == host,
            (HostPattern::Address(listed), Host::Address(address)) => listed == address,
            _ => false,
        });
        if exact || self.ssh.iter().any(|(ssh, _)| ssh == host) {
            return Some(host.text());
        }
        patterns
            .filter_map(|pattern| match pattern {
                HostPattern::Domain(domain) if host_matches(pattern, host) => Some(domain),
                _ => None,
            })
            .max_by_key(|domain| domain.len())
            .cloned()
    }

    /// Whether the gate may dial `address` under `grant`.
    pub fn may_dial(grant: &Grant, address: IpAddr) -> Result<(), Refusal> {
        match classify(address) {
            AddressClass::Forbidden(class) => Err(Refusal::ForbiddenAddress(class)),
            AddressClass::Private if !grant.private => Err(Refusal::PrivateAddress),
            AddressClass::Private | AddressClass::Public => Ok(()),
        }
    }
}

fn host_matches(pattern: &HostPattern, host: &Host) -> bool {
    match (pattern, host) {
        (HostPattern::Name(name), Host::Name(host)) => name == host,
        (HostPattern::Domain(domain), Host::Name(host)) => {
            host == domain
                || host
                    .strip_suffix(domain.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        }
        (HostPattern::Address(listed), Host::Address(address)) => listed == address,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host;

    fn policy() -> Policy {
        let rules = |list: &[&str]| list.iter().map(|r| r.parse().unwrap()).collect();
        Policy::new(
            rules(&[
                "pypi.org",
                "*.example.com",
                "gitea.lan:3000",
                "203.0.113.7",
                "[2001:db8::7]:8443",
            ]),
            rules(&["gitea.lan:3000"]),
            vec![(host::parse("git.internal").unwrap(), 2222)],
        )
    }

    fn check(host: &str, port: u16, method: Method) -> Result<Grant, Refusal> {
        policy().check(
            &host::parse(host).ok_or(Refusal::InvalidHost)?,
            port,
            method,
        )
    }

    #[test]
    fn expected_names_are_refused_as_expected_only_when_exact_and_not_allowed() {
        let policy = policy().expecting(vec![
            "raw.githubusercontent.com".to_owned(),
            "pypi.org".to_owned(),
        ]);
        let check = |name: &str| policy.check(&host::parse(name).unwrap(), 443, Method::Connect);
        assert_eq!(check("raw.githubusercontent.com"), Err(Refusal::Expected));
        assert_eq!(check("RAW.githubusercontent.com."), Err(Refusal::Expected));
        assert_eq!(
            check("x.raw.githubusercontent.com"),
            Err(Refusal::NotListed)
        );
        assert_eq!(check("githubusercontent.com"), Err(Refusal::NotListed));
        // The allowlist wins: listing an expected name allows it.
        assert_eq!(check("pypi.org").unwrap().rule, "pypi.org");
        assert_eq!(Refusal::Expected.to_string(), EXPECTED_RULE);
    }

    #[test]
    fn names_match_exactly_and_wildcards_cover_their_domain() {
        assert_eq!(
            check("PyPI.org.", 443, Method::Connect).unwrap().rule,
            "pypi.org"
        );
        assert_eq!(
            check("pypi.org", 80, Method::Http).unwrap().rule,
            "pypi.org"
        );
        assert_eq!(
            check("files.pypi.org", 443, Method::Connect),
            Err(Refusal::NotListed)
        );
        for covered in ["example.com", "a.example.com", "a.b.example.com"] {
            assert_eq!(
                check(covered, 443, Method::Connect).unwrap().rule,
                "*.example.com",
                "{covered}"
            );
        }
        for outside in ["badexample.com", "example.com.evil.org", "example.co"] {
            assert_eq!(
                check(outside, 443, Method::Connect),
                Err(Refusal::NotListed),
                "{outside}"
            );
        }
    }

    #[test]
    fn ports_are_the_web_ports_unless_named() {
        assert_eq!(
            check("pypi.org", 80, Method::Connect),
            Err(Refusal::PortNotAllowed)
        );
        assert_eq!(
            check("pypi.org", 443, Method::Http),
            Err(Refusal::PortNotAllowed)
        );
        assert_eq!(
            check("pypi.org", 22, Method::Connect),
            Err(Refusal::PortNotAllowed)
        );
        assert!(check("gitea.lan", 3000, Method::Connect).is_ok());
        assert!(check("gitea.lan", 3000, Method::Http).is_ok());
        assert_eq!(
            check("gitea.lan", 443, Method::Connect),
            Err(Refusal::PortNotAllowed)
        );
    }

    #[test]
    fn addresses_pass_only_when_listed_in_whatever_spelling() {
        for spelling in [
            "203.0.113.7",
            "0xcb.0.113.7",
            "3405803783",
            "[::ffff:203.0.113.7]",
        ] {
            assert_eq!(
                check(spelling, 443, Method::Connect).unwrap().rule,
                "203.0.113.7",
                "{spelling}"
            );
        }
        assert_eq!(
            check("203.0.113.8", 443, Method::Connect),
            Err(Refusal::AddressNotListed)
        );
        assert!(check("[2001:db8::7]", 8443, Method::Connect).is_ok());
        for forbidden in [
            "127.0.0.1",
            "127.1",
            "0x7f000001",
            "[::1]",
            "169.254.169.254",
            "0.0.0.0",
        ] {
            assert!(
                matches!(
                    check(forbidden, 443, Method::Connect),
                    Err(Refusal::ForbiddenAddress(_))
                ),
                "{forbidden}"
            );
        }
    }

    #[test]
    fn private_addresses_only_for_private_entries_and_ssh_hosts() {
        let public_only = check("pypi.org", 443, Method::Connect).unwrap();
        let private_ok = check("gitea.lan", 3000, Method::Connect).unwrap();
        let ssh = check("git.internal", 2222, Method::Connect).unwrap();
        assert_eq!(ssh.rule, "ssh git.internal:2222");
        assert_eq!(
            check("git.internal", 2222, Method::Http),
            Err(Refusal::NotListed)
        );
        let lan: IpAddr = "192.168.1.20".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        assert_eq!(
            Policy::may_dial(&public_only, lan),
            Err(Refusal::PrivateAddress)
        );
        assert_eq!(Policy::may_dial(&private_ok, lan), Ok(()));
        assert_eq!(Policy::may_dial(&ssh, lan), Ok(()));
        assert_eq!(
            Policy::may_dial(&private_ok, metadata),
            Err(Refusal::ForbiddenAddress("link-local"))
        );
        assert_eq!(
            Policy::may_dial(&public_only, "203.0.113.9".parse().unwrap()),
            Ok(())
        );
    }
}
