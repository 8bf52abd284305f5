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

    /// Copies the entry for `uri` to `to`; false if there is none.
    pub fn copy_out(&self, uri: &str, to: &Path) -> Result<bool, String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let entry = self.entry(uri);
        match std::fs::copy(&entry, to) {
            Ok(_) => {
                // Used now: the last to be evicted.
                let _ = File::options()
                    .append(true)
                    .open(&entry)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
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
        let out = dir.path().join("out");
        assert!(!cache.copy_out("a", &out).unwrap());
        for (uri, data) in [("a", "aaaa"), ("b", "bbbb")] {
            let part = cache.incoming(uri);
            std::fs::write(&part, data).unwrap();
            cache.commit(uri, &part).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Using a makes b the least recently used.
        assert!(cache.copy_out("a", &out).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let part = cache.incoming("c");
        std::fs::write(&part, "cccc").unwrap();
        cache.commit("c", &part).unwrap();
        assert!(cache.copy_out("a", &out).unwrap());
        assert!(!cache.copy_out("b", &out).unwrap(), "b was evicted");
        assert!(cache.copy_out("c", &out).unwrap());
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "cccc");
    }
}
