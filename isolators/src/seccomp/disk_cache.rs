//! Compiled filters kept on disk between processes. libseccomp takes
//! about 15 ms to compile the default profile, which every
//! `tepui container run` and every agent start paid before its first
//! container; a cached filter is read back in well under a millisecond.
//!
//! A file is named by the SHA-256 of everything that decides the filter
//! (this crate's compiler and default profile as built, libseccomp's
//! version, the kernel, the architecture, the bounding set and the
//! profile itself) and starts with that digest, so a file is used only
//! for the exact key it was made for. The directory must be a real
//! directory of this user's that nobody else can write; files are opened
//! without following links, must be regular files of this user's, and
//! are read with a size cap. Anything else, or a file that does not
//! decode, is passed over and the profile compiled again.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tepui_launcher::SeccompProgram;

use super::profile::Profile;

/// What a cache file begins with, before the key's digest.
const MAGIC: &[u8; 8] = b"TPSECC01";

/// The most a cache file may hold: 16 programs at the kernel's limit.
const MAX_FILE: u64 = 16 * (4 + 8 * tepui_launcher::seccomp::MAX_INSTRUCTIONS as u64) + 64;

/// The sources that decide what a profile compiles to, as built.
const SOURCES: [&str; 4] = [
    include_str!("compile.rs"),
    include_str!("default.rs"),
    include_str!("profile.rs"),
    include_str!("disk_cache.rs"),
];

/// The key of one compiled profile: a SHA-256 digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl Key {
    /// The key of `profile` compiled for `bounding` on this kernel.
    pub fn new(profile: &Profile, bounding: u64, kernel: (u32, u32)) -> Self {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut part = |bytes: &[u8]| {
            digest.update(&(bytes.len() as u64).to_le_bytes());
            digest.update(bytes);
        };
        part(MAGIC);
        part(env!("CARGO_PKG_VERSION").as_bytes());
        for source in SOURCES {
            part(source.as_bytes());
        }
        let v = libseccomp::ScmpVersion::current().ok();
        part(format!("{v:?}").as_bytes());
        part(format!("{kernel:?}").as_bytes());
        part(std::env::consts::ARCH.as_bytes());
        part(&bounding.to_le_bytes());
        part(format!("{profile:?}").as_bytes());
        let mut key = [0; 32];
        key.copy_from_slice(digest.finish().as_ref());
        Self(key)
    }

    fn file_name(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading or writing failed.
    #[error("seccomp cache {path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        error: std::io::Error,
    },
    /// The directory or a file is not one this process may trust.
    #[error("seccomp cache {path}: {why}; not used")]
    Untrusted {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A file does not hold programs for its key.
    #[error("seccomp cache {0}: not a cached filter for its key")]
    Corrupt(PathBuf),
}

/// Compiled filters in one directory.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// The cache in `dir`, created (0700) if missing.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let io = |error| CacheError::Io {
            path: dir.to_owned(),
            error,
        };
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        let meta = std::fs::symlink_metadata(dir).map_err(io)?;
        let untrusted = |why| CacheError::Untrusted {
            path: dir.to_owned(),
            why,
        };
        if !meta.file_type().is_dir() {
            return Err(untrusted("not a directory"));
        }
        if !owned_by_us(&meta) {
            return Err(untrusted("owned by another user"));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(untrusted("writable by others"));
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The programs cached under `key`: `Ok(None)` if there are none.
    pub fn load(&self, key: &Key) -> Result<Option<Vec<SeccompProgram>>, CacheError> {
        let path = self.dir.join(key.file_name());
        let io = |error| CacheError::Io {
            path: path.clone(),
            error,
        };
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().map_err(io)?;
        let untrusted = |why| CacheError::Untrusted {
            path: path.clone(),
            why,
        };
        if !meta.file_type().is_file() {
            return Err(untrusted("not a regular file"));
        }
        if !owned_by_us(&meta) {
            return Err(untrusted("owned by another user"));
        }
        if meta.len() > MAX_FILE {
            return Err(untrusted("larger than any cached filter"));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        decode(key, &bytes)
            .map(Some)
            .ok_or_else(|| CacheError::Corrupt(path.clone()))
    }

    /// Keeps `programs` under `key`: written to a new file, then renamed
    /// into place, so a reader sees a whole file or none.
    pub fn store(&self, key: &Key, programs: &[SeccompProgram]) -> Result<(), CacheError> {
        let name = key.file_name();
        let path = self.dir.join(&name);
        let temp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let io = |error| CacheError::Io {
            path: temp.clone(),
            error,
        };
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&temp)?;
            file.write_all(&encode(key, programs))?;
            std::fs::rename(&temp, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(io(e));
        }
        Ok(())
    }
}

fn owned_by_us(meta: &std::fs::Metadata) -> bool {
    // SAFETY: geteuid takes no arguments and cannot fail.
    meta.uid() == unsafe { libc::geteuid() }
}

/// The file's bytes: magic, key, program count, then each program's
/// instruction count and instructions (all little-endian).
fn encode(key: &Key, programs: &[SeccompProgram]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key.0);
    out.extend_from_slice(&(programs.len() as u32).to_le_bytes());
    for program in programs {
        let instructions = program.instructions();
        out.extend_from_slice(&(instructions.len() as u32).to_le_bytes());
        for i in instructions {
            out.extend_from_slice(&i.code.to_le_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_le_bytes());
        }
    }
    out
}

/// A cursor over a cache file's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// The inverse of [`encode`], for `key` only; `None` unless the bytes are
/// exactly such a file.
fn decode(key: &Key, bytes: &[u8]) -> Option<Vec<SeccompProgram>> {
    let mut reader = Reader(bytes);
    if reader.take(MAGIC.len())? != MAGIC || reader.take(32)? != key.0 {
        return None;
    }
    let count = reader.u32()?;
    let mut programs = Vec::new();
    for _ in 0..count {
        let len = reader.u32()? as usize;
        if len > tepui_launcher::seccomp::MAX_INSTRUCTIONS {
            return None;
        }
        let instructions = reader
            .take(len * 8)?
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        programs.push(SeccompProgram::new(instructions).ok()?);
    }
    reader.0.is_empty().then_some(programs)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::capabilities;
    use crate::seccomp::SeccompProfile;

    fn allow_all() -> SeccompProgram {
        let ret = libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        };
        SeccompProgram::new(vec![ret; 2]).unwrap()
    }

    fn words(programs: &[SeccompProgram]) -> Vec<Vec<(u16, u8, u8, u32)>> {
        programs
            .iter()
            .map(|p| {
                p.instructions()
                    .iter()
                    .map(|i| (i.code, i.jt, i.jf, i.k))
                    .collect()
            })
            .collect()
    }

    fn key(bounding: u64) -> Key {
        Key::new(&crate::seccomp::default::profile(), bounding, (6, 1))
    }

    #[test]
    fn a_filter_compiled_by_one_process_is_read_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(&dir.path().join("c")).unwrap();
        let bounding = capabilities::default_mask();
        let first = SeccompProfile::new("d", crate::seccomp::default::profile());
        let compiled = first.programs_cached(bounding, Some(&cache)).unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("c")).unwrap().collect();
        assert_eq!(files.len(), 1, "one file, no temporary left");
        // A second process (a fresh profile) reads it back unchanged.
        let second = SeccompProfile::new("d", crate::seccomp::default::profile());
        let read = second.programs_cached(bounding, Some(&cache)).unwrap();
        assert_eq!(words(&compiled), words(&read));
        // And it does read the file: what is stored under the key is
        // what comes back, not a compile.
        let key = Key::new(&second.profile, bounding, super::super::kernel_version());
        cache.store(&key, &[allow_all()]).unwrap();
        let third = SeccompProfile::new("d", crate::seccomp::default::profile());
        let read = third.programs_cached(bounding, Some(&cache)).unwrap();
        assert_eq!(words(&read), words(&[allow_all()]));
    }

    #[test]
    fn keys_differ_by_bounding_set_profile_and_kernel() {
        assert_eq!(key(1), key(1));
        assert_ne!(key(1), key(2));
        assert_ne!(
            key(1),
            Key::new(&crate::seccomp::default::profile(), 1, (6, 2))
        );
        let mut other = crate::seccomp::default::profile();
        other.rules.pop();
        assert_ne!(key(1), Key::new(&other, 1, (6, 1)));
    }

    #[test]
    fn a_file_for_another_key_or_cut_short_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path()).unwrap();
        cache.store(&key(1), &[allow_all(), allow_all()]).unwrap();
        // Renamed to another key's name: its digest does not match.
        std::fs::rename(
            dir.path().join(key(1).file_name()),
            dir.path().join(key(2).file_name()),
        )
        .unwrap();
        assert!(matches!(cache.load(&key(2)), Err(CacheError::Corrupt(_))));
        // Every shortening, and a byte more, is refused.
        let bytes = encode(&key(3), &[allow_all(), allow_all()]);
        for n in 0..bytes.len() {
            assert!(decode(&key(3), &bytes[..n]).is_none(), "{n} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&key(3), &longer).is_none());
        assert_eq!(decode(&key(3), &bytes).unwrap().len(), 2);
        // An instruction count over the kernel's limit.
        let mut huge = encode(&key(3), &[]);
        huge.truncate(MAGIC.len() + 32);
        huge.extend_from_slice(&1u32.to_le_bytes());
        huge.extend_from_slice(&5000u32.to_le_bytes());
        huge.extend(std::iter::repeat_n(0, 5000 * 8));
        assert!(decode(&key(3), &huge).is_none());
    }

    #[test]
    fn links_and_shared_directories_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("c");
        let cache = DiskCache::open(&cache_dir).unwrap();
        // A link in the file's place is not followed.
        let target = dir.path().join("canary");
        std::fs::write(&target, encode(&key(1), &[allow_all()])).unwrap();
        std::os::unix::fs::symlink(&target, cache_dir.join(key(1).file_name())).unwrap();
        assert!(matches!(cache.load(&key(1)), Err(CacheError::Io { .. })));
        // A FIFO is not read (nor waited on).
        let fifo = cache_dir.join(key(2).file_name());
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            cache.load(&key(2)),
            Err(CacheError::Untrusted { .. })
        ));
        // A directory others may write, or a link for the directory.
        std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            DiskCache::open(&cache_dir),
            Err(CacheError::Untrusted { .. })
        ));
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&cache_dir, &link).unwrap();
        assert!(matches!(
            DiskCache::open(&link),
            Err(CacheError::Untrusted { .. })
        ));
        // A cache that cannot be used still gives the compiled filter.
        std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let profile = SeccompProfile::new("d", crate::seccomp::default::profile());
        let bounding = capabilities::default_mask();
        let k = Key::new(&profile.profile, bounding, super::super::kernel_version());
        std::os::unix::fs::symlink(&target, cache_dir.join(k.file_name())).unwrap();
        let got = profile.programs_cached(bounding, Some(&cache)).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            std::fs::read(&target).unwrap(),
            encode(&key(1), &[allow_all()]),
            "the link's target is untouched"
        );
    }
}
