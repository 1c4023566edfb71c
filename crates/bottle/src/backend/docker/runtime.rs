//! Choosing the agent's runtime from what the user asked and what the
//! engine has. gVisor (`runsc`) is preferred when present because it puts a
//! second kernel between the agent and the host, except where the agent
//! reaches its gate on its loopback: gVisor's network stack keeps that
//! loopback to itself, so the listener handed to the gate is not on it.

use super::reach::Reach;
use crate::backend::Runtime;
use crate::error::{Error, Result};
use crate::settings::{RUNTIME, RuntimeChoice};

/// Why gVisor cannot hold a bottle whose agent reaches its gate on its
/// loopback.
pub(super) const GVISOR_OFF_LOOPBACK: &str = "the agent reaches its gate on its own loopback, which gVisor's network stack keeps from the gate";

/// `engine` is `None` when no engine answered (only allowed in a dry run),
/// and then so are `reach` and the runtime.
pub(super) fn choose(
    choice: RuntimeChoice,
    engine: Option<&[String]>,
    reach: Option<Reach>,
) -> Result<Option<Runtime>> {
    let Some(engine) = engine else {
        return Ok(None);
    };
    let gvisor_fits = reach != Some(Reach::Loopback);
    if choice == RuntimeChoice::Runsc && !gvisor_fits {
        return Err(Error::new(format!(
            "gVisor (`runsc`) cannot hold a bottle on this engine: {GVISOR_OFF_LOOPBACK}"
        ))
        .hint(format!("set {}=auto or runc", RUNTIME.name)));
    }
    let has = |runtime: Runtime| engine.iter().any(|r| r == runtime.as_str());
    let wanted = match choice {
        RuntimeChoice::Auto if gvisor_fits && has(Runtime::Runsc) => Runtime::Runsc,
        RuntimeChoice::Auto | RuntimeChoice::Runc => Runtime::Runc,
        RuntimeChoice::Runsc => Runtime::Runsc,
    };
    if has(wanted) {
        return Ok(Some(wanted));
    }
    let hint = if wanted == Runtime::Runsc {
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
        let chosen =
            |choice, engine| choose(choice, Some(engine), Some(Reach::InternalNetwork)).unwrap();
        assert_eq!(chosen(RuntimeChoice::Auto, &with), Some(Runtime::Runsc));
        assert_eq!(chosen(RuntimeChoice::Auto, &without), Some(Runtime::Runc));
        assert_eq!(chosen(RuntimeChoice::Runc, &with), Some(Runtime::Runc));
    }

    #[test]
    fn where_the_gate_is_on_the_agents_loopback_gvisor_is_not_chosen_and_refused_if_asked() {
        let with = names(&["crun", "runc", "runsc"]);
        let loopback = Some(Reach::Loopback);
        assert_eq!(
            choose(RuntimeChoice::Auto, Some(&with), loopback).unwrap(),
            Some(Runtime::Runc)
        );
        let err = choose(RuntimeChoice::Runsc, Some(&with), loopback).unwrap_err();
        assert!(
            err.message()
                .starts_with("gVisor (`runsc`) cannot hold a bottle on this engine"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn an_explicit_runtime_the_engine_lacks_is_an_error_listing_what_it_has() {
        let err = choose(RuntimeChoice::Runsc, Some(&names(&["runc"])), None).unwrap_err();
        assert_eq!(
            err.message(),
            "the engine has no runtime `runsc` (it has: runc)"
        );
    }

    #[test]
    fn without_an_engine_the_runtime_is_unknown() {
        assert_eq!(choose(RuntimeChoice::Runsc, None, None).unwrap(), None);
    }
}
