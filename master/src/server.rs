//! The master as a service: its state under one lock, the HTTP routes,
//! and the timers (allocation, pings, heartbeats, timeouts).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use tepui_proto::http::Body;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::master::{Config, Master};
use crate::registry::{Registry, RegistryError};

/// The master and what wakes its allocator.
pub struct Server {
    master: Mutex<Master>,
    wake: Notify,
}

impl Server {
    /// A master with `config`, its registry read from the work dir.
    pub fn new(config: Config) -> Result<Arc<Self>, RegistryError> {
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

    /// Serves one HTTP request.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        crate::endpoints::route(self, request).await
    }

    /// Runs the allocation, ping, heartbeat and timeout loops forever.
    pub async fn run_timers(self: Arc<Self>) {
        let (allocation, ping, heartbeat) = {
            let master = self.lock();
            (
                master.config.allocation_interval,
                master.config.agent_ping_timeout,
                master.config.heartbeat_interval,
            )
        };
        let allocator = {
            let server = self.clone();
            async move {
                let mut tick = tokio::time::interval(allocation.max(Duration::from_millis(1)));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = server.wake.notified() => {
                            // Let a burst of events land in one cycle.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                    let mut master = server.lock();
                    master.expire();
                    master.allocate();
                }
            }
        };
        let pinger = {
            let server = self.clone();
            async move {
                let mut tick = tokio::time::interval(ping.max(Duration::from_millis(10)));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    server.lock().ping_agents();
                }
            }
        };
        let heart = async move {
            let mut tick = tokio::time::interval(heartbeat.max(Duration::from_millis(10)));
            tick.tick().await;
            loop {
                tick.tick().await;
                self.lock().heartbeat();
            }
        };
        tokio::join!(allocator, pinger, heart);
    }

    /// Serves `listener` and runs the timers until dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let handler = {
            let server = self.clone();
            Arc::new(move |request| server.clone().handle(request))
        };
        tokio::join!(
            tepui_proto::http::serve(listener, handler),
            self.run_timers()
        );
    }
}
