//! The life of a bottle instance: its name, the labels and owner every one
//! of its resources carries, its stage directory on the host, what the
//! engine holds of it, the cleanup of what dead instances left, and the
//! test hook that pauses a launch at one of its phases.

pub mod cleanup;
pub mod instance;
pub mod labels;
pub mod name;
pub mod owner;
pub mod pause;
pub mod stage;
