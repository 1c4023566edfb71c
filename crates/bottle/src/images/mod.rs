//! Images claude-bottle built that nothing uses any more: default images of
//! an older base or version, gate images of an older claude-bottle.
//!
//! Each new base, Claude Code version or claude-bottle build makes a new
//! image and leaves the old one; `cleanup` offers to remove those. An
//! image a container still uses is kept.

use serde::Serialize;

pub mod claude_code;
pub mod npm;

use claude_code::DefaultImage;

/// What counts as current: the default image the settings make, and the
/// images `CLAUDE_BOTTLE_IMAGE` and `CLAUDE_BOTTLE_GATE_IMAGE` name (which
/// may be ones claude-bottle built).
#[derive(Debug, Clone)]
pub struct CurrentImages {
    pub default: DefaultImage,
    pub named: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StaleImage {
    pub id: String,
    /// claude-bottle's tags on it, as Docker writes them.
    pub tags: Vec<String>,
    /// Those tags as the engine lists them, which it takes back to remove
    /// them (Podman names them in full: `docker.io/…`, `localhost/…`).
    #[serde(skip)]
    pub listed: Vec<String>,
    /// `default image` or `gate image`.
    pub kind: String,
    pub size_bytes: i64,
}

impl StaleImage {
    /// How the image is named in a plan: its first tag, else its ID.
    pub fn name(&self) -> &str {
        self.tags.first().unwrap_or(&self.id)
    }
}
