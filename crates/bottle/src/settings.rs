//! Every environment variable claude-bottle reads, declared once.
//!
//! The README's table is checked against [`ALL`] by a test, so a variable
//! cannot be added here without being documented there. Values are read in
//! one place, [`Settings::from_lookup`], so the rest of the program never
//! touches the process environment for its own configuration.

use crate::backend::{GateImage, GateSetup, ImageSource};
use std::fmt;

use crate::env::Secret;
use crate::error::{Error, Result};
use crate::images::CurrentImages;
use crate::images::claude_code::{self, DefaultImage};
use crate::lifecycle::pause::{PauseAt, Phase};

/// One variable the program reads.
#[derive(Debug)]
pub struct Variable {
    pub name: &'static str,
    pub help: &'static str,
}

pub const BACKEND: Variable = Variable {
    name: "CLAUDE_BOTTLE_BACKEND",
    help: "Which backend runs bottles (default `docker`).",
};
pub const DRY_RUN: Variable = Variable {
    name: "CLAUDE_BOTTLE_DRY_RUN",
    help: "`1` makes every `start` a dry run, as `--dry-run` does.",
};
pub const OAUTH_TOKEN: Variable = Variable {
    name: "CLAUDE_BOTTLE_OAUTH_TOKEN",
    help: "A token from `claude setup-token`, given to claude in the bottle as `CLAUDE_CODE_OAUTH_TOKEN`.",
};
pub const IMAGE: Variable = Variable {
    name: "CLAUDE_BOTTLE_IMAGE",
    help: "Run this image instead of the default one (needs a non-root `USER`, `claude`, `sh`, `cat`, `tar`).",
};
pub const RUNTIME: Variable = Variable {
    name: "CLAUDE_BOTTLE_RUNTIME",
    help: "`auto` (default: gVisor when the engine has `runsc`), `runc`, `runsc`, or a gVisor registered under another name that starts `runsc-` (`runsc-kvm`).",
};
pub const DOCKER_HOST: Variable = Variable {
    name: "DOCKER_HOST",
    help: "The engine to use: `unix:///PATH`, `tcp://HOST:PORT` or `ssh://[USER@]HOST[:PORT]` (default: the Docker context, else the local socket).",
};
pub const DOCKER_TLS_VERIFY: Variable = Variable {
    name: "DOCKER_TLS_VERIFY",
    help: "Any value: reach a `tcp://` `DOCKER_HOST` over TLS, verifying the engine's certificate.",
};
pub const DOCKER_CERT_PATH: Variable = Variable {
    name: "DOCKER_CERT_PATH",
    help: "The directory of `ca.pem`, `cert.pem` and `key.pem` for TLS (default: the Docker config directory).",
};
pub const DOCKER_CONTEXT: Variable = Variable {
    name: "DOCKER_CONTEXT",
    help: "The Docker context to use when `DOCKER_HOST` is not set (default: the current one of `docker context use`).",
};
pub const XDG_RUNTIME_DIR: Variable = Variable {
    name: "XDG_RUNTIME_DIR",
    help: "Where rootless Podman's socket is looked for (`podman/podman.sock`) when nothing chooses an engine and no Docker engine answers at the local socket.",
};
pub const DOCKER_CONFIG: Variable = Variable {
    name: "DOCKER_CONFIG",
    help: "The Docker config directory, where the contexts are (default `~/.docker`).",
};

pub const EXTRA_LABELS: Variable = Variable {
    name: "CLAUDE_BOTTLE_EXTRA_LABELS",
    help: "`key=value,key=value` labels added to every container and network (for CI systems and tests); \
           `list`, `cleanup` and the sweep then see only resources carrying them.",
};
pub const MEMORY: Variable = Variable {
    name: "CLAUDE_BOTTLE_MEMORY",
    help: "Memory limit of the agent container, e.g. `4g` or `512m` (default `4g`).",
};
pub const BUNDLE_MAX: Variable = Variable {
    name: "CLAUDE_BOTTLE_BUNDLE_MAX",
    help: "The most a bottle's bundle of new commits may take on its way home, e.g. `2g` or `512m` (default `2g`); a larger one is refused and its commits stay in the bottle.",
};
pub const PIDS: Variable = Variable {
    name: "CLAUDE_BOTTLE_PIDS",
    help: "Process limit of the agent container (default `1024`).",
};
pub const CPUS: Variable = Variable {
    name: "CLAUDE_BOTTLE_CPUS",
    help: "CPUs the agent container may use, e.g. `2` or `1.5` (default `2`); its gate gets at most one.",
};
pub const ENGINE_TIMEOUT: Variable = Variable {
    name: "CLAUDE_BOTTLE_ENGINE_TIMEOUT",
    help: "Seconds an engine call may take to begin its answer before it fails (default `120`; \
           streams, once begun, are not cut).",
};
pub const PAUSE_AT: Variable = Variable {
    name: "CLAUDE_BOTTLE_PAUSE_AT",
    help: "A test hook: `start` stops at this phase (image, networks, gate, agent, provision, session, \
           home or teardown) and waits until SIGUSR1 resumes it or another signal ends it.",
};
pub const LOG: Variable = Variable {
    name: "CLAUDE_BOTTLE_LOG",
    help: "`timing` prints on stderr when each phase of a command (engine, image, networks, gate, agent, provision, claude, teardown) began and ended, and how long it took.",
};
pub const GATE_DNS: Variable = Variable {
    name: "CLAUDE_BOTTLE_GATE_DNS",
    help: "The DNS server (`addr:port`) the egress gate asks (default: the gate container's resolver).",
};
pub const GATE_IMAGE: Variable = Variable {
    name: "CLAUDE_BOTTLE_GATE_IMAGE",
    help: "A prebuilt gate image, for engines this executable cannot run on (see \"The egress gate\").",
};
pub const GATE_NETWORKS: Variable = Variable {
    name: "CLAUDE_BOTTLE_GATE_NETWORKS",
    help: "Existing Docker networks (`a,b`) the gate also joins, so allowlisted services on them can be reached.",
};
pub const BASE_IMAGE: Variable = Variable {
    name: "CLAUDE_BOTTLE_BASE_IMAGE",
    help: "The Debian-based image the default image is built on (default `debian:bookworm-slim`).",
};
pub const NPM_REGISTRY: Variable = Variable {
    name: "CLAUDE_BOTTLE_NPM_REGISTRY",
    help: "The npm registry (or mirror) Claude Code's native binary is downloaded from (default `https://registry.npmjs.org/`).",
};
pub const CLAUDE_VERSION: Variable = Variable {
    name: "CLAUDE_BOTTLE_CLAUDE_VERSION",
    help: "The Claude Code version of the default image (default: the pinned one); its integrity then comes from the registry.",
};
pub const HTTPS_PROXY: Variable = Variable {
    name: "HTTPS_PROXY",
    help: "The proxy the download of Claude Code goes through from an https registry (also `https_proxy` and `ALL_PROXY`; `HTTP_PROXY` for an http one).",
};
pub const NO_PROXY: Variable = Variable {
    name: "NO_PROXY",
    help: "Hosts the download reaches without the proxy (also `no_proxy`).",
};
pub const SSL_CERT_FILE: Variable = Variable {
    name: "SSL_CERT_FILE",
    help: "A CA bundle the download trusts instead of the system's (also `SSL_CERT_DIR`).",
};
pub const HOME: Variable = Variable {
    name: "HOME",
    help: "Where `claude-bottle.json`, `.claude/skills/`, the stage directories and the download cache (`.cache/claude-bottle/`) are found.",
};

pub const TERM: Variable = Variable {
    name: "TERM",
    help: "Your terminal's type, as `doctor` reports it (claude in the bottle always gets `xterm-256color`).",
};
pub const COMPLETE: Variable = Variable {
    name: "CLAUDE_BOTTLE_COMPLETE",
    help: "Set by the script of `completions` when the shell asks for completions; not for you to set.",
};

pub const VISUAL: Variable = Variable {
    name: "VISUAL",
    help: "The editor `edit` opens a prompt in; `EDITOR` when it is not set.",
};
pub const EDITOR: Variable = Variable {
    name: "EDITOR",
    help: "The editor `edit` opens a prompt in, when `VISUAL` is not set.",
};

/// The editor command `edit` runs: `VISUAL`, else `EDITOR`.
pub fn editor() -> Option<String> {
    [&VISUAL, &EDITOR]
        .into_iter()
        .find_map(|v| std::env::var(v.name).ok().filter(|e| !e.trim().is_empty()))
}

/// Whether `CLAUDE_BOTTLE_LOG` asks for the phases' timings. Read before
/// anything else, so that reading the rest is timed too.
pub fn logs_timing() -> bool {
    std::env::var(LOG.name).is_ok_and(|v| v.split(',').any(|part| part.trim() == "timing"))
}

pub const ALL: &[&Variable] = &[
    &BACKEND,
    &DRY_RUN,
    &OAUTH_TOKEN,
    &IMAGE,
    &RUNTIME,
    &EXTRA_LABELS,
    &MEMORY,
    &BUNDLE_MAX,
    &PIDS,
    &CPUS,
    &PAUSE_AT,
    &ENGINE_TIMEOUT,
    &LOG,
    &GATE_DNS,
    &GATE_IMAGE,
    &GATE_NETWORKS,
    &BASE_IMAGE,
    &NPM_REGISTRY,
    &CLAUDE_VERSION,
    &HTTPS_PROXY,
    &NO_PROXY,
    &SSL_CERT_FILE,
    &DOCKER_HOST,
    &DOCKER_TLS_VERIFY,
    &DOCKER_CERT_PATH,
    &DOCKER_CONTEXT,
    &DOCKER_CONFIG,
    &XDG_RUNTIME_DIR,
    &HOME,
    &COMPLETE,
    &TERM,
    &VISUAL,
    &EDITOR,
];

/// Which container runtime the agent runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// gVisor when the engine has it, runc otherwise.
    Auto,
    Runc,
    /// gVisor, under the name the engine registered it with: `runsc`, or
    /// one of the variants gVisor's own guide registers beside it
    /// (`runsc-kvm`, `runsc-debug`).
    Runsc(String),
}

impl RuntimeChoice {
    pub const NAMES: &[&str] = &["auto", "runc", "runsc", "runsc-NAME"];

    pub fn is_gvisor(&self) -> bool {
        matches!(self, Self::Runsc(_))
    }
}

impl fmt::Display for RuntimeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Runc => "runc",
            Self::Runsc(name) => name,
        })
    }
}

/// Resource limits of the agent container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    pub memory_bytes: i64,
    pub pids: i64,
    /// In billionths of a CPU, as the engine takes it.
    pub nano_cpus: i64,
}

impl Limits {
    /// The limits the variables set, the defaults for the rest.
    fn read(get: &impl Fn(&Variable) -> Option<String>) -> Result<Self> {
        let mut limits = Self::default();
        if let Some(memory) = get(&MEMORY) {
            limits.memory_bytes = parse_size(&memory).ok_or_else(|| {
                Error::new(format!(
                    "{} is `{memory}`, which is not a size",
                    MEMORY.name
                ))
                .hint("write a number with an optional unit k, m or g, e.g. 4g or 512m")
            })?;
        }
        if let Some(pids) = get(&PIDS) {
            limits.pids = pids.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
                Error::new(format!(
                    "{} is `{pids}`, which is not a process count",
                    PIDS.name
                ))
                .hint("write a whole number such as 1024")
            })?;
        }
        if let Some(cpus) = get(&CPUS) {
            limits.nano_cpus = parse_cpus(&cpus).ok_or_else(|| {
                Error::new(format!(
                    "{} is `{cpus}`, which is not a number of CPUs",
                    CPUS.name
                ))
                .hint("write a number such as 2 or 0.5")
            })?;
        }
        Ok(limits)
    }

    /// The agent's CPUs as a decimal number: `2`, `1.5`.
    pub fn cpus(&self) -> String {
        let (whole, fraction) = (
            self.nano_cpus / 1_000_000_000,
            self.nano_cpus % 1_000_000_000,
        );
        if fraction == 0 {
            return whole.to_string();
        }
        format!("{whole}.{}", format!("{fraction:09}").trim_end_matches('0'))
    }

    /// The gate's CPU share: one CPU, or the agent's when that is less.
    pub fn gate_nano_cpus(&self) -> i64 {
        self.nano_cpus.min(1_000_000_000)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 4 << 30,
            pids: 1024,
            nano_cpus: 2_000_000_000,
        }
    }
}

/// The program's configuration from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backend: String,
    pub oauth_token: Option<Secret>,
    pub image: Option<String>,
    pub runtime: RuntimeChoice,
    pub extra_labels: Vec<(String, String)>,
    pub limits: Limits,
    pub gate_image: Option<String>,
    pub gate_networks: Vec<String>,
    /// Passed on to the gate (`CLAUDE_BOTTLE_GATE_DNS`).
    pub gate_dns: Option<String>,
    pub base_image: String,
    /// Ends with `/`.
    pub npm_registry: String,
    pub claude_version: String,
    pub pause_at: PauseAt,
    /// `CLAUDE_BOTTLE_BUNDLE_MAX`, in bytes.
    pub bundle_max: u64,
}

/// What a bottle's bundle may take when nothing says otherwise.
pub const BUNDLE_MAX_DEFAULT: u64 = 2 << 30;

impl Settings {
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`; an empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |var: &Variable| lookup(var.name).filter(|v| !v.is_empty());
        let runtime = match get(&RUNTIME).as_deref() {
            None | Some("auto") => RuntimeChoice::Auto,
            Some("runc") => RuntimeChoice::Runc,
            Some(name)
                if name == "runsc"
                    || name.strip_prefix("runsc-").is_some_and(|variant| {
                        !variant.is_empty()
                            && variant
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    }) =>
            {
                RuntimeChoice::Runsc(name.to_owned())
            }
            Some(other) => {
                return Err(Error::new(format!(
                    "{} is `{other}`, which is not a runtime claude-bottle knows",
                    RUNTIME.name
                ))
                .hint(format!("use one of: {}", RuntimeChoice::NAMES.join(", "))));
            }
        };
        let limits = Limits::read(&get)?;
        let bundle_max = bundle_max(get(&BUNDLE_MAX))?;
        let pause_at = match get(&PAUSE_AT) {
            None => PauseAt(None),
            Some(name) => PauseAt(Some(Phase::parse(&name).ok_or_else(|| {
                Error::new(format!("{} is `{name}`, which is no phase", PAUSE_AT.name)).hint(
                    format!("use one of: {}", Phase::ALL.map(Phase::name).join(", ")),
                )
            })?)),
        };
        let npm_registry = match get(&NPM_REGISTRY) {
            None => claude_code::DEFAULT_REGISTRY.to_owned(),
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                format!("{}/", url.trim_end_matches('/'))
            }
            Some(url) => {
                return Err(Error::new(format!(
                    "{} is `{url}`, which is not an http(s) URL",
                    NPM_REGISTRY.name
                ))
                .hint("write the registry's address, e.g. https://registry.npmjs.org/"));
            }
        };
        let claude_version =
            get(&CLAUDE_VERSION).unwrap_or_else(|| claude_code::PINNED_VERSION.to_owned());
        // It becomes part of an image tag and a download's file name.
        let tag_safe = claude_version.len() <= 64
            && claude_version.starts_with(|c: char| c.is_ascii_alphanumeric())
            && claude_version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
        if !tag_safe {
            return Err(Error::new(format!(
                "{} is `{claude_version}`, which is not a version",
                CLAUDE_VERSION.name
            ))
            .hint(format!(
                "write a published version such as {}",
                claude_code::PINNED_VERSION
            )));
        }
        let base_image =
            get(&BASE_IMAGE).unwrap_or_else(|| claude_code::DEFAULT_BASE_IMAGE.to_owned());
        // It is written into a Dockerfile's FROM line.
        if base_image.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(Error::new(format!(
                "{} is `{}`, which is not an image reference",
                BASE_IMAGE.name,
                base_image.escape_debug()
            ))
            .hint("write an image name such as debian:bookworm-slim"));
        }
        Ok(Self {
            base_image,
            npm_registry,
            claude_version,
            pause_at,
            bundle_max,
            backend: get(&BACKEND).unwrap_or_else(|| "docker".to_owned()),
            oauth_token: get(&OAUTH_TOKEN).map(Secret::new),
            image: get(&IMAGE),
            runtime,
            gate_image: get(&GATE_IMAGE),
            gate_networks: get(&GATE_NETWORKS)
                .map(|n| {
                    n.split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(ToOwned::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            gate_dns: get(&GATE_DNS),
            extra_labels: get(&EXTRA_LABELS)
                .map(|l| parse_labels(&l))
                .transpose()?
                .unwrap_or_default(),
            limits,
        })
    }
}

impl Settings {
    /// The images a cleanup must keep.
    pub fn current_images(&self, home: &std::path::Path) -> CurrentImages {
        CurrentImages {
            default: self.default_image(home),
            named: self.image.iter().chain(&self.gate_image).cloned().collect(),
        }
    }

    /// The agent's image: the one named, or the default image.
    pub fn image_source(&self, home: &std::path::Path) -> ImageSource {
        match &self.image {
            Some(image) => ImageSource::Named(image.clone()),
            None => ImageSource::Default(self.default_image(home)),
        }
    }

    pub fn gate_setup(&self) -> GateSetup {
        GateSetup {
            image: self
                .gate_image
                .clone()
                .map_or(GateImage::ThisExecutable, GateImage::Named),
            extra_networks: self.gate_networks.clone(),
            dns: self.gate_dns.clone(),
        }
    }

    /// How the default image is made, with downloads cached under `home`.
    pub fn default_image(&self, home: &std::path::Path) -> DefaultImage {
        DefaultImage {
            base: self.base_image.clone(),
            claude_version: self.claude_version.clone(),
            registry: self.npm_registry.clone(),
            cache: home.join(".cache/claude-bottle/downloads"),
            labels: self.extra_labels.clone(),
        }
    }
}

/// `512m`, `4g`, `1048576`: bytes.
/// How long an engine call may take to begin its answer, from
/// `CLAUDE_BOTTLE_ENGINE_TIMEOUT`. Read where the engine is connected,
/// which every command does, with or without the other settings.
pub fn engine_timeout() -> Result<std::time::Duration> {
    let Some(value) = std::env::var(ENGINE_TIMEOUT.name)
        .ok()
        .filter(|v| !v.is_empty())
    else {
        return Ok(std::time::Duration::from_secs(120));
    };
    value
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=86_400).contains(s))
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| {
            Error::new(format!(
                "{} is `{value}`, which is not a number of seconds",
                ENGINE_TIMEOUT.name
            ))
            .hint("write whole seconds, such as 120")
        })
}

/// `2`, `1.5` or `0.25` CPUs, in billionths, at least a thousandth and at
/// most 1024 CPUs.
fn parse_cpus(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty()
        || !digits(whole)
        || !digits(fraction)
        || whole.len() > 4
        || fraction.len() > 9
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: i64 = format!("{fraction:0<9}").parse().ok()?;
    Some(whole * 1_000_000_000 + fraction).filter(|n| (1_000_000..=1_024_000_000_000).contains(n))
}

fn parse_size(text: &str) -> Option<i64> {
    let lower = text.to_ascii_lowercase();
    let (number, shift) = match lower.strip_suffix(['k', 'm', 'g']) {
        Some(n) => (
            n,
            match lower.as_bytes()[lower.len() - 1] {
                b'k' => 10,
                b'm' => 20,
                _ => 30,
            },
        ),
        None => (lower.as_str(), 0),
    };
    number
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(1 << shift))
}

/// `CLAUDE_BOTTLE_BUNDLE_MAX` in bytes, its default where unset.
fn bundle_max(value: Option<String>) -> Result<u64> {
    let Some(size) = value else {
        return Ok(BUNDLE_MAX_DEFAULT);
    };
    parse_size(&size)
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(|| {
            Error::new(format!(
                "{} is `{size}`, which is not a size",
                BUNDLE_MAX.name
            ))
            .hint("write a number with an optional unit k, m or g, e.g. 2g or 512m")
        })
}

/// `k=v,k=v`; keys of claude-bottle's own namespace are refused.
fn parse_labels(text: &str) -> Result<Vec<(String, String)>> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let bad = || {
                Error::new(format!("{} has `{pair}`, which is not key=value", EXTRA_LABELS.name))
                    .hint("write labels as key=value,key=value")
            };
            let (key, value) = pair.split_once('=').ok_or_else(bad)?;
            let key = key.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(bad());
            }
            if key.starts_with("io.claude-bottle.") && key != "io.claude-bottle.test" {
                return Err(Error::new(format!("{} may not set `{key}`", EXTRA_LABELS.name))
                    .hint("labels under io.claude-bottle. are claude-bottle's own; choose another key"));
            }
            Ok((key.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let settings = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(settings.backend, "docker");
        assert_eq!(settings.runtime, RuntimeChoice::Auto);
        assert!(settings.oauth_token.is_none() && settings.image.is_none());
    }

    #[test]
    fn sizes_labels_and_limits_parse() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("4G"), Some(4 << 30));
        assert_eq!(parse_size("1000"), Some(1000));
        for bad in ["", "m", "-1g", "4t", "1.5g"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(
            parse_labels("ci.job=42, team=infra").unwrap(),
            [
                ("ci.job".into(), "42".into()),
                ("team".into(), "infra".into())
            ]
        );
        assert!(parse_labels("novalue").is_err());
        assert!(parse_labels("io.claude-bottle.managed=false").is_err());
        let settings = Settings::from_lookup(|n| (n == PIDS.name).then(|| "64".into())).unwrap();
        assert_eq!(
            settings.limits,
            Limits {
                memory_bytes: 4 << 30,
                pids: 64,
                nano_cpus: 2_000_000_000,
            }
        );
    }

    #[test]
    fn cpus_are_a_decimal_number_within_bounds() {
        assert_eq!(parse_cpus("2"), Some(2_000_000_000));
        assert_eq!(parse_cpus("1.5"), Some(1_500_000_000));
        assert_eq!(parse_cpus("0.25"), Some(250_000_000));
        assert_eq!(parse_cpus(".5"), Some(500_000_000));
        assert_eq!(parse_cpus("3."), Some(3_000_000_000));
        for bad in [
            "", ".", "0", "0.0001", "-1", "1e3", "2 ", "1.2.3", "99999", "½", "1,5",
        ] {
            assert_eq!(parse_cpus(bad), None, "{bad}");
        }
        let limits =
            |value: &str| Settings::from_lookup(|n| (n == CPUS.name).then(|| value.into()));
        assert_eq!(limits("0.5").unwrap().limits.nano_cpus, 500_000_000);
        assert_eq!(limits("0.50").unwrap().limits.cpus(), "0.5");
        assert_eq!(limits("12.125").unwrap().limits.cpus(), "12.125");
        assert_eq!(limits("3").unwrap().limits.cpus(), "3");
        assert_eq!(limits("0.5").unwrap().limits.gate_nano_cpus(), 500_000_000);
        assert_eq!(limits("4").unwrap().limits.gate_nano_cpus(), 1_000_000_000);
        let err = limits("lots").unwrap_err();
        assert!(
            err.message().contains("CLAUDE_BOTTLE_CPUS is `lots`"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn the_default_image_settings_are_checked() {
        let settings = Settings::from_lookup(|n| {
            (n == NPM_REGISTRY.name).then(|| "http://10.0.0.1:4873".into())
        })
        .unwrap();
        assert_eq!(settings.npm_registry, "http://10.0.0.1:4873/");
        assert_eq!(settings.claude_version, claude_code::PINNED_VERSION);
        assert_eq!(settings.base_image, "debian:bookworm-slim");
        let err = Settings::from_lookup(|n| (n == NPM_REGISTRY.name).then(|| "ftp://x".into()))
            .unwrap_err();
        assert!(err.message().contains("not an http(s) URL"));
        let err = Settings::from_lookup(|n| (n == CLAUDE_VERSION.name).then(|| "../../x".into()))
            .unwrap_err();
        assert!(err.message().contains("not a version"));
        for bad in ["1.0.0+build", ".1", "-1", ""] {
            let version = Settings::from_lookup(|n| (n == CLAUDE_VERSION.name).then(|| bad.into()));
            assert!(bad.is_empty() == version.is_ok(), "{bad}");
        }
        let err = Settings::from_lookup(|n| {
            (n == BASE_IMAGE.name).then(|| "debian\nRUN curl evil".into())
        })
        .unwrap_err();
        assert!(err.message().contains("not an image reference"));
    }

    #[test]
    fn the_pause_hook_names_a_phase() {
        let at =
            |value: &str| Settings::from_lookup(|n| (n == PAUSE_AT.name).then(|| value.into()));
        assert_eq!(at("gate").unwrap().pause_at, PauseAt(Some(Phase::Gate)));
        assert_eq!(
            Settings::from_lookup(|_| None).unwrap().pause_at,
            PauseAt(None)
        );
        let err = at("lunch").unwrap_err();
        assert_eq!(
            err.hints(),
            ["use one of: image, networks, gate, agent, provision, session, home, teardown"]
        );
    }

    #[test]
    fn an_unknown_runtime_lists_the_known_ones() {
        let runtime =
            |value: &str| Settings::from_lookup(|n| (n == RUNTIME.name).then(|| value.into()));
        for unknown in ["kata", "runsc-", "runsc-a/b", "runscx"] {
            let err = runtime(unknown).unwrap_err();
            assert_eq!(
                err.hints(),
                ["use one of: auto, runc, runsc, runsc-NAME"],
                "{unknown}"
            );
        }
        // gVisor under another name its guide gives it.
        assert_eq!(
            runtime("runsc-kvm").unwrap().runtime,
            RuntimeChoice::Runsc("runsc-kvm".into())
        );
    }
}
