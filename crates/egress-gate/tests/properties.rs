//! Properties of matching, normalisation and address classes, over
//! generated inputs rather than hand-picked ones.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_gate::host::{self, Host};
use egress_gate::{AddressClass, EgressRule, Method, Policy, Refusal, classify};
use proptest::prelude::*;

/// A DNS label; `xn--` ones are punycode and tested on their own.
fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}[a-z0-9]".prop_filter("not punycode", |l| !l.starts_with("xn--"))
}

/// Random upper/lower case and an optional trailing dot.
fn respell(name: &str, mask: u64, dot: bool) -> String {
    let mut out: String = name
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    if dot {
        out.push('.');
    }
    out
}

proptest! {
    #[test]
    fn every_ipv4_spelling_reads_as_the_same_address(raw in any::<u32>()) {
        let address = Ipv4Addr::from(raw);
        let [a, b, c, d] = address.octets();
        let spellings = [
            address.to_string(),
            raw.to_string(),
            format!("0x{raw:x}"),
            format!("0{raw:o}"),
            format!("{a}.{b}.{}", u32::from(c) << 8 | u32::from(d)),
            format!("{a}.{}", raw & 0x00ff_ffff),
            format!("0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}"),
            format!("[::ffff:{address}]"),
        ];
        for spelling in spellings {
            prop_assert_eq!(host::parse(&spelling), Some(Host::Address(IpAddr::V4(address))), "{}", spelling);
        }
    }

    #[test]
    fn a_listed_name_matches_in_any_case_and_nothing_else_does(
        labels in prop::collection::vec(label(), 2..4),
        mask in any::<u64>(),
        dot in any::<bool>(),
        extra in label(),
    ) {
        let name = labels.join(".");
        let policy = Policy::new(vec![name.parse().unwrap()], vec![], vec![]);
        let spelled = host::parse(&respell(&name, mask, dot)).unwrap();
        prop_assert!(policy.check(&spelled, 443, Method::Connect).is_ok());
        // A name below it, or beside it, is another name.
        let below = host::parse(&format!("{extra}.{name}")).unwrap();
        prop_assert_eq!(policy.check(&below, 443, Method::Connect), Err(Refusal::NotListed));
        let beside = host::parse(&format!("{extra}{name}")).unwrap();
        prop_assert_eq!(policy.check(&beside, 443, Method::Connect), Err(Refusal::NotListed));
    }

    #[test]
    fn a_wildcard_covers_its_domain_and_never_another(
        sub in prop::collection::vec(label(), 0..3),
        domain in label(),
        other in label(),
        mask in any::<u64>(),
    ) {
        prop_assume!(domain != other);
        // Some names under .com are public suffixes themselves (`it.com`).
        let rule = format!("*.{domain}.com").parse::<EgressRule>();
        prop_assume!(rule.is_ok());
        let rule = rule.unwrap();
        let policy = Policy::new(vec![rule], vec![], vec![]);
        let mut inside = sub.clone();
        inside.push(format!("{domain}.com"));
        let inside = host::parse(&respell(&inside.join("."), mask, false)).unwrap();
        prop_assert!(policy.check(&inside, 443, Method::Connect).is_ok());
        let mut outside = sub;
        outside.push(format!("{other}.com"));
        let outside = host::parse(&outside.join(".")).unwrap();
        prop_assert_eq!(policy.check(&outside, 443, Method::Connect), Err(Refusal::NotListed));
        let suffix_trick = host::parse(&format!("{domain}.com.{other}.com")).unwrap();
        prop_assert_eq!(policy.check(&suffix_trick, 443, Method::Connect), Err(Refusal::NotListed));
    }

    #[test]
    fn address_classes_hold_for_whole_ranges(low in any::<u32>()) {
        let loopback = Ipv4Addr::from(0x7f00_0000 | (low & 0x00ff_ffff));
        let metadata = Ipv4Addr::from(0xa9fe_0000 | (low & 0xffff));
        let ten = Ipv4Addr::from(0x0a00_0000 | (low & 0x00ff_ffff));
        let cgnat = Ipv4Addr::from(0x6440_0000 | (low & 0x003f_ffff));
        prop_assert_eq!(classify(loopback.into()), AddressClass::Forbidden("loopback"));
        prop_assert_eq!(classify(metadata.into()), AddressClass::Forbidden("link-local"));
        prop_assert_eq!(classify(ten.into()), AddressClass::Private);
        prop_assert_eq!(classify(cgnat.into()), AddressClass::Private);
        // An IPv4-mapped IPv6 address is classed as the IPv4 address it maps.
        let any = Ipv4Addr::from(low);
        let mapped: Ipv6Addr = any.to_ipv6_mapped();
        prop_assert_eq!(classify(mapped.into()), classify(any.into()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    /// Any allowlist entry or host: read or refused, never a panic; an
    /// entry that reads reads the same from its own spelling.
    #[test]
    fn any_entry_or_host_reads_or_is_refused(text in "[ -~\\u{80}-\\u{3000}]{0,40}") {
        let _ = host::parse(&text);
        if let Ok(rule) = text.parse::<EgressRule>() {
            let again: EgressRule = rule.to_string().parse().unwrap();
            prop_assert_eq!(again, rule);
        }
    }
}
