//! The egress gate: the only way out of a bottle.
//!
//! This crate holds the policy side of the gate: how an allowlist entry is
//! written and what it admits. The manifest loader uses the same grammar,
//! so an entry that loads is exactly an entry the gate understands; the two
//! can never drift apart. The proxy itself will live here too, and this
//! crate stays free of any container-engine code so the gate can run in a
//! bare image.

mod rule;

pub use rule::{EgressRule, HostPattern, RuleError};
