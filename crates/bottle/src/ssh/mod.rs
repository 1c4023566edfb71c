//! SSH hosts from inside a bottle without the private key going in: the
//! bottle's ssh talks to an agent socket whose relay forwards each request
//! over an exec stream to the key holder in claude-bottle, and reaches its
//! host through a CONNECT tunnel of the gate.

pub mod frame;
pub mod holder;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ssh_key::{PrivateKey, PublicKey};

use crate::env::SecretPrompt;
use crate::error::{Error, Result};
use crate::manifest::SshHost;
use crate::prepare::expand_home;
use holder::{Grant, HeldKey};

/// Where the relay listens in the agent's home, and where the helper
/// executable goes.
pub const AGENT_SOCKET: &str = ".ssh/claude-bottle-agent.sock";
pub const HELPER: &str = ".claude-bottle/bin/claude-bottle";
/// The gate as the bottle's ProxyCommand reaches it.
pub const GATE: &str = "gate:3128";

/// A declared SSH host, resolved on the host at prepare.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// The alias the agent uses (`git@gitea:...`).
    pub host: String,
    pub hostname: String,
    pub user: Option<String>,
    pub port: u16,
    pub identity_file: PathBuf,
    pub known_host_key: Option<PublicKey>,
}

impl SshTarget {
    pub fn resolve(entry: &SshHost, home: &Path) -> Result<Self> {
        let known_host_key = entry
            .known_host_key
            .as_deref()
            .map(|key| {
                PublicKey::from_openssh(key.trim()).map_err(|err| {
                    Error::caused_by(
                        format!("the KnownHostKey of ssh host `{}` is not a public key", entry.host),
                        err,
                    )
                    .hint("write it as a line of known_hosts without the host: \"ssh-ed25519 AAAA...\"")
                })
            })
            .transpose()?;
        Ok(Self {
            host: entry.host.clone(),
            hostname: entry.target().to_owned(),
            user: entry.user.clone(),
            port: entry.port_or_default(),
            identity_file: expand_home(home, &entry.identity_file.value),
            known_host_key,
        })
    }

    /// How `known_hosts` names this host.
    fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.hostname.clone()
        } else {
            format!("[{}]:{}", self.hostname, self.port)
        }
    }

    fn public_key_file(&self) -> String {
        format!(".ssh/claude-bottle-{}.pub", self.host)
    }
}

/// The bottle's SSH hosts as prepare resolved them, with the public half
/// of each one's key.
#[derive(Debug, Clone, Default)]
pub struct SshSetup {
    pub targets: Vec<SshTarget>,
    pub public: Vec<PublicKey>,
}

impl SshSetup {
    pub fn resolve(entries: &[SshHost], home: &Path) -> Result<Self> {
        let targets = entries
            .iter()
            .map(|entry| SshTarget::resolve(entry, home))
            .collect::<Result<Vec<_>>>()?;
        let public = public_keys(&targets)?;
        Ok(Self { targets, public })
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// A file for the agent's home: its path under the home, mode and bytes.
#[derive(Debug, Clone)]
pub struct HomeFile {
    pub path: String,
    pub mode: u32,
    pub contents: Vec<u8>,
}

/// `~/.ssh/config`, `known_hosts` and the public halves of the keys, for
/// the agent's home at `home`; `public` holds each target's public key.
pub fn home_files(
    targets: &[SshTarget],
    public: &[PublicKey],
    home: &str,
) -> Result<Vec<HomeFile>> {
    let home = home.trim_end_matches('/');
    let mut config = String::from("# Written by claude-bottle: the bottle's declared SSH hosts.\n");
    let mut known_hosts = String::new();
    let mut files = Vec::new();
    for (target, key) in targets.iter().zip(public) {
        let public = key.to_openssh().map_err(|err| {
            Error::caused_by(
                format!("cannot write the public key of `{}`", target.host),
                err,
            )
        })?;
        files.push(HomeFile {
            path: target.public_key_file(),
            mode: 0o644,
            contents: format!("{public}\n").into_bytes(),
        });
        let _ = writeln!(config, "Host {}", target.host);
        let _ = writeln!(config, "  HostName {}", target.hostname);
        let _ = writeln!(config, "  Port {}", target.port);
        if let Some(user) = &target.user {
            let _ = writeln!(config, "  User {user}");
        }
        let _ = writeln!(config, "  IdentityAgent {home}/{AGENT_SOCKET}");
        let _ = writeln!(config, "  IdentityFile {home}/{}", target.public_key_file());
        let _ = writeln!(config, "  IdentitiesOnly yes");
        let _ = writeln!(
            config,
            "  ProxyCommand {home}/{HELPER} connect --proxy {GATE} %h %p"
        );
        let _ = writeln!(config, "  UserKnownHostsFile {home}/.ssh/known_hosts");
        match &target.known_host_key {
            Some(pinned) => {
                let pinned = pinned.to_openssh().map_err(|err| {
                    Error::caused_by(
                        format!("cannot write the host key of `{}`", target.host),
                        err,
                    )
                })?;
                let _ = writeln!(known_hosts, "{} {pinned}", target.known_hosts_name());
                let _ = writeln!(config, "  StrictHostKeyChecking yes");
            }
            None => {
                let _ = writeln!(config, "  StrictHostKeyChecking accept-new");
            }
        }
    }
    files.push(HomeFile {
        path: ".ssh/config".to_owned(),
        mode: 0o600,
        contents: config.into_bytes(),
    });
    files.push(HomeFile {
        path: ".ssh/known_hosts".to_owned(),
        mode: 0o644,
        contents: known_hosts.into_bytes(),
    });
    Ok(files)
}

/// The public half of each target's key, read at prepare (an encrypted
/// key shows its public half without its passphrase).
pub fn public_keys(targets: &[SshTarget]) -> Result<Vec<PublicKey>> {
    targets
        .iter()
        .map(|target| Ok(read_key(target)?.public_key().clone()))
        .collect()
}

fn read_key(target: &SshTarget) -> Result<PrivateKey> {
    let text = std::fs::read_to_string(&target.identity_file).map_err(|err| {
        Error::caused_by(
            format!(
                "cannot read the key of ssh host `{}` ({})",
                target.host,
                target.identity_file.display()
            ),
            err,
        )
    })?;
    PrivateKey::from_openssh(text.trim()).map_err(|err| {
        Error::caused_by(
            format!(
                "the key of ssh host `{}` ({}) is not an OpenSSH private key",
                target.host,
                target.identity_file.display()
            ),
            err,
        )
        .hint("convert it with `ssh-keygen -p -f <file>`, which writes the OpenSSH format")
    })
}

/// The keys for the holder, decrypted with a passphrase asked through
/// `prompt` where one is needed (after the y/N, like a `?` secret).
pub fn load_keys(
    targets: &[SshTarget],
    mut prompt: Option<&mut dyn SecretPrompt>,
) -> Result<Vec<HeldKey>> {
    let mut held: Vec<HeldKey> = Vec::new();
    for target in targets {
        let mut key = read_key(target)?;
        if key.is_encrypted() {
            let Some(prompt) = prompt.as_deref_mut() else {
                return Err(Error::new(format!(
                    "the key of ssh host `{}` has a passphrase, and there is no terminal to ask it on",
                    target.host
                ))
                .hint("start on a terminal, or give the bottle a key without a passphrase"));
            };
            let question = format!("passphrase of {}", target.identity_file.display());
            let passphrase = prompt
                .ask(&target.host, Some(&question))
                .map_err(|err| Error::caused_by("cannot read the passphrase", err))?;
            key = key.decrypt(passphrase.expose()).map_err(|_| {
                Error::new(format!(
                    "wrong passphrase for the key of ssh host `{}`",
                    target.host
                ))
            })?;
        }
        let grant = Grant {
            pin: target.known_host_key.as_ref().map(|k| k.key_data().clone()),
            user: target.user.clone(),
        };
        match held
            .iter_mut()
            .find(|h| h.key.public_key() == key.public_key())
        {
            Some(same) => {
                same.hosts.push(target.host.clone());
                same.grants.push(grant);
            }
            None => held.push(HeldKey {
                key,
                hosts: vec![target.host.clone()],
                grants: vec![grant],
            }),
        }
    }
    Ok(held)
}
