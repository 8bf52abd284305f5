//! The state the master's HTTP handlers share: the master under one
//! lock, what wakes its allocator, and the event streams they open.
//! Serving a listener is `listener.rs`'s job, the timers are
//! `timers.rs`'s.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use tepui_proto::http::{self, Body};
use tokio::sync::{Notify, mpsc};

use crate::authentication::Authentication;
use crate::clock;
use crate::master::{Config, Master};
use crate::registry::{Registry, RegistryError};

/// What the master calls when a stream's body is dropped: with the
/// owner (framework or agent id) and the stream's id.
pub type StreamGone = fn(&mut Master, &str, &str);

/// An event stream opened but not yet answered with: its owner is named
/// once the master has admitted the framework or agent.
pub struct PendingStream {
    /// The stream's id (`Mesos-Stream-Id`, `Tepui-Agent-Stream-Id`).
    pub id: String,
    body: Body,
    owner: Arc<OnceLock<String>>,
}

impl PendingStream {
    /// The 200 answer carrying the stream, now owned by `owner`; its id
    /// goes in `id_header`.
    pub fn answer(
        self,
        owner: String,
        content_type: &'static str,
        id_header: &'static str,
    ) -> Response<Body> {
        let _ = self.owner.set(owner);
        let mut response = Response::new(self.body);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(value) = HeaderValue::from_str(&self.id) {
            headers.insert(id_header, value);
        }
        response
    }
}

/// The master and what wakes its allocator.
pub struct Server {
    master: Mutex<Master>,
    wake: Notify,
    /// Held while the registry is written, so writes never overlap.
    writing: tokio::sync::Mutex<()>,
    /// Which realms require a credential, and the credentials.
    pub authentication: Authentication,
}

impl Server {
    /// A master with `config`, its registry read from the work dir, and
    /// no authentication (Mesos's default).
    pub fn new(config: Config) -> Result<Arc<Self>, RegistryError> {
        Self::with_authentication(config, Authentication::off())
    }

    /// A master with `config` whose realms require what `authentication`
    /// says.
    pub fn with_authentication(
        config: Config,
        authentication: Authentication,
    ) -> Result<Arc<Self>, RegistryError> {
        let registry = Registry::load(&config.work_dir)?;
        if !registry.agents.is_empty() {
            tracing::info!(
                agents = registry.agents.len(),
                timeout_secs = config.agent_reregister_timeout.as_secs(),
                "waiting for the registry's agents to re-register"
            );
        }
        Ok(Arc::new(Self {
            master: Mutex::new(Master::new(config, registry)),
            wake: Notify::new(),
            writing: tokio::sync::Mutex::new(()),
            authentication,
        }))
    }

    /// The master's state; a panic elsewhere does not lock it forever.
    pub fn lock(&self) -> MutexGuard<'_, Master> {
        self.master.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for an allocation cycle soon (events batch into one).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until an allocation cycle is asked for: what the allocation
    /// loop waits on between its ticks.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// A new event stream: the sender the master keeps, and the stream to
    /// answer with. When its body is dropped (the peer went away, or the
    /// master dropped the sender), `gone` runs for its owner, if it has
    /// one by then.
    pub fn open_stream(
        self: &Arc<Self>,
        gone: StreamGone,
    ) -> (mpsc::UnboundedSender<Bytes>, PendingStream) {
        let id = clock::random_hex(16);
        let owner: Arc<OnceLock<String>> = Arc::default();
        let on_close = {
            let server = self.clone();
            let owner = owner.clone();
            let id = id.clone();
            Box::new(move || {
                if let Some(owner) = owner.get() {
                    gone(&mut server.lock(), owner, &id);
                }
            })
        };
        let (tx, body) = http::unbounded_channel(on_close);
        (tx, PendingStream { id, body, owner })
    }

    /// Writes the registry if it changed since the last write; a failed
    /// write is logged and tried again on the next round.
    pub async fn write_registry(&self) {
        let _writing = self.writing.lock().await;
        let (snapshot, dir) = {
            let mut master = self.lock();
            (master.take_registry(), master.config.work_dir.clone())
        };
        let Some(registry) = snapshot else {
            return;
        };
        let written = tokio::task::spawn_blocking(move || registry.save(&dir)).await;
        let failure = match written {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(error = %failure, "writing the registry");
        self.lock().registry_unsaved();
    }
}
