//! Which engine a command talks to, chosen as the docker CLI chooses, so
//! the engine a user's `docker` reaches (Docker Desktop, Colima, OrbStack,
//! a machine over `ssh://` or TLS) is the one a bottle runs on, with no
//! set-up of its own:
//!
//! 1. `DOCKER_HOST`, with `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`;
//! 2. else the context `DOCKER_CONTEXT` names;
//! 3. else the current context of `config.json` (in `DOCKER_CONFIG`, or
//!    `~/.docker`);
//! 4. else the local socket: Docker's, or where no Docker engine answers
//!    there, Podman's (the user's own rootless one, then the system's).
//!
//! A context is read from the docker CLI's own store: its endpoint from
//! `contexts/meta/<sha256 of its name>/meta.json`, its TLS material from
//! `contexts/tls/<same>/docker/`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::default_image::hex;
use crate::error::{Error, Result};
use crate::settings::{
    DOCKER_CERT_PATH, DOCKER_CONFIG, DOCKER_CONTEXT, DOCKER_HOST, DOCKER_TLS_VERIFY,
    XDG_RUNTIME_DIR,
};

pub(super) const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";
/// Where rootful Podman serves the Docker API (`podman system service`).
const PODMAN_ROOTFUL: &str = "/run/podman/podman.sock";

/// An engine's address and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint {
    /// `unix://PATH`, `tcp://HOST:PORT` or `ssh://[USER@]HOST[:PORT]`.
    pub(super) host: String,
    /// Set for `tcp://` with TLS: the engine's certificate is verified.
    pub(super) tls: Option<TlsFiles>,
    pub(super) chosen_by: ChosenBy,
}

/// The CA the engine's certificate must chain to, and the client's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsFiles {
    pub(super) ca: PathBuf,
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}

impl TlsFiles {
    fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ChosenBy {
    DockerHost,
    /// A context, named by `DOCKER_CONTEXT` (`true`) or `config.json`.
    Context {
        name: String,
        from_env: bool,
    },
    Default,
    /// No Docker engine answered at the local socket; Podman's socket is
    /// the user's own (`rootless`) or the system's.
    Podman {
        rootless: bool,
    },
}

/// A connection of its own to an engine's Unix socket or plain TCP port.
pub(super) type PlainStream =
    tokio_util::either::Either<tokio::net::UnixStream, tokio::net::TcpStream>;

impl Endpoint {
    /// Connects to the engine's Unix socket or plain TCP port (with
    /// `TCP_NODELAY`: what goes over it is a conversation); `None` over ssh
    /// or TLS, where a connection is more than a socket.
    pub(super) async fn connect_plain(&self) -> Option<std::io::Result<PlainStream>> {
        use tokio_util::either::Either;
        if let Some(path) = self.host.strip_prefix("unix://") {
            Some(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(Either::Left),
            )
        } else if let (Some(address), None) = (self.host.strip_prefix("tcp://"), &self.tls) {
            let connected = tokio::net::TcpStream::connect(address).await;
            Some(connected.and_then(|stream| {
                stream.set_nodelay(true)?;
                Ok(Either::Right(stream))
            }))
        } else {
            None
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if self.tls.is_some() {
            f.write_str(" (TLS)")?;
        }
        match &self.chosen_by {
            ChosenBy::DockerHost => write!(f, ", from {}", DOCKER_HOST.name),
            ChosenBy::Context {
                name,
                from_env: true,
            } => {
                write!(f, ", context `{name}` from {}", DOCKER_CONTEXT.name)
            }
            ChosenBy::Context { name, .. } => write!(f, ", context `{name}`"),
            ChosenBy::Default => Ok(()),
            ChosenBy::Podman { rootless: true } => f.write_str(", Podman's rootless socket"),
            ChosenBy::Podman { rootless: false } => f.write_str(", Podman's rootful socket"),
        }
    }
}

/// Chooses the engine from the environment, as `lookup` reads it.
pub(super) fn choose(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Endpoint> {
    let set = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let config_dir = match set(DOCKER_CONFIG.name) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(set("HOME").unwrap_or_default()).join(".docker"),
    };
    if let Some(host) = set(DOCKER_HOST.name) {
        let tls = set(DOCKER_TLS_VERIFY.name).map(|_| {
            TlsFiles::in_dir(&set(DOCKER_CERT_PATH.name).map_or(config_dir.clone(), PathBuf::from))
        });
        return endpoint(&host, tls, ChosenBy::DockerHost, &|| {
            format!("{} is `{host}`", DOCKER_HOST.name)
        });
    }
    let named = match set(DOCKER_CONTEXT.name) {
        Some(name) => Some((name, true)),
        None => current_context(&config_dir)?.map(|name| (name, false)),
    };
    let Some((name, from_env)) = named.filter(|(name, _)| !name.is_empty() && name != "default")
    else {
        return Ok(Endpoint {
            host: DEFAULT_SOCKET.to_owned(),
            tls: None,
            chosen_by: ChosenBy::Default,
        });
    };
    context(&config_dir, &name, from_env)
}

/// Podman's sockets that exist, for when nothing chooses an engine and no
/// Docker engine answers at the local socket: the user's own (rootless)
/// first, then the system's (rootful).
pub(super) fn podman_sockets(lookup: &dyn Fn(&str) -> Option<String>) -> Vec<Endpoint> {
    let rootless = lookup(XDG_RUNTIME_DIR.name)
        .filter(|dir| !dir.is_empty())
        .map(|dir| PathBuf::from(dir).join("podman/podman.sock"));
    rootless
        .map(|path| (path, true))
        .into_iter()
        .chain([(PathBuf::from(PODMAN_ROOTFUL), false)])
        .filter(|(path, _)| path.exists())
        .map(|(path, rootless)| Endpoint {
            host: format!("unix://{}", path.display()),
            tls: None,
            chosen_by: ChosenBy::Podman { rootless },
        })
        .collect()
}

/// `currentContext` of `config.json`; none when the file is absent.
fn current_context(config_dir: &Path) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "currentContext", default)]
        current_context: Option<String>,
    }
    let path = config_dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(Error::new(format!("cannot read {}: {err}", path.display())));
        }
    };
    let config: Config = serde_json::from_str(&text).map_err(|err| {
        Error::new(format!("{} is not valid JSON ({err})", path.display()))
            .hint("fix the file, or set DOCKER_HOST to choose the engine without it")
    })?;
    Ok(config.current_context)
}

fn context(config_dir: &Path, name: &str, from_env: bool) -> Result<Endpoint> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Meta {
        endpoints: std::collections::HashMap<String, DockerEndpoint>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct DockerEndpoint {
        host: String,
        #[serde(rename = "SkipTLSVerify", default)]
        skip_tls_verify: bool,
    }
    let digest = hex(&Sha256::digest(name.as_bytes()));
    let path = config_dir
        .join("contexts/meta")
        .join(&digest)
        .join("meta.json");
    let named_by = if from_env {
        format!("{} names", DOCKER_CONTEXT.name)
    } else {
        format!(
            "{} names as current",
            config_dir.join("config.json").display()
        )
    };
    let text = std::fs::read_to_string(&path).map_err(|err| {
        let error = if err.kind() == std::io::ErrorKind::NotFound {
            Error::new(format!(
                "the Docker context `{name}` that {named_by} does not exist"
            ))
        } else {
            Error::new(format!("cannot read {}: {err}", path.display()))
        };
        error.hint("`docker context ls` lists the contexts; `docker context use NAME` picks one")
    })?;
    let meta: Meta = serde_json::from_str(&text).map_err(|err| {
        Error::new(format!(
            "the Docker context `{name}` is unreadable: {} is not what `docker context` writes ({err})",
            path.display()
        ))
    })?;
    let Some(docker) = meta.endpoints.get("docker") else {
        return Err(Error::new(format!(
            "the Docker context `{name}` has no docker endpoint ({})",
            path.display()
        )));
    };
    if docker.skip_tls_verify {
        return Err(Error::new(format!(
            "the Docker context `{name}` skips verifying the engine's TLS certificate, \
             which claude-bottle does not do: anyone between here and the engine could \
             run the bottles"
        ))
        .hint("give the context the engine's CA (`docker context update --docker ca=…`)"));
    }
    let tls_dir = config_dir.join("contexts/tls").join(&digest).join("docker");
    let tls = tls_dir
        .join("ca.pem")
        .exists()
        .then(|| TlsFiles::in_dir(&tls_dir));
    let chosen_by = ChosenBy::Context {
        name: name.to_owned(),
        from_env,
    };
    endpoint(&docker.host, tls, chosen_by, &|| {
        format!("the Docker context `{name}` has the host `{}`", docker.host)
    })
}

/// Checks the address's scheme, and gives a `tcp://` one its port.
fn endpoint(
    host: &str,
    tls: Option<TlsFiles>,
    chosen_by: ChosenBy,
    said: &dyn Fn() -> String,
) -> Result<Endpoint> {
    let Some((scheme, rest)) = host.split_once("://") else {
        return Err(Error::new(format!("{}, which has no scheme", said()))
            .hint("write unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST"));
    };
    let host = match scheme {
        "unix" | "ssh" if rest.is_empty() => {
            return Err(Error::new(format!("{}, which has no address", said())));
        }
        "unix" | "ssh" => host.to_owned(),
        "tcp" | "http" | "https" => {
            let authority = rest.split('/').next().unwrap_or_default();
            if authority.is_empty() {
                return Err(Error::new(format!("{}, which has no address", said())));
            }
            let has_port = authority
                .rsplit_once(':')
                .is_some_and(|(host, port)| !port.contains(']') && !host.is_empty());
            // The docker CLI's default ports.
            let port = if has_port {
                ""
            } else if tls.is_some() {
                ":2376"
            } else {
                ":2375"
            };
            format!("tcp://{authority}{port}")
        }
        _ => {
            return Err(Error::new(format!(
                "{}, whose scheme `{scheme}` claude-bottle cannot reach",
                said()
            ))
            .hint("write unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST"));
        }
    };
    let tls = tls.filter(|_| host.starts_with("tcp://"));
    Ok(Endpoint {
        host,
        tls,
        chosen_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn podmans_sockets_are_the_users_own_first_then_the_systems_and_only_those_there() {
        let runtime = tempfile::tempdir().unwrap();
        let dir = runtime.path().to_str().unwrap();
        let rootful = Path::new(PODMAN_ROOTFUL).exists();
        let without: Vec<Endpoint> = podman_sockets(&lookup(&[("XDG_RUNTIME_DIR", dir)]));
        assert_eq!(without.len(), usize::from(rootful), "{without:?}");
        std::fs::create_dir(runtime.path().join("podman")).unwrap();
        std::fs::write(runtime.path().join("podman/podman.sock"), "").unwrap();
        let found = podman_sockets(&lookup(&[("XDG_RUNTIME_DIR", dir)]));
        assert_eq!(found[0].host, format!("unix://{dir}/podman/podman.sock"));
        assert_eq!(found[0].chosen_by, ChosenBy::Podman { rootless: true });
        assert_eq!(
            found[0].to_string(),
            format!("unix://{dir}/podman/podman.sock, Podman's rootless socket")
        );
        if rootful {
            assert_eq!(found[1].host, format!("unix://{PODMAN_ROOTFUL}"));
            assert_eq!(found[1].chosen_by, ChosenBy::Podman { rootless: false });
        }
        assert_eq!(found.len(), 1 + usize::from(rootful));
        assert!(
            podman_sockets(&lookup(&[]))
                .iter()
                .all(|e| e.chosen_by == ChosenBy::Podman { rootless: false })
        );
    }

    /// A docker config dir with `config.json` naming `current`, and
    /// contexts as `docker context create` writes them.
    fn store(current: Option<&str>, contexts: &[(&str, &str, bool)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(current) = current {
            std::fs::write(
                dir.path().join("config.json"),
                format!(r#"{{"auths": {{}}, "currentContext": "{current}"}}"#),
            )
            .unwrap();
        }
        for (name, host, with_tls) in contexts {
            let digest = hex(&Sha256::digest(name.as_bytes()));
            let meta = dir.path().join("contexts/meta").join(&digest);
            std::fs::create_dir_all(&meta).unwrap();
            std::fs::write(
                meta.join("meta.json"),
                format!(
                    r#"{{"Name":"{name}","Metadata":{{"Description":""}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
                ),
            )
            .unwrap();
            if *with_tls {
                let tls = dir.path().join("contexts/tls").join(&digest).join("docker");
                std::fs::create_dir_all(&tls).unwrap();
                for file in ["ca.pem", "cert.pem", "key.pem"] {
                    std::fs::write(tls.join(file), "").unwrap();
                }
            }
        }
        dir
    }

    #[test]
    fn the_context_store_path_is_the_docker_clis() {
        // Where `docker context create remote --docker host=…` (20.10) put it.
        assert_eq!(
            hex(&Sha256::digest(b"remote")),
            "b71199ebd070b36beab7317920c2c2f1d777df8d05e5527d8458fda57cb17a7a"
        );
    }

    #[test]
    fn docker_host_comes_first_then_docker_context_then_the_current_context() {
        let dir = store(
            Some("desktop"),
            &[
                ("desktop", "unix:///home/u/.docker/run/docker.sock", false),
                ("big", "ssh://me@big", false),
            ],
        );
        let config = dir.path().to_str().unwrap();
        let all = choose(&lookup(&[
            ("DOCKER_HOST", "tcp://10.0.0.1:2375"),
            ("DOCKER_CONTEXT", "big"),
            ("DOCKER_CONFIG", config),
        ]))
        .unwrap();
        assert_eq!(
            (all.host.as_str(), &all.chosen_by),
            ("tcp://10.0.0.1:2375", &ChosenBy::DockerHost)
        );

        let named = choose(&lookup(&[
            ("DOCKER_CONTEXT", "big"),
            ("DOCKER_CONFIG", config),
        ]))
        .unwrap();
        assert_eq!(named.host, "ssh://me@big");
        assert_eq!(
            named.to_string(),
            "ssh://me@big, context `big` from DOCKER_CONTEXT"
        );

        let current = choose(&lookup(&[("DOCKER_CONFIG", config)])).unwrap();
        assert_eq!(current.host, "unix:///home/u/.docker/run/docker.sock");
        assert_eq!(
            current.to_string(),
            "unix:///home/u/.docker/run/docker.sock, context `desktop`"
        );

        // An empty variable counts as unset, as it does for the docker CLI.
        let empty = choose(&lookup(&[
            ("DOCKER_HOST", ""),
            ("DOCKER_CONTEXT", ""),
            ("DOCKER_CONFIG", config),
        ]))
        .unwrap();
        assert_eq!(empty, current);
    }

    #[test]
    fn the_config_dir_defaults_to_dot_docker_in_home() {
        let home = tempfile::tempdir().unwrap();
        let dir = store(Some("c"), &[("c", "tcp://h:1", false)]);
        std::fs::rename(dir.path(), home.path().join(".docker")).unwrap();
        let chosen = choose(&lookup(&[("HOME", home.path().to_str().unwrap())])).unwrap();
        assert_eq!(chosen.host, "tcp://h:1");
    }

    #[test]
    fn without_anything_set_or_with_the_default_context_it_is_the_local_socket() {
        let dir = store(Some("default"), &[]);
        let config = dir.path().to_str().unwrap();
        for vars in [
            vec![("DOCKER_CONFIG", config)],
            vec![("DOCKER_CONFIG", "/nonexistent")],
            vec![
                ("DOCKER_CONTEXT", "default"),
                ("DOCKER_CONFIG", "/nonexistent"),
            ],
        ] {
            let chosen = choose(&lookup(&vars)).unwrap();
            assert_eq!(chosen.host, DEFAULT_SOCKET, "{vars:?}");
            assert_eq!(chosen.chosen_by, ChosenBy::Default);
        }
    }

    #[test]
    fn tls_comes_from_the_cert_path_the_config_dir_or_the_context() {
        let with_path = choose(&lookup(&[
            ("DOCKER_HOST", "tcp://e:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", "/certs"),
        ]))
        .unwrap();
        assert_eq!(with_path.tls, Some(TlsFiles::in_dir(Path::new("/certs"))));
        assert_eq!(
            with_path.to_string(),
            "tcp://e:2376 (TLS), from DOCKER_HOST"
        );

        let in_config = choose(&lookup(&[
            ("DOCKER_HOST", "tcp://e"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("HOME", "/home/u"),
        ]))
        .unwrap();
        assert_eq!(in_config.host, "tcp://e:2376", "the TLS port by default");
        assert_eq!(
            in_config.tls,
            Some(TlsFiles::in_dir(Path::new("/home/u/.docker")))
        );

        let plain = choose(&lookup(&[("DOCKER_HOST", "tcp://e")])).unwrap();
        assert_eq!((plain.host.as_str(), &plain.tls), ("tcp://e:2375", &None));

        let dir = store(None, &[("secure", "tcp://e:2376", true)]);
        let context = choose(&lookup(&[
            ("DOCKER_CONTEXT", "secure"),
            ("DOCKER_CONFIG", dir.path().to_str().unwrap()),
        ]))
        .unwrap();
        let tls = context.tls.expect("the context's TLS material");
        assert!(
            tls.ca.ends_with("docker/ca.pem") && tls.ca.exists(),
            "{tls:?}"
        );
    }

    #[test]
    fn tcp_addresses_keep_their_port_and_ipv6_brackets() {
        for (given, chosen) in [
            ("tcp://10.0.0.1:2375", "tcp://10.0.0.1:2375"),
            ("tcp://[::1]:23", "tcp://[::1]:23"),
            ("tcp://[::1]", "tcp://[::1]:2375"),
            ("http://e:80/", "tcp://e:80"),
        ] {
            assert_eq!(
                choose(&lookup(&[("DOCKER_HOST", given)])).unwrap().host,
                chosen
            );
        }
    }

    #[test]
    fn a_bad_choice_says_what_was_given_where_and_what_to_do() {
        let messages = |vars: &[(&str, &str)]| {
            let err = choose(&lookup(vars)).unwrap_err();
            format!("{}; {}", err.message(), err.hints().join("; "))
        };
        assert_eq!(
            messages(&[("DOCKER_HOST", "localhost:2375")]),
            "DOCKER_HOST is `localhost:2375`, which has no scheme; \
             write unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST"
        );
        assert!(messages(&[("DOCKER_HOST", "npipe:////./pipe/docker")]).contains("scheme `npipe`"));
        assert!(messages(&[("DOCKER_HOST", "tcp://")]).contains("has no address"));

        let dir = store(Some("gone"), &[]);
        let config = dir.path().to_str().unwrap();
        let gone = messages(&[("DOCKER_CONFIG", config)]);
        assert!(
            gone.starts_with("the Docker context `gone` that "),
            "{gone}"
        );
        assert!(
            gone.contains("config.json names as current does not exist"),
            "{gone}"
        );
        assert!(gone.contains("docker context ls"), "{gone}");
        let named = messages(&[("DOCKER_CONTEXT", "nope"), ("DOCKER_CONFIG", config)]);
        assert!(
            named.contains("`nope` that DOCKER_CONTEXT names does not exist"),
            "{named}"
        );

        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let broken = messages(&[("DOCKER_CONFIG", config)]);
        assert!(broken.contains("config.json is not valid JSON"), "{broken}");
    }

    #[test]
    fn a_context_that_skips_tls_verification_is_refused() {
        let dir = store(None, &[("lax", "tcp://e:2376", false)]);
        let digest = hex(&Sha256::digest(b"lax"));
        let meta = dir
            .path()
            .join("contexts/meta")
            .join(digest)
            .join("meta.json");
        let text = std::fs::read_to_string(&meta)
            .unwrap()
            .replace("false", "true");
        std::fs::write(&meta, text).unwrap();
        let err = choose(&lookup(&[
            ("DOCKER_CONTEXT", "lax"),
            ("DOCKER_CONFIG", dir.path().to_str().unwrap()),
        ]))
        .unwrap_err();
        assert!(
            err.message().contains("skips verifying"),
            "{}",
            err.message()
        );
    }
}
