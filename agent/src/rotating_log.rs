//! A task's stdout or stderr in its sandbox, kept to a size: when the file
//! reaches its bound it becomes `<name>.1` (older ones shift to `.2`, ...,
//! the oldest beyond the count is removed) and a new file is begun, so a
//! chatty task cannot fill the agent's disk.
//!
//! The sandbox is the task's to write, so every name is resolved from the
//! sandbox's directory fd and none is followed: the renames move names,
//! not what a link points at, and the new file is created exclusively,
//! through no link; a name a task planted between the rename and the
//! create is removed (the link itself) and the create tried again.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::path::Path;

use tepui_isolators::beneath::Beneath;

/// The variables that give the built-in executor its rotation (set by the agent).
pub const MAX_SIZE_ENV: &str = "TEPUI_LOG_MAX_SIZE";
/// See [`MAX_SIZE_ENV`].
pub const MAX_FILES_ENV: &str = "TEPUI_LOG_MAX_FILES";

/// How many times a new log file is tried when its name is taken again
/// and again between the removal and the create (a task racing).
const CREATE_TRIES: usize = 16;

/// How big a log file grows and how many rotated files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The size at which the file is rotated (at least 1 byte).
    pub max_bytes: u64,
    /// Rotated files kept beside the live one (0: the old data is dropped).
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_bytes: 10 << 20,
            keep: 5,
        }
    }
}

/// A log file that rotates itself as it is written.
pub struct RotatingFile {
    dir: Beneath,
    name: OsString,
    rotation: Rotation,
    file: File,
    size: u64,
}

impl std::fmt::Debug for RotatingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingFile")
            .field("name", &self.name)
            .field("rotation", &self.rotation)
            .field("size", &self.size)
            .finish()
    }
}

fn numbered(name: &OsStr, n: u32) -> OsString {
    let mut name = name.to_owned();
    name.push(format!(".{n}"));
    name
}

fn invalid(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{} names no file in a directory", path.display()),
    )
}

impl RotatingFile {
    /// Opens (appending to) the log at `path`: a regular file, created
    /// when missing, reached through no link.
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<Self> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(invalid(path));
        };
        let dir = Beneath::open(dir)?;
        let file = File::from(dir.create_no_follow(Path::new(name), libc::O_APPEND, 0o644)?);
        let size = file.metadata()?.len();
        Ok(Self {
            dir,
            name: name.to_owned(),
            rotation: Rotation {
                max_bytes: rotation.max_bytes.max(1),
                ..rotation
            },
            file,
            size,
        })
    }

    /// Appends `bytes`, rotating whenever the file reaches its bound.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            if self.size >= self.rotation.max_bytes {
                self.rotate()?;
            }
            let room = (self.rotation.max_bytes - self.size).min(bytes.len() as u64) as usize;
            self.file.write_all(&bytes[..room])?;
            self.size += room as u64;
            bytes = &bytes[room..];
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.rotation.keep;
        let absent = |result: std::io::Result<()>| match result {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        if keep == 0 {
            absent(self.dir.remove_file(&self.name))?;
        } else {
            absent(self.dir.remove_file(&numbered(&self.name, keep)))?;
            for n in (1..keep).rev() {
                absent(
                    self.dir
                        .rename(&numbered(&self.name, n), &numbered(&self.name, n + 1)),
                )?;
            }
            absent(self.dir.rename(&self.name, &numbered(&self.name, 1)))?;
        }
        self.file = self.create_fresh()?;
        self.size = 0;
        Ok(())
    }

    /// A new, empty file at the log's name, created exclusively: whatever
    /// took the name since the rename (a planted link) is removed first.
    fn create_fresh(&self) -> std::io::Result<File> {
        let name = Path::new(&self.name);
        let mut last = None;
        for _ in 0..CREATE_TRIES {
            match self.dir.create_no_follow(name, libc::O_EXCL, 0o644) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    tracing::warn!(name = %name.display(), "a log's name was taken during its rotation; removing what took it");
                    let _ = self.dir.remove_file(&self.name);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::ErrorKind::AlreadyExists.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    fn numbered(path: &Path, n: u32) -> std::path::PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        name.into()
    }

    #[test]
    fn a_link_planted_at_the_name_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let canary = dir.path().join("canary");
        std::fs::write(&canary, b"host file").unwrap();
        let sandbox = dir.path().join("sandbox");
        std::fs::create_dir(&sandbox).unwrap();
        let path = sandbox.join("stdout");
        std::os::unix::fs::symlink(&canary, &path).unwrap();
        assert!(
            RotatingFile::open(&path, Rotation::default()).is_err(),
            "opened through a link"
        );
        std::fs::remove_file(&path).unwrap();
        let mut log = RotatingFile::open(
            &path,
            Rotation {
                max_bytes: 4,
                keep: 2,
            },
        )
        .unwrap();
        log.write_all(b"aaaa").unwrap();
        // A link as the live file's name at rotation: it is moved away as
        // a name, and the new file is created, not opened through it.
        std::fs::rename(&path, sandbox.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(&canary, &path).unwrap();
        log.write_all(b"bbbbcc").unwrap();
        assert_eq!(std::fs::read(&canary).unwrap(), b"host file");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(read(&path), "cc");
    }

    #[test]
    fn rotates_at_the_bound_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout");
        let mut log = RotatingFile::open(
            &path,
            Rotation {
                max_bytes: 4,
                keep: 2,
            },
        )
        .unwrap();
        log.write_all(b"aaaabb").unwrap();
        log.write_all(b"bbccccdd").unwrap();
        assert_eq!(read(&path), "dd");
        assert_eq!(read(&numbered(&path, 1)), "cccc");
        assert_eq!(read(&numbered(&path, 2)), "bbbb");
        assert!(!numbered(&path, 3).exists(), "only two rotated files kept");
    }

    #[test]
    fn appends_to_an_existing_file_counting_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stderr");
        std::fs::write(&path, b"xyz").unwrap();
        let mut log = RotatingFile::open(
            &path,
            Rotation {
                max_bytes: 4,
                keep: 1,
            },
        )
        .unwrap();
        log.write_all(b"12").unwrap();
        assert_eq!(read(&numbered(&path, 1)), "xyz1");
        assert_eq!(read(&path), "2");
    }

    #[test]
    fn without_kept_files_old_data_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout");
        let mut log = RotatingFile::open(
            &path,
            Rotation {
                max_bytes: 3,
                keep: 0,
            },
        )
        .unwrap();
        log.write_all(b"abcdefg").unwrap();
        assert_eq!(read(&path), "g");
        assert!(!numbered(&path, 1).exists());
    }
}
