//! Checkpoints: protobuf messages written so that a crash at any instant
//! leaves either the old or the new state. A single message (`*.info`) is
//! replaced atomically; a log (`task.updates`) is appended to, one
//! RecordIO record per message, and a record torn by a crash at its end is
//! cut off on reading, as Mesos does.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use tepui_proto::recordio;

/// The largest checkpointed record.
const MAX_RECORD: usize = 16 << 20;

/// A checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {path}: {why}")]
pub struct CheckpointError {
    /// The file.
    pub path: PathBuf,
    /// What was wrong.
    pub why: String,
}

fn fail(path: &Path) -> impl FnOnce(io::Error) -> CheckpointError + '_ {
    move |e| CheckpointError {
        path: path.to_owned(),
        why: e.to_string(),
    }
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail(dir))
}

/// Replaces `path` with `message`, atomically and durably.
pub fn write<M: Message>(path: &Path, message: &M) -> Result<(), CheckpointError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(fail(dir))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(fail(&tmp))?;
    file.write_all(&recordio::encode_to_vec(&message.encode_to_vec()))
        .map_err(fail(&tmp))?;
    file.sync_all().map_err(fail(&tmp))?;
    fs::rename(&tmp, path).map_err(fail(path))?;
    sync_dir(dir)
}

/// The message at `path`, None if there is none; a torn or undecodable
/// file is an error naming it.
pub fn read<M: Message + Default>(path: &Path) -> Result<Option<M>, CheckpointError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(path)(e)),
    };
    let bad = |why: String| CheckpointError {
        path: path.to_owned(),
        why,
    };
    let records = recordio::decode_all(&bytes, MAX_RECORD).map_err(|e| bad(e.to_string()))?;
    let [record] = records.as_slice() else {
        return Err(bad(format!(
            "{} records where one was written",
            records.len()
        )));
    };
    M::decode(record.as_ref())
        .map(Some)
        .map_err(|e| bad(format!("not a {}: {e}", std::any::type_name::<M>())))
}

/// An append-only log of messages.
pub struct Log {
    file: File,
    path: PathBuf,
    /// The length of its whole records: where a failed append is cut back to.
    len: u64,
}

impl Log {
    /// Opens (creating) the log at `path` for appending.
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(fail(dir))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(fail(path))?;
        let len = file.metadata().map_err(fail(path))?.len();
        Ok(Self {
            file,
            path: path.to_owned(),
            len,
        })
    }

    /// Appends `message` and waits until it is on disk. When the write or
    /// the sync fails (a full disk, an I/O error), what was written of the
    /// record is cut off again, so the log still ends on a whole record and
    /// the same message can be appended later.
    pub fn append<M: Message>(&mut self, message: &M) -> Result<(), CheckpointError> {
        let record = recordio::encode_to_vec(&message.encode_to_vec());
        let written = self
            .file
            .write_all(&record)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += record.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = self.file.set_len(self.len) {
                    tracing::error!(path = %self.path.display(), error = %cut, "cutting a failed append off a checkpoint log");
                }
                Err(fail(&self.path)(e))
            }
        }
    }
}

/// The messages of the log at `path` (none if it is absent). A record torn
/// at the end by a crash is cut off the file, with a warning; anything
/// else that does not decode is an error naming the file.
pub fn read_log<M: Message + Default>(path: &Path) -> Result<Vec<M>, CheckpointError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fail(path)(e)),
    };
    let bad = |why: String| CheckpointError {
        path: path.to_owned(),
        why,
    };
    let mut decoder = recordio::Decoder::new(MAX_RECORD);
    let mut buffer = bytes::BytesMut::from(&bytes[..]);
    let mut messages = Vec::new();
    let mut good = 0usize;
    loop {
        match decoder.decode(&mut buffer) {
            Ok(Some(record)) => {
                messages.push(M::decode(record.as_ref()).map_err(|e| {
                    bad(format!(
                        "record {} is not a {}: {e}",
                        messages.len(),
                        std::any::type_name::<M>()
                    ))
                })?);
                good = bytes.len() - buffer.len();
            }
            Ok(None) => break,
            Err(e) => return Err(bad(e.to_string())),
        }
    }
    if good < bytes.len() {
        tracing::warn!(path = %path.display(), kept = good, dropped = bytes.len() - good, "cutting a torn record off a checkpoint log");
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(fail(path))?;
        file.set_len(good as u64).map_err(fail(path))?;
        file.sync_all().map_err(fail(path))?;
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tepui_proto::v1::{TaskId, TaskStatus};

    fn status(id: &str) -> TaskStatus {
        TaskStatus {
            task_id: TaskId { value: id.into() },
            ..Default::default()
        }
    }

    #[test]
    fn a_message_round_trips_and_corruption_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta/task.info");
        assert!(read::<TaskStatus>(&path).unwrap().is_none());
        write(&path, &status("t1")).unwrap();
        assert_eq!(read::<TaskStatus>(&path).unwrap(), Some(status("t1")));
        fs::write(&path, b"7\nabc").unwrap();
        let e = read::<TaskStatus>(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("checkpoint {}", path.display())),
            "{e}"
        );
    }

    /// A tmpfs of `size` mounted on a new temporary dir, unmounted on drop.
    struct SmallFs(tempfile::TempDir);

    impl SmallFs {
        fn mount(size: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tepui-test"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "mounting a tmpfs (the tests run as root)");
            SmallFs(dir)
        }
    }

    impl Drop for SmallFs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(self.0.path())
                .status();
        }
    }

    /// Fills the filesystem of `dir` to ENOSPC; returns the filler.
    fn fill(dir: &Path) -> PathBuf {
        let filler = dir.join("filler");
        let mut file = File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.write_all(&[0]);
        filler
    }

    #[test]
    fn an_append_to_a_full_disk_fails_and_leaves_only_whole_records() {
        let fs = SmallFs::mount("256k");
        let path = fs.0.path().join("task.updates");
        let mut log = Log::open(&path).unwrap();
        log.append(&status("a")).unwrap();
        let filler = fill(fs.0.path());
        // Appends fail once the page the log ends in is full too.
        let big = TaskStatus {
            message: Some("x".repeat(10_000)),
            ..status("big")
        };
        let e = log.append(&big).unwrap_err().to_string();
        assert!(
            e.contains("task.updates") && e.contains("No space left"),
            "{e}"
        );
        let whole = recordio::encode_to_vec(&status("a").encode_to_vec()).len() as u64;
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            whole,
            "only whole records"
        );
        // Room again: the same message goes in right after the first.
        fs::remove_file(filler).unwrap();
        log.append(&big).unwrap();
        let read: Vec<TaskStatus> = read_log(&path).unwrap();
        assert_eq!(read, vec![status("a"), big]);
    }

    #[test]
    fn a_log_keeps_its_records_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task.updates");
        let mut log = Log::open(&path).unwrap();
        log.append(&status("a")).unwrap();
        log.append(&status("b")).unwrap();
        drop(log);
        let whole = fs::metadata(&path).unwrap().len();
        // A crash in the middle of a third append.
        let mut torn = OpenOptions::new().append(true).open(&path).unwrap();
        torn.write_all(b"40\n\x0a\x03").unwrap();
        let read: Vec<TaskStatus> = read_log(&path).unwrap();
        assert_eq!(read, vec![status("a"), status("b")]);
        assert_eq!(fs::metadata(&path).unwrap().len(), whole);
        // Garbage inside is not a torn tail: an error naming the file.
        fs::write(&path, b"x\n").unwrap();
        assert!(
            read_log::<TaskStatus>(&path)
                .unwrap_err()
                .to_string()
                .contains("task.updates")
        );
    }
}
