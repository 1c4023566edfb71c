//! Everything about a bottle that is not the command line: the manifest,
//! the environment, the plan, and the backends that run a plan.
//!
//! The pure parts (manifest, env, plan, names) know nothing of engines;
//! engine calls sit behind [`backend::Backend`].

mod archive;
pub mod backend;
pub mod bottle_text;
pub mod claude_traffic;
pub mod doctor;
pub mod egress_log;
pub mod env;
pub mod error;
pub mod images;
pub mod lifecycle;
pub mod manifest;
pub mod plan;
pub mod prepare;
pub mod provision;
pub mod repo;
pub mod settings;
pub mod spec;
pub mod ssh;
pub mod ui;

pub use error::{Error, Result};
