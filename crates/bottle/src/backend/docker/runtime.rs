//! Choosing the agent's runtime from what the user asked and what the
//! engine has. gVisor (`runsc`) is preferred when present because it puts a
//! second kernel between the agent and the host.

use crate::error::{Error, Result};
use crate::settings::{RUNTIME, RuntimeChoice};

const UNKNOWN: &str = "unknown";

/// `engine` is `None` when no engine answered (only allowed in a dry run).
pub(super) fn choose(choice: RuntimeChoice, engine: Option<&[String]>) -> Result<String> {
    let Some(engine) = engine else {
        return Ok(UNKNOWN.to_owned());
    };
    let has = |name: &str| engine.iter().any(|r| r == name);
    let wanted = match choice {
        RuntimeChoice::Auto if has("runsc") => "runsc",
        RuntimeChoice::Auto | RuntimeChoice::Runc => "runc",
        RuntimeChoice::Runsc => "runsc",
    };
    if has(wanted) {
        return Ok(wanted.to_owned());
    }
    let hint = if wanted == "runsc" {
        format!(
            "install gVisor and register `runsc` with the engine, or set {}=auto",
            RUNTIME.name
        )
    } else {
        format!("set {}=auto", RUNTIME.name)
    };
    Err(Error::new(format!(
        "the engine has no runtime `{wanted}` (it has: {})",
        engine.join(", ")
    ))
    .hint(hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn auto_prefers_gvisor_when_the_engine_has_it() {
        let with = names(&["io.containerd.runc.v2", "runc", "runsc"]);
        let without = names(&["io.containerd.runc.v2", "runc"]);
        assert_eq!(choose(RuntimeChoice::Auto, Some(&with)).unwrap(), "runsc");
        assert_eq!(choose(RuntimeChoice::Auto, Some(&without)).unwrap(), "runc");
        assert_eq!(choose(RuntimeChoice::Runc, Some(&with)).unwrap(), "runc");
    }

    #[test]
    fn an_explicit_runtime_the_engine_lacks_is_an_error_listing_what_it_has() {
        let err = choose(RuntimeChoice::Runsc, Some(&names(&["runc"]))).unwrap_err();
        assert_eq!(
            err.message(),
            "the engine has no runtime `runsc` (it has: runc)"
        );
    }

    #[test]
    fn without_an_engine_the_runtime_is_unknown() {
        assert_eq!(choose(RuntimeChoice::Runsc, None).unwrap(), "unknown");
    }
}
