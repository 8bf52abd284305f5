//! The fetcher: puts a task's `CommandInfo.uris` into its sandbox before
//! it starts. http(s) URLs are downloaded, `file://` URLs and absolute
//! paths copied; `extract` unpacks archives (tar, optionally gzip, bzip2,
//! xz or zstd compressed, and zip) as safely as image layers; `executable`
//! makes the file executable; `output_file` names it; `cache` keeps a copy
//! of a download in a size-bounded cache keyed by the URI.
//!
//! Every write into the sandbox goes through the sandbox's directory fd
//! beneath which nothing may resolve outside it, and replaces whatever
//! name was there (a link a previous URI planted is removed, never
//! followed). As Mesos runs mesos-fetcher as the task's user, local files
//! are opened and the sandbox written with that user's credentials, so a
//! task gets only the host files its user may read; and all the URIs of a
//! task together may write no more than its disk resource.

mod archive;
mod cache;

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use hyper::{StatusCode, Uri as Url};
use tepui_isolators::beneath::{self, Beneath};
use tepui_launcher::User;

use crate::provisioner::extract::{self, Options, Refusal, Summary};
use crate::provisioner::http::{Http, chain, next_chunk};
use crate::user;

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

/// Where one task's URIs go, as whom, and how much they may write.
#[derive(Debug, Clone)]
pub struct FetchTarget {
    /// The sandbox.
    pub sandbox: PathBuf,
    /// The task's user: local files are read and the sandbox written with
    /// its credentials (none: the agent's own).
    pub user: Option<User>,
    /// The task's disk resource in bytes, if it has one: all its URIs
    /// together may write no more.
    pub disk_bytes: Option<u64>,
}

/// Fetches URIs into sandboxes.
pub struct Fetcher {
    http: Http,
    cache: Cache,
    max_bytes: u64,
}

/// Where a URI's bytes come from once the agent has done its part.
enum Source {
    /// A host path, opened as the task's user.
    Local(PathBuf),
    /// A download (or cache entry) the agent holds open.
    File(File),
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

    /// Fetches every URI into `sandbox` as the agent, in order; the
    /// first failure ends it.
    pub async fn fetch_all(&self, uris: &[FetchUri], sandbox: &Path) -> Result<(), FetchError> {
        self.fetch_all_into(
            uris,
            &FetchTarget {
                sandbox: sandbox.to_owned(),
                user: None,
                disk_bytes: None,
            },
        )
        .await
    }

    /// Fetches every URI as `target` says, in order; the first failure
    /// ends it.
    pub async fn fetch_all_into(
        &self,
        uris: &[FetchUri],
        target: &FetchTarget,
    ) -> Result<(), FetchError> {
        let mut used = 0;
        for uri in uris {
            used += self.fetch_into(uri, target, used).await?.1;
        }
        Ok(())
    }

    /// Fetches one URI into `sandbox` as the agent; returns the file written.
    pub async fn fetch(&self, uri: &FetchUri, sandbox: &Path) -> Result<PathBuf, FetchError> {
        let target = FetchTarget {
            sandbox: sandbox.to_owned(),
            user: None,
            disk_bytes: None,
        };
        Ok(self.fetch_into(uri, &target, 0).await?.0)
    }

    /// Fetches one URI as `target` says, `used` bytes of its budget
    /// already written; returns the file written and the bytes it took.
    async fn fetch_into(
        &self,
        uri: &FetchUri,
        target: &FetchTarget,
        used: u64,
    ) -> Result<(PathBuf, u64), FetchError> {
        let fail = |why: String| FetchError {
            uri: uri.value.clone(),
            why,
        };
        let name = destination(uri).map_err(fail)?;
        let budget = match target.disk_bytes {
            Some(disk) => disk.saturating_sub(used).min(self.max_bytes),
            None => self.max_bytes,
        };
        let over = |target: &FetchTarget| match target.disk_bytes {
            Some(disk) => format!(
                "the fetched files would exceed the task's disk resource ({} MB)",
                disk >> 20
            ),
            None => format!("larger than {} bytes", self.max_bytes),
        };
        let started = std::time::Instant::now();
        let mut part = None;
        let source = match local_path(&uri.value).map_err(fail)? {
            // Never from the cache: what one user may read, another may not.
            Some(path) => Source::Local(path),
            None if uri.cache => {
                let entry = match self.cache.open(&uri.value).map_err(fail)? {
                    Some(entry) => entry,
                    None => {
                        let incoming = self.cache.incoming(&uri.value);
                        self.download(&uri.value, &incoming, self.max_bytes)
                            .await
                            .map_err(fail)?;
                        self.cache.commit(&uri.value, &incoming).map_err(fail)?;
                        self.cache
                            .open(&uri.value)
                            .map_err(fail)?
                            .ok_or_else(|| fail("the cached copy vanished".into()))?
                    }
                };
                Source::File(entry)
            }
            None => {
                // Downloaded into the agent's own directory, then written
                // into the sandbox as the task's user.
                let incoming = self.cache.incoming(&uri.value);
                part = Some(incoming.clone());
                let limit = if target.disk_bytes.is_some() {
                    budget
                } else {
                    self.max_bytes
                };
                let downloaded = self.download(&uri.value, &incoming, limit).await;
                let opened = downloaded.and_then(|()| {
                    File::open(&incoming).map_err(|e| format!("{}: {e}", incoming.display()))
                });
                match opened {
                    Ok(file) => Source::File(file),
                    Err(why) => {
                        let _ = std::fs::remove_file(&incoming);
                        if why.starts_with("larger than") && target.disk_bytes.is_some() {
                            return Err(fail(over(target)));
                        }
                        return Err(fail(why));
                    }
                }
            }
        };
        let root = std::fs::create_dir_all(&target.sandbox)
            .and_then(|()| Beneath::open(&target.sandbox))
            .map_err(|e| fail(format!("{}: {e}", target.sandbox.display())))?;
        let (user, shown, flags) = (
            target.user.clone(),
            name.clone(),
            (uri.executable, uri.extract),
        );
        let placed = tokio::task::spawn_blocking(move || {
            user::on_thread_as(user.as_ref(), move || {
                place(source, &root, &shown, flags.0, flags.1, budget)
            })
        })
        .await;
        if let Some(part) = part {
            let _ = std::fs::remove_file(part);
        }
        let written = match placed {
            Err(e) => return Err(fail(e.to_string())),
            Ok(Err(e)) => return Err(fail(format!("as the task's user: {e}"))),
            Ok(Ok(Err(Placed::TooLarge))) => return Err(fail(over(target))),
            Ok(Ok(Err(Placed::Other(why)))) => return Err(fail(why)),
            Ok(Ok(Ok(written))) => written,
        };
        let file = target.sandbox.join(&name);
        tracing::info!(uri = %uri.value, file = %file.display(), ms = started.elapsed().as_millis() as u64, "fetched");
        Ok((file, written))
    }

    /// Downloads `value` to `to`, at most `max` bytes.
    async fn download(&self, value: &str, to: &Path, max: u64) -> Result<(), String> {
        let url: Url = value.parse().map_err(|e| format!("not a URL: {e}"))?;
        let mut response = self.http.get(&url, &[]).await.map_err(|e| chain(&e))?;
        if response.status() != StatusCode::OK {
            return Err(format!("the server answered {}", response.status()));
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let mut file = std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
        let mut written = 0u64;
        while let Some(chunk) = next_chunk(response.body_mut(), value)
            .await
            .map_err(|e| e.to_string())?
        {
            written += chunk.len() as u64;
            if written > max {
                drop(file);
                let _ = std::fs::remove_file(to);
                return Err(format!("larger than {max} bytes"));
            }
            std::io::Write::write_all(&mut file, &chunk)
                .map_err(|e| format!("{}: {e}", to.display()))?;
        }
        Ok(())
    }
}

/// Why a URI was not written into the sandbox.
enum Placed {
    /// Over the task's byte budget.
    TooLarge,
    /// Anything else, as a message.
    Other(String),
}

/// Opens a local file for reading as the calling thread's user: a
/// regular file only, without blocking on a FIFO or taking a terminal.
fn open_local(path: &Path) -> Result<File, String> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("copying {}: {e}", path.display()))?;
    beneath::regular_blocking(file.into())
        .map(File::from)
        .map_err(|e| format!("copying {}: {e}", path.display()))
}

/// Writes `source` as `name` beneath `root` (replacing, never following,
/// what is there), executable or unpacked as asked, at most `budget`
/// bytes in all; returns the bytes written. Blocking; runs as the task's user.
fn place(
    source: Source,
    root: &Beneath,
    name: &Path,
    executable: bool,
    unpack: bool,
    budget: u64,
) -> Result<u64, Placed> {
    let mut file = match source {
        Source::Local(path) => open_local(&path).map_err(Placed::Other)?,
        Source::File(file) => file,
    };
    let options = Options::plain_archive(budget);
    let mut summary = Summary::default();
    let mode = if executable { 0o755 } else { 0o644 };
    extract::write_file(
        root,
        name.as_os_str().as_bytes(),
        &mut file,
        mode,
        &options,
        &mut summary,
    )
    .map_err(|r| match r {
        Refusal::TooLarge(_) => Placed::TooLarge,
        other => Placed::Other(format!("{}: {other}", name.display())),
    })?;
    if executable || !unpack || !archive::is_archive(name) {
        return Ok(summary.bytes);
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Placed::Other(e.to_string()))?;
    let rest = Options::plain_archive(budget.saturating_sub(summary.bytes));
    match archive::extract(file, name, root, &rest) {
        Ok(bytes) => Ok(summary.bytes + bytes),
        Err(archive::Failed::TooLarge) => Err(Placed::TooLarge),
        Err(archive::Failed::Other(why)) => Err(Placed::Other(why)),
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
