//! A container's stdout and stderr as ATTACH_CONTAINER_OUTPUT streams
//! them: the sandbox's `stdout` and `stderr` followed from their first
//! byte, across rotations, until the container's executor run ends, as
//! ProcessIO DATA records.
//!
//! The files are the task's own to replace, so each is opened from the
//! sandbox's directory fd without following a symlink and without blocking, and read only when it is a
//! regular file: a task cannot point the stream at another file or stall
//! it with a FIFO.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tepui_isolators::beneath::Beneath;
use tepui_proto::media::Encoding;
use tepui_proto::v1::agent::{ProcessIo, process_io};
use tokio::sync::mpsc;

/// How often a live container's files are looked at for new output.
pub const POLL: Duration = Duration::from_millis(100);

/// The most one record carries.
const CHUNK: usize = 64 << 10;

/// One sandbox file, read as it grows.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    /// The file being read and its inode; None until it exists.
    open: Option<(File, u64)>,
    /// Whether a read failed (the file is then no longer read).
    broken: bool,
}

impl Follower {
    /// Follows `path` (which need not exist yet).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            open: None,
            broken: false,
        }
    }

    fn open(path: &Path) -> std::io::Result<Option<(File, u64)>> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(None);
        };
        // Beneath the sandbox's fd, through no link, without blocking.
        let opened = Beneath::open(dir).and_then(|dir| dir.open_no_follow(Path::new(name)));
        let file = match opened {
            Ok(fd) => File::from(fd),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            // ELOOP: the name is a symlink, which is not followed.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        Ok(meta.is_file().then(|| (file, meta.ino())))
    }

    /// Bytes written since the last call (at most `buf.len()`; 0 when
    /// there are none now). When the log was rotated, the old file is
    /// read to its end before the new one is begun.
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some((file, ino)) = &mut self.open else {
                self.open = Self::open(&self.path)?;
                if self.open.is_none() {
                    return Ok(0);
                }
                continue;
            };
            let n = file.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            let rotated = match std::fs::symlink_metadata(&self.path) {
                Ok(meta) => meta.ino() != *ino,
                Err(e) if e.kind() == ErrorKind::NotFound => false,
                Err(e) => return Err(e),
            };
            if !rotated {
                return Ok(0);
            }
            // Whatever was written before the rename, then the new file.
            let n = file.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            self.open = None;
        }
    }
}

/// The ProcessIO record of `data` read from the stream `kind`.
pub fn record(kind: process_io::data::Type, data: &[u8]) -> ProcessIo {
    ProcessIo {
        r#type: Some(process_io::Type::Data as i32),
        data: Some(process_io::Data {
            r#type: Some(kind as i32),
            data: Some(data.to_vec()),
        }),
        control: None,
    }
}

/// The most chunks one look at the files reads; the rest waits for the
/// next look, which comes at once.
const PER_LOOK: usize = 16;

/// A sandbox's stdout and stderr, and the buffer they are read into.
struct Outputs {
    followers: [(process_io::data::Type, Follower); 2],
    buf: Vec<u8>,
}

impl Outputs {
    /// Up to [`PER_LOOK`] chunks of what the files gained, and whether
    /// that was all of it. A file that fails to read is given up (logged
    /// once), not retried on every look.
    fn look(&mut self) -> (Vec<(process_io::data::Type, Vec<u8>)>, bool) {
        let mut chunks = Vec::new();
        for (kind, follower) in &mut self.followers {
            while !follower.broken {
                if chunks.len() == PER_LOOK {
                    return (chunks, false);
                }
                match follower.read(&mut self.buf) {
                    Ok(0) => break,
                    Ok(n) => chunks.push((*kind, self.buf[..n].to_vec())),
                    Err(e) => {
                        tracing::warn!(path = %follower.path.display(), error = %e, "container output unreadable; no longer followed");
                        follower.broken = true;
                    }
                }
            }
        }
        (chunks, true)
    }
}

/// Sends what `sandbox`'s stdout and stderr hold and gain to `to` as
/// framed records until `live` says the run has ended (then what is left
/// is sent) or the client goes away. The files are read on the blocking
/// pool, not on the runtime's threads.
pub async fn stream(
    sandbox: PathBuf,
    live: impl Fn() -> bool + Send + 'static,
    encoding: Encoding,
    to: mpsc::Sender<Bytes>,
) {
    use process_io::data::Type;
    let mut outputs = Outputs {
        followers: [
            (Type::Stdout, Follower::new(sandbox.join("stdout"))),
            (Type::Stderr, Follower::new(sandbox.join("stderr"))),
        ],
        buf: vec![0; CHUNK],
    };
    loop {
        // Looked at before the files, so that the last look at them comes
        // after the run's end and misses nothing.
        let ended = !live();
        let looked = tokio::task::spawn_blocking(move || {
            let (chunks, drained) = outputs.look();
            (outputs, chunks, drained)
        })
        .await;
        let Ok((back, chunks, drained)) = looked else {
            return;
        };
        outputs = back;
        for (kind, data) in chunks {
            let Ok(frame) = encoding.frame(&record(kind, &data)) else {
                return;
            };
            if to.send(frame).await.is_err() {
                return;
            }
        }
        if !drained {
            continue;
        }
        if ended {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = to.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(follower: &mut Follower) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0; 4];
        loop {
            let n = follower.read(&mut buf).expect("read");
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn follows_a_file_as_it_grows_and_is_rotated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stdout");
        let mut follower = Follower::new(path.clone());
        assert_eq!(all(&mut follower), b"", "no file yet");
        std::fs::write(&path, b"first line\n").expect("write");
        assert_eq!(all(&mut follower), b"first line\n");
        let mut append = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        std::io::Write::write_all(&mut append, b"more\n").expect("append");
        assert_eq!(all(&mut follower), b"more\n");
        // The writer's last bytes to the old file, its rename, the new file.
        std::io::Write::write_all(&mut append, b"last of old\n").expect("append");
        std::fs::rename(&path, dir.path().join("stdout.1")).expect("rotate");
        std::fs::write(&path, b"new file\n").expect("write");
        assert_eq!(all(&mut follower), b"last of old\nnew file\n");
    }

    #[test]
    fn does_not_follow_a_symlink_or_read_a_fifo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"not yours").expect("write");
        let link = dir.path().join("stdout");
        std::os::unix::fs::symlink(&secret, &link).expect("symlink");
        assert_eq!(all(&mut Follower::new(link)), b"");
        let fifo = dir.path().join("stderr");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: `name` is a valid NUL-terminated path for the call's duration.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert_eq!(
            all(&mut Follower::new(fifo)),
            b"",
            "a FIFO is not read (nor waited on)"
        );
    }

    /// A RecordIO frame's ProcessIO: its stream and bytes.
    fn decode(frame: Bytes) -> (i32, Vec<u8>) {
        let newline = frame.iter().position(|b| *b == b'\n').expect("framed");
        let len: usize = std::str::from_utf8(&frame[..newline])
            .expect("length")
            .parse()
            .expect("length");
        assert_eq!(len, frame.len() - newline - 1);
        let io: ProcessIo = prost::Message::decode(&frame[newline + 1..]).expect("ProcessIO");
        let data = io.data.expect("data");
        (data.r#type.expect("type"), data.data.expect("bytes"))
    }

    #[tokio::test]
    async fn an_ended_run_with_more_output_than_one_look_is_sent_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big: Vec<u8> = (0..(PER_LOOK * CHUNK * 3 / 2))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(dir.path().join("stdout"), &big).expect("write");
        let (tx, mut rx) = mpsc::channel(4);
        let streaming = tokio::spawn(stream(
            dir.path().to_owned(),
            || false,
            Encoding::Protobuf,
            tx,
        ));
        let mut got = Vec::new();
        while let Some(frame) = rx.recv().await {
            got.extend(decode(frame).1);
        }
        streaming.await.expect("stream ends");
        assert_eq!(got.len(), big.len());
        assert!(got == big, "the bytes in order");
    }

    #[tokio::test]
    async fn streams_until_the_run_ends_then_sends_what_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("stdout"), b"out").expect("write");
        std::fs::write(dir.path().join("stderr"), b"err").expect("write");
        let live = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (tx, mut rx) = mpsc::channel(16);
        let flag = live.clone();
        let streaming = tokio::spawn(stream(
            dir.path().to_owned(),
            move || flag.load(std::sync::atomic::Ordering::SeqCst),
            Encoding::Protobuf,
            tx,
        ));
        let mut decoded = Vec::new();
        decoded.push(decode(rx.recv().await.expect("a record")));
        decoded.push(decode(rx.recv().await.expect("a record")));
        // Written after the stream began, then the run ends.
        let mut out = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("stdout"))
            .expect("open");
        std::io::Write::write_all(&mut out, b" and more").expect("append");
        live.store(false, std::sync::atomic::Ordering::SeqCst);
        decoded.push(decode(rx.recv().await.expect("a record")));
        streaming.await.expect("stream ends");
        assert!(rx.recv().await.is_none(), "the stream ends with the run");
        use process_io::data::Type;
        assert_eq!(
            decoded,
            vec![
                (Type::Stdout as i32, b"out".to_vec()),
                (Type::Stderr as i32, b"err".to_vec()),
                (Type::Stdout as i32, b" and more".to_vec()),
            ]
        );
    }
}
