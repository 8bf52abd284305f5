//! A one-line progress bar on stderr for image pulls.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tepui_containerizer::provisioner::{Digest, Progress};

/// Redraws at most this often.
const FRAME: Duration = Duration::from_millis(100);

/// Bytes done and total, over all blobs, drawn as a bar.
pub struct Bar {
    state: Mutex<State>,
}

struct State {
    blobs: HashMap<Digest, (u64, u64)>,
    finished: usize,
    last: Option<Instant>,
}

impl Bar {
    /// An empty bar; nothing is drawn until a blob starts.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                blobs: HashMap::new(),
                finished: 0,
                last: None,
            }),
        }
    }
}

impl State {
    fn draw(&mut self, force: bool) {
        if !force && self.last.is_some_and(|t| t.elapsed() < FRAME) {
            return;
        }
        self.last = Some(Instant::now());
        let (done, total) = self
            .blobs
            .values()
            .fold((0, 0), |(d, t), (bd, bt)| (d + bd, t + bt));
        let width = 30;
        let filled = if total == 0 {
            0
        } else {
            (done * width / total.max(1)) as usize
        };
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2Kpulling: [{}{}] {:.1}/{:.1} MiB, {}/{} layers",
            "=".repeat(filled),
            " ".repeat(width as usize - filled),
            mib(done),
            mib(total),
            self.finished,
            self.blobs.len()
        );
        if force && self.finished == self.blobs.len() {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

impl Progress for Bar {
    fn started(&self, digest: &Digest, size: u64, resumed_at: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.blobs.insert(digest.clone(), (resumed_at, size));
            s.draw(false);
        }
    }

    fn advanced(&self, digest: &Digest, bytes: u64) {
        if let Ok(mut s) = self.state.lock() {
            if let Some((done, _)) = s.blobs.get_mut(digest) {
                *done += bytes;
            }
            s.draw(false);
        }
    }

    fn finished(&self, digest: &Digest) {
        if let Ok(mut s) = self.state.lock()
            && let Some((done, total)) = s.blobs.get_mut(digest)
        {
            *done = *total;
            s.finished += 1;
            s.draw(true);
        }
    }
}
