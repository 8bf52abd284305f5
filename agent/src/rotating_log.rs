//! A task's stdout or stderr in its sandbox, kept to a size: when the file
//! reaches its bound it becomes `<name>.1` (older ones shift to `.2`, ...,
//! the oldest beyond the count is removed) and a new file is begun, so a
//! chatty task cannot fill the agent's disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The variables that give the built-in executor its rotation (set by the agent).
pub const MAX_SIZE_ENV: &str = "TEPUI_LOG_MAX_SIZE";
/// See [`MAX_SIZE_ENV`].
pub const MAX_FILES_ENV: &str = "TEPUI_LOG_MAX_FILES";

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
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    size: u64,
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl RotatingFile {
    /// Opens (appending to) the log at `path`.
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
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
        if keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            match std::fs::remove_file(numbered(&self.path, keep)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            for n in (1..keep).rev() {
                match std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
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
