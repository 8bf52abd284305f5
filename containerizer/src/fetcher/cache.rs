//! The fetcher's cache: downloads of URIs fetched with `cache: true`,
//! named by the sha256 of the URI, bounded in size by removing the least
//! recently used. Entries appear by rename, so one that exists is whole.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::provisioner::digest::Digest;

/// A size-bounded cache of fetched files.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    sequence: AtomicU64,
}

impl Cache {
    /// The cache in `dir`, kept under `max_bytes`.
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        Self {
            dir,
            max_bytes,
            sequence: AtomicU64::new(0),
        }
    }

    fn entry(&self, uri: &str) -> PathBuf {
        self.dir.join(Digest::of(uri.as_bytes()).hex())
    }

    /// A fresh file to download `uri` into before [`Cache::commit`].
    pub fn incoming(&self, uri: &str) -> PathBuf {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        let mut name = self.entry(uri).into_os_string();
        name.push(format!(".{}.{n}.part", std::process::id()));
        PathBuf::from(name)
    }

    /// Makes a finished download the entry for `uri`, then evicts the
    /// least recently used entries past the bound (never this one).
    pub fn commit(&self, uri: &str, incoming: &Path) -> Result<(), String> {
        let entry = self.entry(uri);
        std::fs::rename(incoming, &entry).map_err(|e| format!("{}: {e}", entry.display()))?;
        self.evict(&entry);
        Ok(())
    }

    /// The entry for `uri`, open for reading; none if there is none.
    pub fn open(&self, uri: &str) -> Result<Option<File>, String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let entry = self.entry(uri);
        match File::open(&entry) {
            Ok(file) => {
                // Used now: the last to be evicted.
                let _ = File::options()
                    .append(true)
                    .open(&entry)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                Ok(Some(file))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", entry.display())),
        }
    }

    fn evict(&self, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".part"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if path != keep && std::fs::remove_file(&path).is_ok() {
                tracing::info!(file = %path.display(), bytes = len, "fetcher cache entry evicted");
                total -= len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_within_its_bound_evicting_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cache"), 10);
        let read = |cache: &Cache, uri: &str| {
            cache.open(uri).unwrap().map(|mut f| {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut f, &mut text).unwrap();
                text
            })
        };
        assert!(read(&cache, "a").is_none());
        for (uri, data) in [("a", "aaaa"), ("b", "bbbb")] {
            let part = cache.incoming(uri);
            std::fs::write(&part, data).unwrap();
            cache.commit(uri, &part).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Using a makes b the least recently used.
        assert!(read(&cache, "a").is_some());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let part = cache.incoming("c");
        std::fs::write(&part, "cccc").unwrap();
        cache.commit("c", &part).unwrap();
        assert!(read(&cache, "a").is_some());
        assert!(read(&cache, "b").is_none(), "b was evicted");
        assert_eq!(read(&cache, "c").as_deref(), Some("cccc"));
    }
}
