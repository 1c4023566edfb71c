//! The statx fallback: what a bottle gets where its runtime is a gVisor
//! build that refuses `AT_NO_AUTOMOUNT` with EINVAL (Debian 12's runsc
//! 0.0~20221219), which breaks `ls FILE`, `ls -l` and `stat` in coreutils.
//!
//! The image probe tells the fault, once per image and runtime: coreutils'
//! `stat` fails there with "Invalid argument". Where it does, a shared
//! object of one function (`shim/statx_fallback.c`, built with this crate)
//! goes into the agent's home and is preloaded into claude and all it
//! runs: it clears the flag, which means nothing in a container, before
//! statx reaches the kernel. Under runc or a sound gVisor nothing changes.
//!
//! Why a preload rather than a seccomp profile: no filter can clear a flag
//! (only refuse the call, and glibc's own fallback passes the flag on), and
//! this gVisor applies the engine's seccomp profile only when the engine's
//! own configuration says `--oci-seccomp`.

use super::facts_cache::FactsCache;
use crate::archive::{append_dir, append_file};
use crate::error::{Error, Result};

/// The shared object, for the target this executable was built for.
const SHARED_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/statx_fallback.so"));

/// Where it goes, under the agent's home.
const IN_HOME: &str = ".claude-bottle/lib/statx-fallback.so";

/// A line of the image probe: `statx=faulty` where coreutils' `stat`
/// meets the fault. An image without `stat` tells nothing.
pub(super) const PROBE: &str = r#"command -v stat >/dev/null && case "$(LC_ALL=C stat -c %s / 2>&1)" in *"Invalid argument"*) echo statx=faulty;; esac"#;

/// What the plan and the launch say where the fallback is in use.
pub(super) fn in_use(runtime: &str) -> String {
    format!(
        "the runtime {runtime} refuses coreutils' statx calls (a faulty gVisor build): `ls` and \
         `stat` in the bottle go through claude-bottle's statx fallback; `claude-bottle doctor` \
         tells how to update gVisor"
    )
}

/// Whether an earlier probe of `image` under `runtime` found the fault;
/// an image not probed yet (or not there) is not known to need it.
pub(super) async fn known_needed(
    docker: &bollard::Docker,
    image: &str,
    runtime: &str,
    cache: &FactsCache,
) -> bool {
    let Ok(inspect) = docker.inspect_image(image).await else {
        return false;
    };
    inspect
        .id
        .and_then(|id| cache.get(&id, runtime))
        .is_some_and(|facts| facts.statx_faulty)
}

/// Whether the probe's report tells the fault.
pub(super) fn faulty(report: &str) -> bool {
    report.lines().any(|l| l.trim() == "statx=faulty")
}

/// Whether the fallback can serve a bottle on an engine of
/// `engine_architecture` (as its `info` names it) whose agent's home is
/// `home`; if not, why, as a warning: the bottle works without it, but
/// for `ls` and `stat`.
pub(super) fn fits(engine_architecture: &str, home: &str) -> std::result::Result<(), String> {
    let built_for = match std::env::consts::ARCH {
        "x86_64" => ["x86_64", "amd64"],
        "aarch64" => ["aarch64", "arm64"],
        _ => ["", ""],
    };
    let unserved = "the bottle's runtime refuses coreutils' statx calls (a faulty gVisor build), so \
                    `ls` and `stat` fail in it";
    if SHARED_OBJECT.is_empty() || !built_for.contains(&engine_architecture) {
        return Err(format!(
            "{unserved}: this claude-bottle has no statx fallback for the engine's \
             {engine_architecture}; `claude-bottle doctor` tells how to update gVisor"
        ));
    }
    // `LD_PRELOAD` splits its list at both.
    if home.contains([' ', ':']) {
        return Err(format!(
            "{unserved}: the statx fallback cannot be preloaded from the agent's home `{home}`, \
             which holds a space or a colon"
        ));
    }
    Ok(())
}

/// The fallback as a tar for the agent's home, where it `fits`.
pub(super) fn home_archive(
    engine_architecture: &str,
    home: &str,
) -> std::result::Result<Vec<u8>, String> {
    fits(engine_architecture, home)?;
    packed().map_err(|err| err.to_line())
}

fn packed() -> Result<Vec<u8>> {
    let failed = |err: std::io::Error| Error::caused_by("cannot pack the statx fallback", err);
    let mut archive = tar::Builder::new(Vec::new());
    append_dir(&mut archive, ".claude-bottle", 0o755).map_err(failed)?;
    append_dir(&mut archive, ".claude-bottle/lib", 0o755).map_err(failed)?;
    append_file(
        &mut archive,
        IN_HOME,
        0o644,
        SHARED_OBJECT.len() as u64,
        SHARED_OBJECT,
    )
    .map_err(failed)?;
    archive.into_inner().map_err(failed)
}

/// claude's `LD_PRELOAD` with the fallback first, before any the manifest
/// gives.
pub(super) fn preload(home: &str, given: Option<&str>) -> String {
    let ours = format!("{}/{IN_HOME}", home.trim_end_matches('/'));
    match given.filter(|g| !g.is_empty()) {
        Some(given) => format!("LD_PRELOAD={ours}:{given}"),
        None => format!("LD_PRELOAD={ours}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_is_a_shared_object_that_defines_statx() {
        assert!(SHARED_OBJECT.starts_with(b"\x7fELF"));
        assert!(
            SHARED_OBJECT.windows(6).any(|w| w == b"statx\0"),
            "it exports statx"
        );
    }

    #[test]
    fn it_serves_only_engines_of_its_architecture_and_homes_it_can_be_named_from() {
        let engine = if cfg!(target_arch = "x86_64") {
            "x86_64"
        } else {
            "aarch64"
        };
        assert!(fits(engine, "/home/agent").is_ok());
        assert!(home_archive(engine, "/home/agent").is_ok());
        let other = if engine == "x86_64" {
            "aarch64"
        } else {
            "x86_64"
        };
        let why = fits(other, "/home/agent").unwrap_err();
        assert!(why.contains(&format!("engine's {other}")), "{why}");
        for home in ["/home/a b", "/home/a:b"] {
            assert!(fits(engine, home).unwrap_err().contains("space or a colon"));
        }
    }

    #[test]
    fn the_probe_tells_the_fault_by_its_words_only() {
        assert!(faulty("uid=1000\nstatx=faulty\n"));
        assert!(!faulty("uid=1000\n"));
        assert_eq!(
            preload("/home/agent/", None),
            "LD_PRELOAD=/home/agent/.claude-bottle/lib/statx-fallback.so"
        );
        assert_eq!(
            preload("/home/agent", Some("/opt/x.so")),
            "LD_PRELOAD=/home/agent/.claude-bottle/lib/statx-fallback.so:/opt/x.so"
        );
    }
}
