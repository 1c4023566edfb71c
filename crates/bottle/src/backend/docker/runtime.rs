//! Choosing the agent's runtime from what the user asked and what the
//! engine has. gVisor (`runsc`) is preferred when present because it puts a
//! second kernel between the agent and the host, except where the agent
//! reaches its gate on its loopback: gVisor's network stack keeps that
//! loopback to itself, so the listener handed to the gate is not on it.
//! There (Podman) `auto` takes the engine's own default where it is crun or
//! runc: Podman lists every runtime its configuration names, installed or
//! not, so its list cannot tell whether runc is there, and Fedora's and
//! RHEL's Podman come with crun alone.

use super::reach::Reach;
use crate::backend::Runtime;
use crate::error::{Error, Result};
use crate::settings::{RUNTIME, RuntimeChoice};

/// Why gVisor cannot hold a bottle whose agent reaches its gate on its
/// loopback.
pub(super) const GVISOR_OFF_LOOPBACK: &str = "the agent reaches its gate on its own loopback, which gVisor's network stack keeps from the gate";

/// The runtimes an engine offers: those it has registered, and the one a
/// container gets when it names none.
#[derive(Debug, Clone, Copy)]
pub(super) struct Offered<'a> {
    pub(super) registered: &'a [String],
    pub(super) default: Option<&'a str>,
}

/// `engine` is `None` when no engine answered (only allowed in a dry run),
/// and then so are `reach` and the runtime.
pub(super) fn choose(
    choice: RuntimeChoice,
    engine: Option<Offered<'_>>,
    reach: Option<Reach>,
) -> Result<Option<Runtime>> {
    let Some(Offered {
        registered: engine,
        default,
    }) = engine
    else {
        return Ok(None);
    };
    let gvisor_fits = reach != Some(Reach::Loopback);
    if choice.is_gvisor() && !gvisor_fits {
        return Err(Error::new(format!(
            "gVisor (`runsc`) cannot hold a bottle on this engine: {GVISOR_OFF_LOOPBACK}"
        ))
        .hint(format!("set {}=auto or runc", RUNTIME.name)));
    }
    let has = |runtime: &Runtime| engine.iter().any(|r| r == runtime.as_str());
    let wanted = match choice {
        RuntimeChoice::Auto if gvisor_fits && has(&Runtime::runsc()) => Runtime::runsc(),
        RuntimeChoice::Auto if !gvisor_fits && default == Some(Runtime::Crun.as_str()) => {
            Runtime::Crun
        }
        RuntimeChoice::Auto | RuntimeChoice::Runc => Runtime::Runc,
        RuntimeChoice::Runsc(name) => Runtime::Runsc(name),
    };
    if has(&wanted) {
        return Ok(Some(wanted));
    }
    let hint = if wanted.is_gvisor() {
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

    /// What Docker offers: runc by default.
    fn offered(registered: &[String]) -> Offered<'_> {
        Offered {
            registered,
            default: Some("runc"),
        }
    }

    #[test]
    fn auto_prefers_gvisor_when_the_engine_has_it() {
        let with = names(&["io.containerd.runc.v2", "runc", "runsc"]);
        let without = names(&["io.containerd.runc.v2", "runc"]);
        let chosen = |choice, engine| {
            choose(choice, Some(offered(engine)), Some(Reach::InternalNetwork)).unwrap()
        };
        assert_eq!(chosen(RuntimeChoice::Auto, &with), Some(Runtime::runsc()));
        assert_eq!(chosen(RuntimeChoice::Auto, &without), Some(Runtime::Runc));
        assert_eq!(chosen(RuntimeChoice::Runc, &with), Some(Runtime::Runc));
    }

    #[test]
    fn where_the_gate_is_on_the_agents_loopback_gvisor_is_not_chosen_and_refused_if_asked() {
        let with = names(&["crun", "runc", "runsc"]);
        let loopback = Some(Reach::Loopback);
        assert_eq!(
            choose(RuntimeChoice::Auto, Some(offered(&with)), loopback).unwrap(),
            Some(Runtime::Runc)
        );
        let err = choose(
            RuntimeChoice::Runsc("runsc".into()),
            Some(offered(&with)),
            loopback,
        )
        .unwrap_err();
        assert!(
            err.message()
                .starts_with("gVisor (`runsc`) cannot hold a bottle on this engine"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn on_the_agents_loopback_auto_takes_the_engines_crun_and_runc_stays_what_is_asked() {
        let listed = names(&["crun", "kata", "runc", "runsc"]);
        let crun_first = Some(Offered {
            registered: &listed,
            default: Some("crun"),
        });
        let loopback = Some(Reach::Loopback);
        assert_eq!(
            choose(RuntimeChoice::Auto, crun_first, loopback).unwrap(),
            Some(Runtime::Crun)
        );
        assert_eq!(
            choose(RuntimeChoice::Runc, crun_first, loopback).unwrap(),
            Some(Runtime::Runc)
        );
        let kata_first = Some(Offered {
            registered: &listed,
            default: Some("kata"),
        });
        assert_eq!(
            choose(RuntimeChoice::Auto, kata_first, loopback).unwrap(),
            Some(Runtime::Runc)
        );
        // On Docker's internal networks the engine's default is not asked.
        assert_eq!(
            choose(
                RuntimeChoice::Auto,
                crun_first,
                Some(Reach::InternalNetwork)
            )
            .unwrap(),
            Some(Runtime::runsc())
        );
    }

    #[test]
    fn an_explicit_runtime_the_engine_lacks_is_an_error_listing_what_it_has() {
        let err = choose(
            RuntimeChoice::Runsc("runsc".into()),
            Some(offered(&names(&["runc"]))),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "the engine has no runtime `runsc` (it has: runc)"
        );
    }

    #[test]
    fn without_an_engine_the_runtime_is_unknown() {
        assert_eq!(
            choose(RuntimeChoice::Runsc("runsc".into()), None, None).unwrap(),
            None
        );
    }
}
