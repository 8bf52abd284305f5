//! The timer sweeps: agent pings (and removal of agents that stopped
//! answering), heartbeats, offer timeouts, failover timeouts and the
//! agents a restarted master waited for in vain.

use std::time::Instant;

use tepui_proto::internal::{self, master_to_agent};
use tepui_proto::v1::AgentInfo;

use super::{Master, send_link_to};
use crate::clock;
use crate::events;

impl Master {
    /// Pings every agent; removes those that missed too many.
    pub fn ping_agents(&mut self) {
        let mut dead = Vec::new();
        let ping = master_to_agent::Message::Ping(internal::Ping {
            connected: Some(true),
        });
        for (id, agent) in &mut self.agents {
            if !agent.ponged {
                agent.missed_pings += 1;
            }
            agent.ponged = false;
            if agent.missed_pings >= self.config.max_agent_ping_timeouts {
                dead.push(id.clone());
                continue;
            }
            if let Some(link) = &agent.link {
                send_link_to(link, ping.clone());
            }
        }
        for id in dead {
            let why = format!("no pong to {} pings", self.config.max_agent_ping_timeouts);
            self.remove_agent(&id, &why);
        }
    }

    /// HEARTBEAT to every connected framework.
    pub fn heartbeat(&self) {
        let event = events::heartbeat();
        for f in self.frameworks.values() {
            f.send(&event);
        }
    }

    /// Offer timeouts, failover timeouts, agents that never came back.
    pub fn expire(&mut self) {
        let now = Instant::now();
        if let Some(timeout) = self.config.offer_timeout {
            let old: Vec<String> = self
                .offers
                .iter()
                .filter(|(_, o)| now.duration_since(o.made) >= timeout)
                .map(|(id, _)| id.clone())
                .collect();
            for id in old {
                self.rescind(&id);
            }
        }
        let gone: Vec<String> = self
            .frameworks
            .iter()
            .filter(|(_, f)| {
                f.disconnected_at.is_some_and(|(at, _)| {
                    let timeout = f.info.failover_timeout.unwrap_or(0.0).max(0.0);
                    now.duration_since(at).as_secs_f64() >= timeout
                })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            tracing::warn!(framework = %id, "framework did not fail over in time");
            self.teardown(&id);
        }
        if !self.expected.is_empty() && now >= self.expected_until {
            let missing: Vec<(String, AgentInfo)> = self.expected.drain().collect();
            let time = clock::now();
            for (id, info) in missing {
                tracing::warn!(agent = %id, "agent did not re-register after the master restarted");
                self.unreachable.insert(id, (info, time));
            }
            self.save_registry();
        }
        self.allocator.expire_filters(now);
    }
}
