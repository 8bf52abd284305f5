//! The master's timers, as loops on the runtime: allocation cycles (and
//! the sweeps of what timed out before each), agent pings, heartbeats,
//! and batched registry writes.

use std::sync::Arc;
use std::time::Duration;

use crate::server::Server;

/// How often a changed registry is written: admissions in one round are
/// written together. An agent admitted in the round before a crash is not
/// lost: it re-registers with the restarted master, which admits it.
pub const REGISTRY_WRITE_INTERVAL: Duration = Duration::from_millis(100);

impl Server {
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
                        () = server.woken() => {
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
        let recorder = {
            let server = self.clone();
            async move {
                let mut tick = tokio::time::interval(REGISTRY_WRITE_INTERVAL);
                loop {
                    tick.tick().await;
                    server.write_registry().await;
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
        tokio::join!(allocator, pinger, heart, recorder);
    }
}
