//! The egress gate: the only way out of a bottle.
//!
//! An HTTP proxy that admits CONNECT tunnels and plain HTTP requests only
//! to the host:port pairs of the bottle's allowlist. Each request is
//! decided on its name before anything is resolved; names are resolved
//! here, in Rust, and every address is checked again before it is dialled.
//! The manifest loader uses this crate's entry grammar, so an entry that
//! loads is exactly an entry the gate understands. No container-engine
//! code lives here: the gate runs in a bare image.

mod activity;
mod address;
pub mod event;
mod forward;
pub mod handoff;
mod held;
pub mod host;
mod log;
mod policy;
mod proxy;
mod relay;
mod report;
mod resolve;
mod rule;
mod sni;
pub mod suffix;

pub use address::{AddressClass, classify};
pub use log::{DecisionLog, Refused, Report};
pub use policy::{EXPECTED_RULE, Grant, Method, Policy, Refusal};
pub use proxy::{Config, MAX_HEAD, serve, serve_on};
pub use report::{REPORT_ADDRESS, serve_report};
pub use rule::{EgressRule, HostPattern, RuleError};
