//! Packages from an npm registry: the metadata, the tarball, its integrity.
//!
//! Only what the default image needs: one version of one package, fetched
//! once into the user's cache. The tarball is hashed as it arrives and
//! moved into the cache only when its SHA-512 matches; a download that is
//! cut short or fails the check leaves nothing behind. The HTTP client
//! honours the host's `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` and its CA
//! store (`SSL_CERT_FILE`, `SSL_CERT_DIR`), as corporate networks need.

use std::fmt;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha512};
use tokio::io::AsyncWriteExt as _;

use crate::error::{Cause, Error, Result};
use crate::settings::NPM_REGISTRY;
use crate::ui::{Ui, Work};

/// A Subresource Integrity value as npm writes it: `sha512-<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Integrity {
    digest: Vec<u8>,
}

impl Integrity {
    /// The SHA-512 entry of an SRI string (npm may list several hashes).
    pub fn parse(sri: &str) -> Option<Self> {
        sri.split_whitespace()
            .filter_map(|entry| entry.strip_prefix("sha512-"))
            .find_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .filter(|digest| digest.len() == 64)
            .map(|digest| Self { digest })
    }

    fn of(hasher: Sha512) -> Self {
        Self {
            digest: hasher.finalize().to_vec(),
        }
    }

    /// The integrity of a file's content.
    pub fn of_file(path: &Path) -> std::io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha512::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buf)? {
                0 => return Ok(Self::of(hasher)),
                n => hasher.update(&buf[..n]),
            }
        }
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(&self.digest)
        )
    }
}

impl fmt::Debug for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Integrity({self})")
    }
}

/// One version of one package, and where its tarball goes.
#[derive(Debug)]
pub struct Fetch<'a> {
    /// Ends with `/`.
    pub registry: &'a str,
    pub package: &'a str,
    pub version: &'a str,
    /// When set, the tarball must have this integrity whatever the
    /// registry's metadata says.
    pub pinned: Option<Integrity>,
    pub cache: &'a Path,
    /// Where the download shows its progress.
    pub ui: &'a dyn Ui,
}

/// The most a registry's metadata may take; the abbreviated document of a
/// package with hundreds of versions is well under a megabyte.
const METADATA_LIMIT: u64 = 64 << 20;
/// The most a tarball may take: Claude Code's is about 190 MB.
const TARBALL_LIMIT: u64 = 2 << 30;

/// Where a tarball comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarballSource {
    /// Downloaded before and checked again.
    Cache,
    /// The registry has it, and answers.
    Registry,
}

impl Fetch<'_> {
    /// The cached tarball, downloading and checking it first if need be.
    pub async fn tarball(&self) -> Result<PathBuf> {
        // A pinned tarball already in the cache needs no registry at all.
        if let Some(pinned) = &self.pinned {
            let path = self.cache_path(pinned);
            if cached(&path, pinned).await {
                return Ok(path);
            }
        }
        let client = self.client()?;
        let (url, published) = self.locate(&client).await?;
        let expected = match &self.pinned {
            Some(pinned) => pinned.clone(),
            None => published.ok_or_else(|| {
                Error::new(format!(
                    "the registry gives no sha512 integrity for {}@{}",
                    self.package, self.version
                ))
                .hint("claude-bottle only installs what it can check; use a registry that publishes sha512 integrity")
            })?,
        };
        let path = self.cache_path(&expected);
        if !cached(&path, &expected).await {
            self.download(&client, &url, &expected, &path).await?;
        }
        Ok(path)
    }

    /// Where [`Self::tarball`] would take the tarball from, asking the
    /// registry for its metadata only; the error it would fail with.
    pub async fn source(&self) -> Result<TarballSource> {
        if let Some(pinned) = &self.pinned {
            if cached(&self.cache_path(pinned), pinned).await {
                return Ok(TarballSource::Cache);
            }
        }
        self.locate(&self.client()?).await?;
        Ok(TarballSource::Registry)
    }

    /// The client of the registry, refused over plain http when nothing
    /// pinned checks what it says.
    fn client(&self) -> Result<reqwest::Client> {
        if self.pinned.is_none() && self.registry.starts_with("http://") {
            return Err(Error::new(format!(
                "Claude Code {} would be checked against the integrity {} states over plain http, which proves nothing",
                self.version,
                redact_userinfo(self.registry)
            ))
            .hint(format!(
                "use an https registry in {}, or the pinned version {} (checked against a hash built into claude-bottle)",
                NPM_REGISTRY.name,
                crate::images::claude_code::PINNED_VERSION
            )));
        }
        reqwest::Client::builder()
            .user_agent(concat!("claude-bottle/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|err| Error::caused_by("cannot make an HTTP client", err))
    }

    /// Where the tarball with this integrity is kept: the name carries the
    /// hash, so no two contents ever share a file.
    fn cache_path(&self, integrity: &Integrity) -> PathBuf {
        let short = integrity.digest[..8]
            .iter()
            .fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            });
        self.cache.join(format!(
            "{}-{}-{short}.tgz",
            self.package.trim_start_matches('@').replace('/', "-"),
            self.version
        ))
    }

    /// The tarball's address and published integrity, from the metadata.
    async fn locate(&self, client: &reqwest::Client) -> Result<(String, Option<Integrity>)> {
        let url = format!("{}{}", self.registry, self.package.replace('/', "%2f"));
        let shown = redact_userinfo(&url);
        let unreachable = |err: Cause| {
            Error::caused_by(format!("cannot read {shown}"), err).hint(format!(
                "check the network, HTTPS_PROXY and the CA settings, or point {} at a registry you can reach",
                NPM_REGISTRY.name
            ))
        };
        let response = client
            .get(&url)
            // The abbreviated metadata: every version's dist, nothing else.
            .header(
                "accept",
                "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8",
            )
            .send()
            .await
            .map_err(|err| unreachable(err.into()))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(Error::new(format!(
                "the registry {} has no package {}",
                redact_userinfo(self.registry),
                self.package
            ))
            .hint(format!(
                "{} must name an npm registry or a mirror of one",
                NPM_REGISTRY.name
            )));
        }
        let mut response = response
            .error_for_status()
            .map_err(|err| unreachable(err.into()))?;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| unreachable(err.into()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > METADATA_LIMIT {
                return Err(Error::new(format!(
                    "the metadata at {shown} is larger than {} MiB, which no package's is",
                    METADATA_LIMIT >> 20
                ))
                .hint(format!(
                    "{} must name an npm registry or a mirror of one",
                    NPM_REGISTRY.name
                )));
            }
        }
        let metadata: serde_json::Value =
            serde_json::from_slice(&body).map_err(|err| unreachable(err.into()))?;
        let Some(dist) = metadata.pointer(&format!(
            "/versions/{}/dist",
            self.version.replace('/', "~1")
        )) else {
            let latest = metadata
                .pointer("/dist-tags/latest")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("unknown");
            return Err(Error::new(format!(
                "the registry {} has no version {} of {}",
                redact_userinfo(self.registry),
                self.version,
                self.package
            ))
            .hint(format!("its latest version is {latest}")));
        };
        let tarball = dist
            .get("tarball")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                Error::new(format!(
                    "the registry's metadata for {}@{} names no tarball",
                    self.package, self.version
                ))
            })?;
        let integrity = dist
            .get("integrity")
            .and_then(serde_json::Value::as_str)
            .and_then(Integrity::parse);
        Ok((tarball.to_owned(), integrity))
    }

    async fn download(
        &self,
        client: &reqwest::Client,
        url: &str,
        expected: &Integrity,
        path: &Path,
    ) -> Result<()> {
        let shown = redact_userinfo(url);
        let failed = |err: Cause| {
            Error::caused_by(format!("cannot download {shown}"), err).hint(format!(
                "check the network, HTTPS_PROXY and the CA settings, or point {} at a registry you can reach",
                NPM_REGISTRY.name
            ))
        };
        std::fs::create_dir_all(self.cache).map_err(|err| {
            Error::caused_by(format!("cannot create {}", self.cache.display()), err)
        })?;
        // Removed when dropped: on errors, a failed check and signals alike.
        let cannot_write = |err: std::io::Error| {
            Error::caused_by(format!("cannot write to {}", self.cache.display()), err)
        };
        let partial = tempfile::NamedTempFile::new_in(self.cache).map_err(cannot_write)?;
        // Written through tokio: a slow disk must not stall the runtime.
        let mut writer =
            tokio::fs::File::from_std(partial.as_file().try_clone().map_err(cannot_write)?);
        let mut response = client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|err| failed(err.into()))?;
        let progress = self.ui.progress(
            &format!("downloading {}@{}", self.package, self.version),
            Work::Bytes {
                total: response.content_length(),
            },
        );
        let too_large = || {
            Error::new(format!(
                "the tarball at {shown} is larger than {} GiB, which Claude Code's is not",
                TARBALL_LIMIT >> 30
            ))
            .hint(format!(
                "check {} and any proxy in between",
                NPM_REGISTRY.name
            ))
        };
        if response.content_length().is_some_and(|l| l > TARBALL_LIMIT) {
            return Err(too_large());
        }
        let mut hasher = Sha512::new();
        let mut received = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|err| failed(err.into()))? {
            received += chunk.len() as u64;
            if received > TARBALL_LIMIT {
                return Err(too_large());
            }
            hasher.update(&chunk);
            writer
                .write_all(&chunk)
                .await
                .map_err(|err| failed(err.into()))?;
            progress.advance(chunk.len() as u64);
        }
        writer.flush().await.map_err(|err| failed(err.into()))?;
        drop(writer);
        let actual = Integrity::of(hasher);
        if actual != *expected {
            drop(partial);
            progress.finish("refused");
            return Err(Error::new(format!(
                "the tarball of {}@{} from {shown} failed its integrity check \
                 (expected {expected}, got {actual}); the download was deleted",
                self.package, self.version
            ))
            .hint(format!(
                "the registry served something other than the published package; \
                 check {} and any proxy in between, then try again",
                NPM_REGISTRY.name
            )));
        }
        partial
            .persist(path)
            .map_err(|err| failed(err.error.into()))?;
        progress.finish("verified");
        Ok(())
    }
}

/// Whether `path` holds a tarball with the `expected` integrity; one that
/// does not is removed, to be downloaded again.
async fn cached(path: &Path, expected: &Integrity) -> bool {
    let (path, expected) = (path.to_owned(), expected.clone());
    // Hashing ~190 MB takes a while; signals are still heard meanwhile.
    tokio::task::spawn_blocking(move || {
        if !path.exists() {
            return false;
        }
        if Integrity::of_file(&path).is_ok_and(|found| found == expected) {
            return true;
        }
        let _ = std::fs::remove_file(&path);
        false
    })
    .await
    .unwrap_or(false)
}

/// `url` without any `user:password@`, for messages and plans.
pub fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Hands `package/<name>` of a package tarball, with its size, to `read`.
pub fn read_from_tarball(
    tarball: &Path,
    name: &str,
    read: impl FnOnce(u64, &mut dyn Read) -> std::io::Result<()>,
) -> Result<()> {
    let failed = |err: &dyn fmt::Display| {
        Error::caused_by(
            format!("cannot read {}", tarball.display()),
            err.to_string(),
        )
    };
    let file = std::fs::File::open(tarball).map_err(|err| failed(&err))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let wanted = format!("package/{name}");
    for entry in archive.entries().map_err(|err| failed(&err))? {
        let mut entry = entry.map_err(|err| failed(&err))?;
        if entry.path().map_err(|err| failed(&err))?.to_str() == Some(wanted.as_str()) {
            let size = entry.size();
            return read(size, &mut entry).map_err(|err| failed(&err));
        }
    }
    Err(Error::new(format!(
        "{} holds no {wanted}",
        tarball.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_reads_the_sha512_entry_and_prints_it_back() {
        let pinned = "sha512-f4JWhzwYutJIHScC7/dYOPX6s28tt7ZADhsOi8zwOHq5fFPEuUeChh2NMfinSg0GrUckYxaeebC4h0DqiKzLcw==";
        let parsed = Integrity::parse(&format!("sha1-AAAA {pinned}")).unwrap();
        assert_eq!(parsed.to_string(), pinned);
        assert_eq!(Integrity::parse("sha1-qUqP5cyxm6YcTAhz05Hph5gvu9M="), None);
        assert_eq!(Integrity::parse("sha512-tooshort"), None);
    }

    #[test]
    fn credentials_in_a_registry_address_are_never_shown() {
        assert_eq!(
            redact_userinfo("https://ci:s3cret@mirror.example/npm/pkg"),
            "https://***@mirror.example/npm/pkg"
        );
        assert_eq!(
            redact_userinfo("https://mirror.example/a@b"),
            "https://mirror.example/a@b"
        );
        assert_eq!(redact_userinfo("not a url"), "not a url");
    }

    #[test]
    fn a_file_hashes_to_its_sha512() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, "abc").unwrap();
        // SHA-512("abc") from FIPS 180-2.
        assert_eq!(
            Integrity::of_file(&path).unwrap().to_string(),
            "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw=="
        );
    }
}
