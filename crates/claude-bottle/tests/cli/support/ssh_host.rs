//! SSH hosts for bottles: `sshd` fixtures on a network the gate joins,
//! manifest entries for them, and the key files a test makes.

use std::time::{Duration, Instant};

use bollard::Docker;
use serde_json::{Value, json};

use super::{SSHD_IMAGE, Sandbox, Service, TestContainer, TestNetwork, exec};

/// An sshd fixture: its container, its address and host key.
pub(crate) struct SshHostFixture {
    _container: TestContainer,
    pub(crate) id: String,
    #[allow(
        dead_code,
        reason = "the security suite names it in its DNS records; the CLI tests reach the host by its alias"
    )]
    pub(crate) address: String,
    pub(crate) host_key: String,
}

impl SshHostFixture {
    pub(crate) async fn start(
        docker: &Docker,
        label: &str,
        network: &TestNetwork,
        alias: &str,
        port: u16,
        authorized: &[&str],
    ) -> Self {
        let (container, address) = Service::new(SSHD_IMAGE, network)
            .env("AUTHORIZED_KEYS", &authorized.join("\n"))
            .env("SSHD_PORT", &port.to_string())
            .alias(alias)
            .start(docker, label)
            .await;
        let id = container.id.clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        let host_key = loop {
            let (code, key) = exec(
                docker,
                &id,
                &["cat", "/etc/ssh/ssh_host_ed25519_key.pub"],
                &[],
            )
            .await;
            if code == 0 && key.starts_with("ssh-ed25519 ") {
                break key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            }
            assert!(
                Instant::now() < deadline,
                "sshd {alias} made no host key: {key}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Self {
            _container: container,
            id,
            address,
            host_key,
        }
    }

    /// The commits of the bare repository, newest first.
    pub(crate) async fn commits(&self, docker: &Docker) -> String {
        let (_, log) = exec(
            docker,
            &self.id,
            &[
                "git",
                "--git-dir",
                "/srv/git/repo.git",
                "log",
                "--format=%s",
                "main",
            ],
            &[],
        )
        .await;
        log
    }
}

/// An `ssh` entry of a manifest: `host` at `hostname:port` as user `git`,
/// with the key `~/.ssh/KEY`, pinned to `pin` when given.
pub(crate) fn entry(host: &str, hostname: &str, port: u16, key: &str, pin: Option<&str>) -> Value {
    let mut entry = json!({
        "Host": host, "Hostname": hostname, "User": "git", "Port": port,
        "IdentityFile": format!("~/.ssh/{key}"),
    });
    if let Some(pin) = pin {
        entry["KnownHostKey"] = json!(pin);
    }
    entry
}

/// The same key files in another sandbox's home.
pub(crate) fn copy_keys(from: &Sandbox, to: &Sandbox, files: &[&str]) {
    std::fs::create_dir_all(to.home.join(".ssh")).unwrap();
    for file in files {
        std::fs::copy(
            from.home.join(".ssh").join(file),
            to.home.join(".ssh").join(file),
        )
        .unwrap();
    }
}

/// The files of a container, searched as root, that hold any of `lines`.
pub(crate) async fn files_holding(docker: &Docker, container: &str, lines: &[String]) -> String {
    let search = "printf '%s\\n' \"$NEEDLES\" >/tmp/.needles \
        && grep -rlF -f /tmp/.needles / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev \
        2>/dev/null | grep -v '^/tmp/.needles$' || true";
    let needles = format!("NEEDLES={}", lines.join("\n"));
    let (_, found) = exec(docker, container, &["sh", "-c", search], &[&needles]).await;
    found.trim().to_owned()
}

/// The private key's base64 body, line by line as the file holds it.
pub(crate) fn key_lines(sandbox: &Sandbox, key: &str) -> Vec<String> {
    std::fs::read_to_string(sandbox.home.join(".ssh").join(key))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(ToOwned::to_owned)
        .collect()
}
