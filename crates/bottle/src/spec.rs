//! What the user asked for: the input of prepare, before anything is resolved.

use std::path::PathBuf;

use crate::manifest::Manifest;
use crate::settings::Settings;

#[derive(Debug)]
pub struct BottleSpec<'m> {
    pub manifest: &'m Manifest,
    pub agent: String,
    /// `--cwd`: what of the working directory's repository goes into the
    /// bottle.
    pub copy_cwd: CopyCwd,
    pub cwd: PathBuf,
    pub home: PathBuf,
    pub remote_control: bool,
    /// Nothing will be launched: prepare may go on without an engine.
    pub dry_run: bool,
    pub settings: Settings,
}

/// What `--cwd` copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyCwd {
    No,
    /// The repository, with uncommitted changes to tracked files.
    Tracked,
    /// That, and the untracked files that are not ignored.
    WithUntracked,
}
