//! Which of the host's object files go into the bottle as they are.
//!
//! Most of a repository sits in packs that git has already indexed.
//! Sending those files with their `.idx` spares the bottle from hashing
//! every byte again in `git index-pack`, and that hashing is most of what a
//! bundle costs. A file goes only when every object in it is reachable
//! from the branches, the tags and HEAD. So a dangling blob, a staged file,
//! or a commit amended away (whatever the user never committed or has
//! since dropped) stays on the host. The reachable objects that no sent
//! file holds travel as one fresh pack.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::{Repository, git, text};
use crate::error::{Error, Result};

/// A SHA-1 object name. `Repository::find` refuses other object formats.
type Id = [u8; 20];

/// What of the repository goes into the bottle, and how.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// The object directory that `files` are relative to.
    pub dir: PathBuf,
    /// Packs (`pack/pack-….pack` and its `.idx`) and loose objects
    /// (`ab/cdef…`) sent as they are.
    pub files: Vec<PathBuf>,
    /// What `files` take.
    pub file_bytes: u64,
    /// The reachable objects that no file in `files` holds, in hex.
    pub rest: Vec<String>,
    /// The branches and tags, as (ref, object) pairs.
    pub refs: Vec<(String, String)>,
}

impl Repository {
    /// Sorts the objects reachable from the branches, the tags and HEAD
    /// into the files that hold only such objects and the rest.
    pub fn objects(&self) -> Result<Objects> {
        let failed = |what: &str, err: &dyn std::fmt::Display| {
            Error::caused_by(
                format!("cannot read the objects of {}: {what}", self.root.display()),
                err.to_string(),
            )
        };
        let refs = self.refs()?;
        let dir = git(&self.root, &["rev-parse", "--git-path", "objects"])
            .output()
            .map_err(|err| failed("git rev-parse", &err))?;
        let dir = self.root.join(text(&dir));
        let mut tips: Vec<&str> = refs.iter().map(|(_, id)| id.as_str()).collect();
        tips.push(&self.head);
        let reachable = reachable(&self.root, &tips).map_err(|err| failed("git rev-list", &err))?;
        let mut sent = vec![false; reachable.len()];
        let mut objects = Objects {
            refs,
            ..Objects::default()
        };
        for (pack, index) in packs(&dir).map_err(|err| failed("the packs", &err))? {
            let Some(held) = held_by(&dir.join(&index), &reachable)
                .map_err(|err| failed(&index.display().to_string(), &err))?
            else {
                continue;
            };
            for i in held {
                sent[i] = true;
            }
            for file in [pack, index] {
                objects.file_bytes += std::fs::metadata(dir.join(&file))
                    .map_err(|err| failed(&file.display().to_string(), &err))?
                    .len();
                objects.files.push(file);
            }
        }
        for (id, file) in loose(&dir).map_err(|err| failed("the loose objects", &err))? {
            if let Ok(i) = reachable.binary_search(&id)
                && !sent[i]
            {
                sent[i] = true;
                objects.file_bytes += std::fs::metadata(dir.join(&file))
                    .map_err(|err| failed(&file.display().to_string(), &err))?
                    .len();
                objects.files.push(file);
            }
        }
        objects.rest = reachable
            .iter()
            .zip(&sent)
            .filter(|(_, sent)| !**sent)
            .map(|(id, _)| hex(id))
            .collect();
        objects.dir = dir;
        Ok(objects)
    }

    /// The branches and tags, as (ref, object) pairs.
    fn refs(&self) -> Result<Vec<(String, String)>> {
        let out = git(
            &self.root,
            &[
                "for-each-ref",
                "--format=%(refname) %(objectname)",
                "refs/heads",
                "refs/tags",
            ],
        )
        .output()
        .map_err(|err| Error::caused_by("cannot run git for-each-ref", err))?;
        Ok(text(&out)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(r, id)| (r.to_owned(), id.to_owned()))
            .collect())
    }
}

/// Every object reachable from `tips`, sorted, each once.
fn reachable(root: &Path, tips: &[&str]) -> std::io::Result<Vec<Id>> {
    let mut child = git(root, &["rev-list", "--objects", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let lines = tips.join("\n") + "\n";
    let feeder = std::thread::spawn(move || stdin.write_all(lines.as_bytes()));
    let mut ids = Vec::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        let name = line.split(' ').next().unwrap_or_default();
        ids.push(
            parse(name)
                .ok_or_else(|| std::io::Error::other(format!("git rev-list printed `{line}`")))?,
        );
    }
    let fed = feeder.join().expect("the feeder does not panic");
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    fed?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The packs in `dir` as (pack, index) pairs relative to it. Only regular
/// files: a link could point anywhere.
fn packs(dir: &Path) -> std::io::Result<Vec<(PathBuf, PathBuf)>> {
    let mut packs = Vec::new();
    let entries = match std::fs::read_dir(dir.join("pack")) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(packs),
        entries => entries?,
    };
    for entry in entries {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".idx")) else {
            continue;
        };
        let index = Path::new("pack").join(&name);
        let pack = Path::new("pack").join(format!("{stem}.pack"));
        if is_file(&dir.join(&index)) && is_file(&dir.join(&pack)) {
            packs.push((pack, index));
        }
    }
    packs.sort();
    Ok(packs)
}

/// The loose objects in `dir`, as (id, file relative to it).
fn loose(dir: &Path) -> std::io::Result<Vec<(Id, PathBuf)>> {
    let mut objects = Vec::new();
    for fan in std::fs::read_dir(dir)? {
        let fan = fan?.file_name();
        let Some(fan) = fan.to_str().filter(|f| f.len() == 2 && is_hex(f)) else {
            continue;
        };
        for entry in std::fs::read_dir(dir.join(fan))? {
            let name = entry?.file_name();
            let Some(id) = name.to_str().and_then(|n| parse(&format!("{fan}{n}"))) else {
                continue;
            };
            let file = Path::new(fan).join(&name);
            if is_file(&dir.join(&file)) {
                objects.push((id, file));
            }
        }
    }
    Ok(objects)
}

/// Where in `reachable` each object of the pack index `index` is, or
/// `None` when the pack holds an object that is not reachable (or the
/// index is in a version this does not read).
fn held_by(index: &Path, reachable: &[Id]) -> std::io::Result<Option<Vec<usize>>> {
    const MAGIC: &[u8] = b"\xfftOc";
    let mut file = BufReader::new(std::fs::File::open(index)?);
    let mut header = [0u8; 8];
    file.read_exact(&mut header)?;
    // Version 1 has no header and puts a 4-byte offset before each name.
    let (skip, gap) = if &header[..4] == MAGIC {
        if header[4..] != [0, 0, 0, 2] {
            return Ok(None);
        }
        (255 * 4, 0)
    } else {
        (255 * 4 - 8, 4)
    };
    std::io::copy(&mut (&mut file).take(skip), &mut std::io::sink())?;
    let mut count = [0u8; 4];
    file.read_exact(&mut count)?;
    let count = u32::from_be_bytes(count);
    let mut held = Vec::with_capacity(count as usize);
    let mut entry = [0u8; 24];
    for _ in 0..count {
        file.read_exact(&mut entry[..gap + 20])?;
        let id: Id = entry[gap..gap + 20].try_into().expect("20 bytes");
        match reachable.binary_search(&id) {
            Ok(i) => held.push(i),
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(held))
}

fn is_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

fn is_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn parse(name: &str) -> Option<Id> {
    if name.len() != 40 || !is_hex(name) {
        return None;
    }
    let mut id = [0u8; 20];
    for (byte, pair) in id.iter_mut().zip(name.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(id)
}

fn hex(id: &Id) -> String {
    id.iter().fold(String::with_capacity(40), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_in(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "T")
            .env("GIT_AUTHOR_EMAIL", "t@t.example")
            .env("GIT_COMMITTER_NAME", "T")
            .env("GIT_COMMITTER_EMAIL", "t@t.example")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn commit(dir: &Path, file: &str, body: &str) {
        std::fs::write(dir.join(file), body).unwrap();
        git_in(dir, &["add", file]);
        git_in(dir, &["commit", "-qm", file]);
    }

    fn sorted(objects: &Objects) -> (Vec<String>, Vec<String>) {
        let mut files: Vec<String> = objects
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        files.sort();
        let mut rest = objects.rest.clone();
        rest.sort();
        (files, rest)
    }

    #[test]
    fn only_files_of_reachable_objects_are_sent_and_the_rest_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git_in(root, &["init", "-q", "-b", "main"]);
        commit(root, "a", "one\n");
        git_in(root, &["tag", "-a", "v1", "-m", "tagged"]);
        commit(root, "b", "two\n");
        git_in(root, &["checkout", "-qb", "gone"]);
        commit(root, "c", "dropped\n");
        git_in(root, &["checkout", "-q", "main"]);
        // The pack now holds `gone`, which is then deleted.
        git_in(root, &["repack", "-adq"]);
        git_in(root, &["branch", "-D", "gone"]);
        commit(root, "d", "loose\n");
        let blob = root.join("secret");
        std::fs::write(&blob, "never committed\n").unwrap();
        let dangling = git_in(root, &["hash-object", "-w", "secret"]);

        let repo = Repository::find(root).unwrap();
        let objects = repo.objects().unwrap();
        let (files, rest) = sorted(&objects);
        let all = git_in(
            root,
            &["rev-list", "--objects", "--branches", "--tags", "HEAD"],
        );
        let mut reachable: Vec<&str> = all.lines().map(|l| &l[..40]).collect();
        reachable.sort_unstable();
        // The pack holds `gone`'s commit: it stays, and what it holds of
        // `main` is in the rest; `d`'s loose objects go as files.
        assert!(files.iter().all(|f| !f.starts_with("pack/")), "{files:?}");
        let loose_sent: Vec<String> = files.iter().map(|f| f.replace('/', "")).collect();
        assert_eq!(loose_sent.len(), 3, "d's commit, tree and blob: {files:?}");
        let mut together: Vec<String> = loose_sent.iter().cloned().chain(rest).collect();
        together.sort();
        assert_eq!(together, reachable);
        assert!(!together.contains(&dangling));
        assert_eq!(objects.refs.len(), 2, "{:?}", objects.refs);

        // Once everything reachable is in one pack, that pack goes whole.
        git_in(root, &["reflog", "expire", "--expire=now", "--all"]);
        git_in(root, &["repack", "-adq"]);
        git_in(root, &["prune", "--expire=now"]);
        let (files, rest) = sorted(&Repository::find(root).unwrap().objects().unwrap());
        assert_eq!(files.len(), 2, "{files:?}");
        let kinds: Vec<_> = files
            .iter()
            .map(|f| Path::new(f).extension().unwrap().to_owned())
            .collect();
        assert_eq!(kinds, ["idx", "pack"], "{files:?}");
        assert_eq!(rest, Vec::<String>::new());
    }

    #[test]
    fn a_version_1_index_is_read_too() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git_in(root, &["init", "-q", "-b", "main"]);
        commit(root, "a", "one\n");
        git_in(root, &["-c", "pack.indexVersion=1", "repack", "-adq"]);
        let (files, rest) = sorted(&Repository::find(root).unwrap().objects().unwrap());
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(rest.is_empty(), "{rest:?}");
    }
}
