//! Where the secrets are looked for: the engine's record of every
//! container, exec and image; the agent container's files and processes,
//! searched as root through the engine while the session runs; and the
//! files under the user's home.

use std::path::Path;

use bollard::Docker;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, ListImagesOptions, LogsOptions,
};
use futures_util::StreamExt;

use crate::secrets::Secrets;
use crate::support::exec;

/// A place and the kinds of secret found there.
pub(crate) type Found = Vec<(String, Vec<&'static str>)>;

/// `docker inspect` of every container carrying one of `labels` (as the
/// value of the test label), and of every exec they ran; the count of
/// each, and what was found.
pub(crate) async fn containers(
    docker: &Docker,
    labels: &[String],
    secrets: &Secrets,
) -> (usize, usize, Found) {
    let (mut containers, mut execs, mut found) = (0, 0, Found::new());
    for label in labels {
        let listed = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(crate::support::label_filter(label, None)),
                ..Default::default()
            }))
            .await
            .unwrap();
        for id in listed.into_iter().filter_map(|c| c.id) {
            let Ok(inspect) = docker
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await
            else {
                continue;
            };
            containers += 1;
            let text = serde_json::to_string(&inspect).unwrap();
            let kinds = secrets.found_in(&text);
            if !kinds.is_empty() {
                found.push((format!("container {}", &id[..12]), kinds));
            }
            for exec_id in inspect.exec_ids.unwrap_or_default() {
                if let Ok(exec) = docker.inspect_exec(&exec_id).await {
                    execs += 1;
                    let kinds = secrets.found_in(&serde_json::to_string(&exec).unwrap());
                    if !kinds.is_empty() {
                        found.push((format!("exec {}", &exec_id[..12]), kinds));
                    }
                }
            }
        }
    }
    (containers, execs, found)
}

/// The config and history of every image on the engine.
pub(crate) async fn images(docker: &Docker, secrets: &Secrets) -> (usize, Found) {
    let listed = docker
        .list_images(Some(ListImagesOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .unwrap();
    let mut found = Found::new();
    for image in &listed {
        let mut text = String::new();
        if let Ok(inspect) = docker.inspect_image(&image.id).await {
            text.push_str(&serde_json::to_string(&inspect).unwrap());
        }
        if let Ok(history) = docker.image_history(&image.id).await {
            text.push_str(&serde_json::to_string(&history).unwrap());
        }
        let kinds = secrets.found_in(&text);
        if !kinds.is_empty() {
            let name = image.repo_tags.first().cloned().unwrap_or(image.id.clone());
            found.push((format!("image {name}"), kinds));
        }
    }
    (listed.len(), found)
}

/// A container's log as the engine keeps it, both streams.
pub(crate) async fn container_log(docker: &Docker, id: &str) -> String {
    let mut logs = docker.logs(
        id,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let mut text = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        text.push_str(&chunk.to_string());
    }
    text
}

/// What the agent container holds, searched as root while it runs.
pub(crate) struct Inside {
    /// Files holding a secret, and which.
    pub(crate) files: Found,
    /// Processes whose environment holds a secret: pid, name, whether it
    /// is claude or one of its descendants, and which secrets.
    pub(crate) environ: Vec<(u32, String, bool, Vec<&'static str>)>,
    /// Processes whose arguments hold a secret.
    pub(crate) argv: Found,
    /// The files holding the API key's last 20 characters.
    pub(crate) key_tail: Vec<String>,
}

/// Searches the agent container. The needles go in a file first, written
/// by an exec of their own: the searching shell's environment would
/// otherwise hold every one of them.
pub(crate) async fn inside(docker: &Docker, agent: &str, secrets: &Secrets) -> Inside {
    let tail: String = {
        let chars: Vec<char> = secrets.literal.value.chars().collect();
        chars[chars.len() - 20..].iter().collect()
    };
    let needles = format!("NEEDLES={}", secrets.needles());
    let tail_env = format!("TAIL={tail}");
    let (code, out) = exec(
        docker,
        agent,
        &[
            "sh",
            "-c",
            "umask 077; printf '%s\\n' \"$NEEDLES\" >/tmp/.cb-needles; printf '%s\\n' \"$TAIL\" >/tmp/.cb-tail",
        ],
        &[&needles, &tail_env],
    )
    .await;
    assert_eq!(code, 0, "writing the needles: {out}");
    let script = r#"
skip='^/tmp/\.cb-(needles|tail)$'
echo '== files'
grep -roaF -f /tmp/.cb-needles / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null | sort -u | grep -Ev "^/tmp/\.cb-(needles|tail):"
echo '== tail'
grep -rlF -f /tmp/.cb-tail / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null | grep -Ev "$skip"
# One pass: each process's parent and name are read before its
# environment, so a match is never left without them.
for p in /proc/[0-9]*; do
  st=$(cat "$p/status" 2>/dev/null) || continue
  echo "== ps"
  echo "${p#/proc/} $(echo "$st" | awk '/^PPid:/{print $2}') $(echo "$st" | awk '/^Name:/{print $2}')"
  for what in environ cmdline; do
    echo "== $what"
    grep -oaF -f /tmp/.cb-needles "$p/$what" 2>/dev/null | sed "s|^|${p#/proc/} |"
  done
done
rm -f /tmp/.cb-needles /tmp/.cb-tail
"#;
    let (_, out) = exec(docker, agent, &["sh", "-c", script], &[]).await;
    parse_inside(&out, secrets)
}

/// Adds `kind` to what `list` says of `key`, each kind once.
fn add_kind<K: PartialEq>(list: &mut Vec<(K, Vec<&'static str>)>, key: K, kind: &'static str) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, kinds)) if !kinds.contains(&kind) => kinds.push(kind),
        Some(_) => {}
        None => list.push((key, vec![kind])),
    }
}

fn parse_inside(out: &str, secrets: &Secrets) -> Inside {
    let mut section = "";
    let mut files: Found = Vec::new();
    let mut key_tail = Vec::new();
    let mut environ: Vec<(u32, Vec<&'static str>)> = Vec::new();
    let mut argv: Vec<(u32, Vec<&'static str>)> = Vec::new();
    let mut parents = std::collections::HashMap::new();
    let mut names = std::collections::HashMap::new();
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(name) = line.strip_prefix("== ") {
            section = name;
            continue;
        }
        match section {
            "files" => {
                if let Some((file, form)) = line.rsplit_once(':') {
                    let kind = secrets.kind_of_form(form).unwrap_or("(a secret)");
                    add_kind(&mut files, file.to_owned(), kind);
                }
            }
            "tail" => key_tail.push(line.to_owned()),
            "environ" | "cmdline" => {
                let Some((pid, form)) = line.split_once(' ') else {
                    continue;
                };
                let (Ok(pid), Some(kind)) = (pid.parse::<u32>(), secrets.kind_of_form(form)) else {
                    continue;
                };
                let list = if section == "environ" {
                    &mut environ
                } else {
                    &mut argv
                };
                add_kind(list, pid, kind);
            }
            "ps" => {
                let mut parts = line.splitn(3, ' ');
                if let (Some(Ok(pid)), Some(Ok(ppid)), Some(name)) = (
                    parts.next().map(str::parse::<u32>),
                    parts.next().map(str::parse::<u32>),
                    parts.next(),
                ) {
                    parents.insert(pid, ppid);
                    names.insert(pid, name.to_owned());
                }
            }
            _ => {}
        }
    }
    let of_claude = |mut pid: u32| {
        for _ in 0..64 {
            if names.get(&pid).is_some_and(|n| n == "claude") {
                return true;
            }
            match parents.get(&pid) {
                Some(&parent) if parent != pid && parent != 0 => pid = parent,
                _ => return false,
            }
        }
        false
    };
    Inside {
        files,
        environ: environ
            .into_iter()
            .map(|(pid, kinds)| {
                let name = names.get(&pid).cloned().unwrap_or_default();
                (pid, name, of_claude(pid), kinds)
            })
            .collect(),
        argv: argv
            .into_iter()
            .map(|(pid, kinds)| {
                (
                    format!(
                        "pid {pid} ({})",
                        names.get(&pid).cloned().unwrap_or_default()
                    ),
                    kinds,
                )
            })
            .collect(),
        key_tail,
    }
}

/// Every file under `home`, but for `except` (the user's own files), that
/// holds a secret; and how many files were read.
pub(crate) fn home(home: &Path, except: &[&Path], secrets: &Secrets) -> (usize, Found) {
    let mut found = Found::new();
    let mut read = 0;
    let mut dirs = vec![home.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if except.iter().any(|e| *e == path) {
                continue;
            }
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => dirs.push(path),
                Ok(kind) if kind.is_file() => {
                    let Ok(bytes) = std::fs::read(&path) else {
                        continue;
                    };
                    read += 1;
                    let kinds = secrets.found_in(&String::from_utf8_lossy(&bytes));
                    if !kinds.is_empty() {
                        found.push((path.display().to_string(), kinds));
                    }
                }
                _ => {}
            }
        }
    }
    (read, found)
}

/// `found` as the report shows it.
pub(crate) fn describe(found: &Found) -> String {
    if found.is_empty() {
        return "none of them".to_owned();
    }
    found
        .iter()
        .map(|(place, kinds)| format!("{place}: {}", kinds.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}
