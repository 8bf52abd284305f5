//! The content-addressed image store under the agent's work dir:
//!
//! ```text
//! blobs/sha256/<hex>     manifests, indexes and configs, verified
//! layers/sha256/<hex>/   each layer unpacked once (named by its blob digest)
//! incoming/<hex>         partial downloads, resumed by the next pull
//! tmp/                   layers being unpacked or deleted
//! locks/<hex>            one flock per digest
//! leases/<container>     the layers a container's rootfs is using
//! images.json            references -> manifest, config and layers
//! ```
//!
//! A layer directory appears by rename, so one that exists is complete.
//! A layer is held with a shared lock by whoever uses it and is only
//! unpacked under the exclusive lock, which garbage collection must also
//! take before it removes one; images.json and leases change under the
//! store-wide lock.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::digest::Digest;
use super::lock::FileLock;

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[error("image store {path}: {error}")]
pub struct StoreError {
    /// The file or directory.
    pub path: String,
    /// What failed.
    pub error: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |error| StoreError {
        path: path.display().to_string(),
        error,
    }
}

/// One layer of an image, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerRecord {
    /// The (compressed) blob's digest, which names its directory.
    pub digest: Digest,
    /// Bytes of file data it unpacked to.
    pub unpacked_bytes: u64,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageRecord {
    /// The normalized reference it was pulled or imported as.
    pub reference: String,
    /// The platform manifest's digest.
    pub manifest: Digest,
    /// The image config's digest.
    pub config: Digest,
    /// Layers, base first.
    pub layers: Vec<LayerRecord>,
    /// Unix seconds of the last pull or use, for garbage collection.
    pub last_used: u64,
}

impl ImageRecord {
    /// Bytes its layers unpacked to.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.unpacked_bytes).sum()
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Catalog {
    images: Vec<ImageRecord>,
}

/// What a container's root filesystem holds on to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// The image's reference.
    pub image: String,
    /// Layers in use.
    pub layers: Vec<Digest>,
    /// The mount point or copied tree.
    pub rootfs: PathBuf,
    /// Directories made for it (overlay upper and work dirs) to remove.
    pub scratch: Option<PathBuf>,
    /// Whether `rootfs` is an overlay mount (else a copy).
    pub overlay: bool,
}

/// Whether a layer needed is already there.
pub(crate) enum LayerSlot {
    /// Unpacked; the shared lock keeps it from garbage collection.
    Present(FileLock),
    /// Missing; the exclusive lock is the right to unpack it.
    Missing(FileLock),
}

/// The store at one root directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `bytes` to `path` atomically: a temporary file, fsync, rename,
/// fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut file = fs::File::create(&tmp).map_err(at(&tmp))?;
    file.write_all(bytes).map_err(at(&tmp))?;
    file.sync_all().map_err(at(&tmp))?;
    fs::rename(&tmp, path).map_err(at(path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir))
}

impl Store {
    /// Opens (creating) the store at `root`, clearing what crashed
    /// extractions and deletions left behind.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let store = Self {
            root: root.to_owned(),
        };
        for dir in [
            "blobs/sha256",
            "layers/sha256",
            "incoming",
            "tmp",
            "locks",
            "leases",
        ] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(at(&path))?;
        }
        // Layers keep their setuid binaries, file capabilities and device
        // nodes: only the store's owner may reach them on the host.
        for dir in ["layers", "tmp"] {
            use std::os::unix::fs::PermissionsExt;
            let path = root.join(dir);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(at(&path))?;
        }
        store.clear_tmp()?;
        Ok(store)
    }

    /// The store's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn clear_tmp(&self) -> Result<(), StoreError> {
        let tmp = self.root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(at(&tmp))? {
            let entry = entry.map_err(at(&tmp))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let hex = name.split('.').next().unwrap_or("");
            let Ok(digest) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            // Whoever unpacks or deletes holds the digest's lock.
            if let Some(_lock) =
                FileLock::try_exclusive(&self.lock_path(&digest)).map_err(at(&tmp))?
            {
                remove_tree(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Where blob `digest` is kept.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Where layer `digest` is unpacked.
    pub fn layer_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(digest.hex())
    }

    /// Where a download of `digest` collects.
    pub fn incoming_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("incoming").join(digest.hex())
    }

    /// A scratch path for work on `digest` (an unpacking or a deletion).
    pub(crate) fn tmp_path(&self, digest: &Digest, what: &str) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{}.{what}", digest.hex()))
    }

    /// Takes the lock of `digest` exclusively, waiting for it.
    pub(crate) fn lock(&self, digest: &Digest) -> Result<FileLock, StoreError> {
        let path = self.lock_path(digest);
        FileLock::exclusive(&path).map_err(at(&path))
    }

    fn lock_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("locks").join(digest.hex())
    }

    /// Whether blob `digest` is stored.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Stores `bytes` as blob `digest`, refusing bytes that hash otherwise.
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        let actual = Digest::of(bytes);
        if actual != *digest {
            return Err(StoreError {
                path: path.display().to_string(),
                error: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("content hashes to {actual}, not {digest}"),
                ),
            });
        }
        if path.is_file() {
            return Ok(());
        }
        write_atomic(&path, bytes)
    }

    /// Blob `digest`, checked against its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(at(&path))?;
        if Digest::of(&bytes) != *digest {
            return Err(StoreError {
                path: path.display().to_string(),
                error: io::Error::new(io::ErrorKind::InvalidData, "the blob is corrupt"),
            });
        }
        Ok(bytes)
    }

    /// Claims layer `digest`: shared if it is unpacked, else exclusive so
    /// the caller unpacks it. Blocks while another unpacks it, but never
    /// waits for the exclusive lock: a waiter there would wait on shared
    /// holders, who may themselves wait on a layer this caller holds.
    pub(crate) fn claim_layer(&self, digest: &Digest) -> Result<LayerSlot, StoreError> {
        let lock_path = self.lock_path(digest);
        let layer = self.layer_path(digest);
        loop {
            // Waits only for an unpacker (the sole exclusive holder).
            let shared = FileLock::shared(&lock_path).map_err(at(&lock_path))?;
            if layer.is_dir() {
                return Ok(LayerSlot::Present(shared));
            }
            drop(shared);
            if let Some(exclusive) = FileLock::try_exclusive(&lock_path).map_err(at(&lock_path))? {
                if layer.is_dir() {
                    exclusive.downgrade().map_err(at(&lock_path))?;
                    return Ok(LayerSlot::Present(exclusive));
                }
                return Ok(LayerSlot::Missing(exclusive));
            }
            // Another claimant got in between: an unpacker, whose work the
            // shared lock above waits for, or users of a layer now present.
        }
    }

    /// Moves a fully unpacked tree into place as layer `digest`; the
    /// caller holds the exclusive claim, which becomes shared.
    pub(crate) fn commit_layer(
        &self,
        digest: &Digest,
        unpacked: &Path,
        claim: &FileLock,
    ) -> Result<(), StoreError> {
        let layer = self.layer_path(digest);
        fs::rename(unpacked, &layer).map_err(at(&layer))?;
        let parent = self.root.join("layers/sha256");
        fs::File::open(&parent)
            .and_then(|d| d.sync_all())
            .map_err(at(&parent))?;
        claim.downgrade().map_err(at(&self.lock_path(digest)))
    }

    /// Runs `change` on the image catalog under the store-wide lock and
    /// saves it atomically; `change` also sees the current leases.
    pub(crate) fn update<T>(
        &self,
        change: impl FnOnce(&mut Vec<ImageRecord>, &[(String, Lease)]) -> T,
    ) -> Result<T, StoreError> {
        let lock_path = self.root.join("lock");
        let _lock = FileLock::exclusive(&lock_path).map_err(at(&lock_path))?;
        let mut catalog = self.read_catalog()?;
        let leases = self.leases()?;
        let before = serde_json::to_vec(&catalog).unwrap_or_default();
        let result = change(&mut catalog.images, &leases);
        let after = serde_json::to_vec_pretty(&catalog).map_err(|e| StoreError {
            path: self.catalog_path().display().to_string(),
            error: io::Error::other(e),
        })?;
        if serde_json::to_vec(&catalog).unwrap_or_default() != before {
            write_atomic(&self.catalog_path(), &after)?;
        }
        Ok(result)
    }

    /// Records `record`, replacing any image of the same reference, so an
    /// image pulled or imported again under one name has one entry.
    pub(crate) fn put_image(&self, record: &ImageRecord) -> Result<(), StoreError> {
        self.update(|images, _| {
            images.retain(|r| r.reference != record.reference);
            images.push(record.clone());
        })
    }

    /// The images, as last saved.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        Ok(self.read_catalog()?.images)
    }

    fn catalog_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    fn read_catalog(&self) -> Result<Catalog, StoreError> {
        let path = self.catalog_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError {
                path: path.display().to_string(),
                error: io::Error::new(io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(e) => Err(at(&path)(e)),
        }
    }

    fn lease_path(&self, container: &str) -> PathBuf {
        self.root.join("leases").join(container)
    }

    /// Records that `container` uses `lease` (call inside [`Store::update`]
    /// so garbage collection sees it atomically with the catalog).
    pub(crate) fn write_lease(&self, container: &str, lease: &Lease) -> Result<(), StoreError> {
        let path = self.lease_path(container);
        let bytes = serde_json::to_vec(lease).map_err(|e| StoreError {
            path: path.display().to_string(),
            error: io::Error::other(e),
        })?;
        write_atomic(&path, &bytes)
    }

    /// The lease of `container`, if any.
    pub fn lease(&self, container: &str) -> Result<Option<Lease>, StoreError> {
        let path = self.lease_path(container);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError {
                    path: path.display().to_string(),
                    error: io::Error::new(io::ErrorKind::InvalidData, e),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(at(&path)(e)),
        }
    }

    /// Forgets `container`'s lease.
    pub(crate) fn remove_lease(&self, container: &str) -> Result<(), StoreError> {
        let path = self.lease_path(container);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(at(&path)(e)),
            _ => Ok(()),
        }
    }

    /// All leases, by container.
    pub fn leases(&self) -> Result<Vec<(String, Lease)>, StoreError> {
        let dir = self.root.join("leases");
        let mut leases = Vec::new();
        for entry in fs::read_dir(&dir).map_err(at(&dir))? {
            let entry = entry.map_err(at(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(".tmp.") {
                continue;
            }
            if let Some(lease) = self.lease(&name)? {
                leases.push((name, lease));
            }
        }
        Ok(leases)
    }

    /// Digests of the unpacked layers.
    pub fn layers(&self) -> Result<BTreeSet<Digest>, StoreError> {
        digests_in(&self.root.join("layers/sha256"))
    }

    /// Digests of the stored blobs.
    pub fn blobs(&self) -> Result<BTreeSet<Digest>, StoreError> {
        digests_in(&self.root.join("blobs/sha256"))
    }

    /// Digests of partial downloads.
    pub fn incoming(&self) -> Result<BTreeSet<Digest>, StoreError> {
        digests_in(&self.root.join("incoming"))
    }

    /// The unpacked size of layer `digest`: as recorded, else measured, so
    /// a claim or a collection can account for a layer no image records.
    pub(crate) fn layer_size(&self, digest: &Digest) -> u64 {
        let recorded = self.images().ok().and_then(|images| {
            images
                .iter()
                .flat_map(|i| i.layers.iter())
                .find(|l| l.digest == *digest)
                .map(|l| l.unpacked_bytes)
        });
        recorded.unwrap_or_else(|| tree_bytes(&self.layer_path(digest)))
    }

    /// Removes layer `digest` if nobody holds it; false if it is in use.
    pub(crate) fn remove_layer(&self, digest: &Digest) -> Result<bool, StoreError> {
        let lock_path = self.lock_path(digest);
        let Some(_lock) = FileLock::try_exclusive(&lock_path).map_err(at(&lock_path))? else {
            return Ok(false);
        };
        let layer = self.layer_path(digest);
        let doomed = self.tmp_path(digest, "gc");
        match fs::rename(&layer, &doomed) {
            Ok(()) => remove_tree(&doomed)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(&layer)(e)),
        }
        Ok(true)
    }

    /// Removes blob `digest`.
    pub(crate) fn remove_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(at(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Removes the partial download of `digest` unless a pull is using it.
    pub(crate) fn remove_incoming(&self, digest: &Digest) -> Result<bool, StoreError> {
        let lock_path = self.lock_path(digest);
        let Some(_lock) = FileLock::try_exclusive(&lock_path).map_err(at(&lock_path))? else {
            return Ok(false);
        };
        let path = self.incoming_path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(at(&path)(e)),
            _ => Ok(true),
        }
    }
}

fn digests_in(dir: &Path) -> Result<BTreeSet<Digest>, StoreError> {
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(at(dir))? {
        let entry = entry.map_err(at(dir))?;
        if let Ok(d) = format!("sha256:{}", entry.file_name().to_string_lossy()).parse() {
            out.insert(d);
        }
    }
    Ok(out)
}

/// Bytes of the regular files under `path`, symlinks not followed.
fn tree_bytes(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Removes a tree that may hold read-only directories, as layers do.
pub(crate) fn remove_tree(path: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(path);
            fs::remove_dir_all(path).map_err(at(path))
        }
        Err(e) => Err(at(path)(e)),
    }
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(path) {
            for entry in entries.flatten() {
                make_writable(&entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    #[test]
    fn a_blob_must_match_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = Digest::of(b"config");
        assert!(store.put_blob(&d, b"other").is_err());
        assert!(!store.has_blob(&d));
        store.put_blob(&d, b"config").unwrap();
        assert_eq!(store.read_blob(&d).unwrap(), b"config");
        fs::write(store.blob_path(&d), b"tampered").unwrap();
        assert!(store.read_blob(&d).is_err());
    }

    #[test]
    fn a_claimed_layer_is_unpacked_once_and_kept_from_removal_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = digest(1);
        let LayerSlot::Missing(claim) = store.claim_layer(&d).unwrap() else {
            panic!("a new layer is missing");
        };
        let unpacked = store.tmp_path(&d, "unpack");
        fs::create_dir_all(unpacked.join("bin")).unwrap();
        store.commit_layer(&d, &unpacked, &claim).unwrap();
        assert!(!store.remove_layer(&d).unwrap(), "held by its unpacker");
        let LayerSlot::Present(other) = store.claim_layer(&d).unwrap() else {
            panic!("the layer is there");
        };
        drop((claim, other));
        assert!(store.remove_layer(&d).unwrap());
        assert!(!store.layer_path(&d).exists());
        assert!(store.layers().unwrap().is_empty());
    }

    #[test]
    fn concurrent_pulls_claiming_shared_layers_never_deadlock() {
        use std::sync::mpsc;
        use std::time::Duration;
        for _round in 0..100 {
            let dir = tempfile::tempdir().unwrap();
            let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
            let (done, finished) = mpsc::channel();
            // Four pulls of three shared layers; like a pull, each claims its
            // layers at once (a thread per layer) and holds every claim
            // until it has all of them.
            for _pull in 0..4 {
                let (held_tx, held_rx) = mpsc::channel();
                for n in 10..13u8 {
                    let (store, held_tx) = (store.clone(), held_tx.clone());
                    std::thread::spawn(move || {
                        let d = digest(n);
                        let lock = match store.claim_layer(&d).unwrap() {
                            LayerSlot::Present(lock) => lock,
                            LayerSlot::Missing(lock) => {
                                let tmp = store.tmp_path(&d, "unpack");
                                fs::create_dir_all(&tmp).unwrap();
                                std::thread::sleep(Duration::from_micros(200));
                                store.commit_layer(&d, &tmp, &lock).unwrap();
                                lock
                            }
                        };
                        held_tx.send(lock).unwrap();
                    });
                }
                let done = done.clone();
                std::thread::spawn(move || {
                    let held: Vec<_> = held_rx.iter().take(3).collect();
                    std::thread::sleep(Duration::from_micros(200));
                    drop(held);
                    done.send(()).unwrap();
                });
            }
            for _ in 0..4 {
                finished
                    .recv_timeout(Duration::from_secs(10))
                    .expect("claims deadlocked");
            }
            assert_eq!(store.layers().unwrap().len(), 3);
        }
    }

    #[test]
    fn reopening_clears_abandoned_unpacking_but_keeps_partial_downloads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = digest(2);
        fs::create_dir_all(store.tmp_path(&d, "unpack").join("a/b")).unwrap();
        fs::write(store.incoming_path(&d), b"half").unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(store.incoming().unwrap().len(), 1);
    }

    #[test]
    fn the_catalog_is_saved_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let record = ImageRecord {
            reference: "r/x:1".into(),
            manifest: digest(3),
            config: digest(4),
            layers: vec![LayerRecord {
                digest: digest(5),
                unpacked_bytes: 7,
            }],
            last_used: 1,
        };
        store
            .update(|images, _| images.push(record.clone()))
            .unwrap();
        assert_eq!(store.images().unwrap(), vec![record]);
        fs::write(dir.path().join("images.json"), b"{").unwrap();
        let e = store.images().unwrap_err();
        assert!(e.to_string().contains("images.json"), "{e}");
    }
}
