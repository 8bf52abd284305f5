//! The fetcher: puts a task's `CommandInfo.uris` into its sandbox before
//! it starts. http(s) URLs are downloaded, `file://` URLs and absolute
//! paths copied; `extract` unpacks archives (tar, optionally gzip, bzip2,
//! xz or zstd compressed, and zip) as safely as image layers; `executable`
//! makes the file executable; `output_file` names it; `cache` keeps a copy
//! in a size-bounded cache keyed by the URI.

mod archive;
mod cache;

use std::path::{Component, Path, PathBuf};

use hyper::{StatusCode, Uri as Url};

use crate::provisioner::http::{Http, chain, next_chunk};

pub use cache::Cache;

/// One URI of a task, as Mesos's `CommandInfo.URI` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchUri {
    /// http(s)://, file:// or an absolute path.
    pub value: String,
    /// Make the fetched file executable.
    pub executable: bool,
    /// Unpack it when it is an archive (default true).
    pub extract: bool,
    /// Keep a copy in the cache and reuse it.
    pub cache: bool,
    /// The name (relative to the sandbox) to give it.
    pub output_file: Option<String>,
}

impl From<&tepui_proto::v1::command_info::Uri> for FetchUri {
    fn from(uri: &tepui_proto::v1::command_info::Uri) -> Self {
        Self {
            value: uri.value.clone(),
            executable: uri.executable.unwrap_or(false),
            extract: uri.extract.unwrap_or(true),
            cache: uri.cache.unwrap_or(false),
            output_file: uri.output_file.clone(),
        }
    }
}

/// A URI could not be fetched; the task fails with this message.
#[derive(Debug, thiserror::Error)]
#[error("fetching {uri}: {why}")]
pub struct FetchError {
    /// The URI.
    pub uri: String,
    /// What went wrong.
    pub why: String,
}

/// How the fetcher behaves.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// Where cached downloads are kept.
    pub cache_dir: PathBuf,
    /// The cache's size bound; the least recently used go first.
    pub cache_max_bytes: u64,
    /// Most bytes one URI may download or unpack to.
    pub max_bytes: u64,
}

/// Fetches URIs into sandboxes.
pub struct Fetcher {
    http: Http,
    cache: Cache,
    max_bytes: u64,
}

impl Fetcher {
    /// A fetcher with its cache at `config.cache_dir`.
    pub fn new(config: FetcherConfig, http: Http) -> Self {
        Self {
            http,
            cache: Cache::new(config.cache_dir, config.cache_max_bytes),
            max_bytes: config.max_bytes,
        }
    }

    /// Fetches every URI into `sandbox`, in order; the first failure ends it.
    pub async fn fetch_all(&self, uris: &[FetchUri], sandbox: &Path) -> Result<(), FetchError> {
        for uri in uris {
            self.fetch(uri, sandbox).await?;
        }
        Ok(())
    }

    /// Fetches one URI into `sandbox`; returns the file written.
    pub async fn fetch(&self, uri: &FetchUri, sandbox: &Path) -> Result<PathBuf, FetchError> {
        let fail = |why: String| FetchError {
            uri: uri.value.clone(),
            why,
        };
        let name = destination(uri).map_err(fail)?;
        let target = sandbox.join(&name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| fail(format!("{}: {e}", parent.display())))?;
        }
        let started = std::time::Instant::now();
        let cached = uri.cache && self.cache.copy_out(&uri.value, &target).map_err(fail)?;
        if !cached {
            if uri.cache {
                let entry = self.cache.incoming(&uri.value);
                self.retrieve(&uri.value, &entry).await.map_err(fail)?;
                self.cache.commit(&uri.value, &entry).map_err(fail)?;
                if !self.cache.copy_out(&uri.value, &target).map_err(fail)? {
                    return Err(fail("the cached copy vanished".into()));
                }
            } else {
                self.retrieve(&uri.value, &target).await.map_err(fail)?;
            }
        }
        if uri.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| fail(e.to_string()))?;
        } else if uri.extract && archive::is_archive(&name) {
            let (archive, sandbox, max) = (target.clone(), sandbox.to_owned(), self.max_bytes);
            tokio::task::spawn_blocking(move || archive::extract(&archive, &sandbox, max))
                .await
                .map_err(|e| fail(e.to_string()))?
                .map_err(fail)?;
        }
        tracing::info!(uri = %uri.value, file = %target.display(), cached, ms = started.elapsed().as_millis() as u64, "fetched");
        Ok(target)
    }

    /// Copies or downloads `value` to `to`.
    async fn retrieve(&self, value: &str, to: &Path) -> Result<(), String> {
        if let Some(path) = local_path(value)? {
            let (from, to) = (path, to.to_owned());
            return tokio::task::spawn_blocking(move || {
                std::fs::copy(&from, &to)
                    .map(drop)
                    .map_err(|e| format!("copying {}: {e}", from.display()))
            })
            .await
            .map_err(|e| e.to_string())?;
        }
        let url: Url = value.parse().map_err(|e| format!("not a URL: {e}"))?;
        let mut response = self.http.get(&url, &[]).await.map_err(|e| chain(&e))?;
        if response.status() != StatusCode::OK {
            return Err(format!("the server answered {}", response.status()));
        }
        let mut file = std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
        let mut written = 0u64;
        while let Some(chunk) = next_chunk(response.body_mut(), value)
            .await
            .map_err(|e| e.to_string())?
        {
            written += chunk.len() as u64;
            if written > self.max_bytes {
                drop(file);
                let _ = std::fs::remove_file(to);
                return Err(format!("larger than {} bytes", self.max_bytes));
            }
            std::io::Write::write_all(&mut file, &chunk)
                .map_err(|e| format!("{}: {e}", to.display()))?;
        }
        Ok(())
    }
}

/// The local file a `file://` URL or absolute path names; None for http(s).
fn local_path(value: &str) -> Result<Option<PathBuf>, String> {
    if value.starts_with("http://") || value.starts_with("https://") {
        return Ok(None);
    }
    let path = value.strip_prefix("file://").unwrap_or(value);
    if !path.starts_with('/') {
        return Err("only http(s)://, file:// and absolute paths can be fetched".into());
    }
    Ok(Some(PathBuf::from(path)))
}

/// The sandbox-relative name to write: `output_file`, or the URI's last
/// path component; never one that leaves the sandbox.
fn destination(uri: &FetchUri) -> Result<PathBuf, String> {
    let name = match &uri.output_file {
        Some(out) if !out.is_empty() => out.clone(),
        _ => {
            let path = uri.value.split(['?', '#']).next().unwrap_or("");
            let base = path.rsplit('/').next().unwrap_or("");
            if base.is_empty() {
                return Err("the URI names no file; give an output_file".into());
            }
            base.to_owned()
        }
    };
    let path = PathBuf::from(&name);
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("{name:?} would leave the sandbox"));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(value: &str, output: Option<&str>) -> FetchUri {
        FetchUri {
            value: value.into(),
            executable: false,
            extract: true,
            cache: false,
            output_file: output.map(Into::into),
        }
    }

    #[test]
    fn names_come_from_output_file_or_the_uri_and_stay_inside() {
        assert_eq!(
            destination(&uri("http://h/a/b.tar.gz?x=1", None)).unwrap(),
            Path::new("b.tar.gz")
        );
        assert_eq!(
            destination(&uri("/opt/x", Some("bin/x"))).unwrap(),
            Path::new("bin/x")
        );
        assert!(destination(&uri("http://h/", None)).is_err());
        assert!(destination(&uri("/opt/x", Some("../x"))).is_err());
        assert!(destination(&uri("/opt/x", Some("/etc/x"))).is_err());
        assert!(destination(&uri("http://h/..", None)).is_err());
    }

    #[test]
    fn only_urls_and_absolute_paths() {
        assert_eq!(
            local_path("file:///a/b").unwrap(),
            Some(PathBuf::from("/a/b"))
        );
        assert_eq!(local_path("/a/b").unwrap(), Some(PathBuf::from("/a/b")));
        assert_eq!(local_path("https://h/x").unwrap(), None);
        assert!(local_path("relative/x").is_err());
        assert!(local_path("ftp://h/x").is_err());
    }
}
