//! The master's state machine: frameworks subscribe and call, agents
//! register and report, the allocator's offers go out, tasks go to
//! agents and their status updates come back. Every method runs under
//! one lock and never waits: events and messages go onto unbounded
//! streams.
//!
//! This file holds the master's state, its settings and counters, its
//! ids, and the primitives every operation uses (rescinding offers,
//! messages to agents, the master's own status updates); the operations
//! are one file per job: `frameworks.rs`, `offers.rs`, `tasks.rs` (with
//! `validation.rs` of what an ACCEPT asks), `agents.rs`,
//! `status_updates.rs` and `timeouts.rs`.

mod agents;
mod frameworks;
mod offers;
mod refusal;
mod status_updates;
mod tasks;
mod timeouts;
mod validation;

pub use frameworks::authenticated_as;
pub use refusal::Refusal;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tepui_proto::acls::Acls;
use tepui_proto::internal::{MasterToAgent, master_to_agent};
use tepui_proto::v1::{AgentInfo, MasterInfo, TaskState, task_status};

use crate::MESOS_VERSION;
use crate::allocator::{Allocator, default_min_allocatable};
use crate::clock;
use crate::events;
use crate::registry::Registry;
use crate::resources::Bundle;
use crate::state::{Agent, AgentLink, Framework, OfferEntry};

/// The master's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the registry lives.
    pub work_dir: PathBuf,
    /// host:port the master serves, for MasterInfo.
    pub advertise: String,
    /// How often agents are pinged.
    pub agent_ping_timeout: Duration,
    /// Pings missed in a row before an agent is removed.
    pub max_agent_ping_timeouts: u32,
    /// How long a restarted master waits for known agents.
    pub agent_reregister_timeout: Duration,
    /// How often a batch allocation runs.
    pub allocation_interval: Duration,
    /// How long an offer stands before it is rescinded (None: forever).
    pub offer_timeout: Option<Duration>,
    /// HEARTBEAT interval of scheduler streams.
    pub heartbeat_interval: Duration,
    /// Role weights.
    pub weights: HashMap<String, f64>,
    /// The least an offer may hold (any one of these).
    pub min_allocatable: Vec<Bundle>,
    /// The local authorizer's ACLs (`--acls`; none: everything allowed).
    pub acls: Arc<Acls>,
}

impl Config {
    /// Mesos's defaults for every setting, with the work dir and address
    /// given: what an embedded master (tests, benchmarks) starts from.
    pub fn defaults(work_dir: PathBuf, advertise: impl Into<String>) -> Self {
        Self {
            work_dir,
            advertise: advertise.into(),
            agent_ping_timeout: Duration::from_secs(15),
            max_agent_ping_timeouts: 5,
            agent_reregister_timeout: Duration::from_secs(600),
            allocation_interval: Duration::from_secs(1),
            offer_timeout: None,
            heartbeat_interval: Duration::from_secs(15),
            weights: HashMap::new(),
            min_allocatable: default_min_allocatable(),
            acls: Arc::default(),
        }
    }
}

/// A refusal of a malformed call: `message` says what is wrong.
fn bad(message: impl Into<String>) -> Refusal {
    Refusal::Invalid(message.into())
}

/// Counters for `/metrics/snapshot`.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Offers sent.
    pub offers_sent: u64,
    /// Offers declined.
    pub offers_declined: u64,
    /// Offers rescinded.
    pub offers_rescinded: u64,
    /// Tasks launched.
    pub tasks_launched: u64,
    /// Status updates from agents.
    pub status_updates: u64,
    /// Agents removed (unreachable).
    pub agents_removed: u64,
    /// Frameworks torn down.
    pub frameworks_removed: u64,
    /// Allocation cycles run.
    pub allocation_runs: u64,
    /// Scheduler calls served, by type name.
    pub calls: BTreeMap<String, u64>,
    /// Calls refused.
    pub invalid_calls: u64,
}

/// The master.
pub struct Master {
    /// Settings.
    pub config: Config,
    /// What frameworks are told of this master.
    pub info: MasterInfo,
    /// When it started (seconds since the epoch).
    pub start_time: f64,
    /// Frameworks, by id.
    pub frameworks: HashMap<String, Framework>,
    /// Torn-down frameworks, oldest first.
    pub completed_frameworks: VecDeque<Framework>,
    /// Registered agents, by id.
    pub agents: HashMap<String, Agent>,
    /// Agents removed as unreachable, by id, with when.
    pub unreachable: BTreeMap<String, (AgentInfo, f64)>,
    /// Agents the operator marked gone, by id, with when: never admitted
    /// again under that id.
    pub gone: BTreeMap<String, (AgentInfo, f64)>,
    /// Agents a restarted master expects back, until this deadline.
    pub expected: HashMap<String, AgentInfo>,
    expected_until: Instant,
    /// The principal each agent authenticated as, by id (kept in the
    /// registry): its id is never admitted under another principal.
    pub agent_principals: BTreeMap<String, String>,
    /// Outstanding offers, by id.
    pub offers: HashMap<String, OfferEntry>,
    /// The allocator.
    pub allocator: Allocator,
    /// Counters.
    pub counters: Counters,
    next_id: u64,
    registry_dirty: bool,
}

impl Master {
    /// A master with `config` and the registry found in its work dir.
    pub fn new(config: Config, registry: Registry) -> Self {
        let id = clock::random_hex(8);
        let (host, port) = config
            .advertise
            .rsplit_once(':')
            .map_or((config.advertise.as_str(), 5050_u16), |(h, p)| {
                (h, p.parse().unwrap_or(5050))
            });
        let ip = host
            .parse::<std::net::Ipv4Addr>()
            .map_or(0, |ip| u32::from_le_bytes(ip.octets()));
        let info = MasterInfo {
            id: id.clone(),
            ip,
            port: u32::from(port),
            pid: Some(format!("master@{}", config.advertise)),
            hostname: Some(host.to_owned()),
            version: Some(MESOS_VERSION.to_owned()),
            address: Some(tepui_proto::v1::Address {
                hostname: Some(host.to_owned()),
                ip: Some(host.to_owned()),
                port: i32::from(port),
            }),
            ..MasterInfo::default()
        };
        let allocator = Allocator::new(config.weights.clone(), config.min_allocatable.clone());
        let expected_until = Instant::now() + config.agent_reregister_timeout;
        Self {
            info,
            start_time: clock::now(),
            frameworks: HashMap::new(),
            completed_frameworks: VecDeque::new(),
            agents: HashMap::new(),
            unreachable: registry.unreachable,
            gone: registry.gone,
            expected: registry.agents.into_iter().collect(),
            expected_until,
            agent_principals: registry.principals,
            offers: HashMap::new(),
            allocator,
            counters: Counters::default(),
            next_id: 0,
            registry_dirty: false,
            config,
        }
    }

    fn fresh(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("{}-{kind}{}", self.info.id, self.next_id)
    }

    /// The registry as it stands: admitted and unreachable agents.
    pub fn registry(&self) -> Registry {
        let mut agents: BTreeMap<String, AgentInfo> = self
            .agents
            .values()
            .map(|a| (a.id().to_owned(), a.info.clone()))
            .collect();
        for (id, info) in &self.expected {
            agents.entry(id.clone()).or_insert_with(|| info.clone());
        }
        Registry {
            agents,
            unreachable: self.unreachable.clone(),
            gone: self.gone.clone(),
            principals: self.agent_principals.clone(),
        }
    }

    /// Marks the registry for the next write: writes are batched (see
    /// [`Master::take_registry`]) so that admitting thousands of agents
    /// does not rewrite the whole registry once per agent.
    fn save_registry(&mut self) {
        self.registry_dirty = true;
    }

    /// The registry to write, when it changed since the last call.
    pub fn take_registry(&mut self) -> Option<Registry> {
        std::mem::take(&mut self.registry_dirty).then(|| self.registry())
    }

    /// Asks for the registry to be written again (the last write failed).
    pub fn registry_unsaved(&mut self) {
        self.registry_dirty = true;
    }

    /// Removes an offer; its resources go back, filtered for `refuse`.
    fn remove_offer(&mut self, id: &str, refuse: Duration) -> Option<OfferEntry> {
        let entry = self.offers.remove(id)?;
        if let Some(f) = self.frameworks.get_mut(entry.framework.as_ref()) {
            f.offers.remove(id);
        }
        self.allocator.recover(
            &entry.framework,
            &entry.role,
            &entry.agent,
            &entry.resources,
            refuse,
            Instant::now(),
        );
        Some(entry)
    }

    /// Rescinds one offer (RESCIND is sent).
    fn rescind(&mut self, id: &str) {
        if let Some(entry) = self.remove_offer(id, Duration::ZERO) {
            self.counters.offers_rescinded += 1;
            if let Some(f) = self.frameworks.get(entry.framework.as_ref()) {
                f.send(&events::rescind(id));
            }
        }
    }

    fn rescind_offers_of(&mut self, framework: &str) {
        let ids: Vec<String> = self
            .frameworks
            .get(framework)
            .map(|f| f.offers.iter().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            self.rescind(&id);
        }
    }

    fn rescind_offers_on(&mut self, agent: &str) {
        let ids: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| *o.agent == *agent)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.rescind(&id);
        }
    }

    fn send_agent(&self, agent: &str, message: master_to_agent::Message) {
        send_link(self.agents.get(agent), message);
    }

    fn ping_interval(&self) -> f64 {
        self.config.agent_ping_timeout.as_secs_f64()
    }

    /// A status update of the master's own (the agent is gone, the task
    /// is unknown): recorded and sent, not acknowledged.
    fn master_update(
        &mut self,
        framework: &str,
        task: &str,
        state: TaskState,
        reason: task_status::Reason,
        message: &str,
    ) {
        let Some(f) = self.frameworks.get_mut(framework) else {
            return;
        };
        let Some(entry) = f.tasks.get_mut(task) else {
            return;
        };
        let agent = entry.task.agent_id.value.clone();
        let status = events::master_status(task, Some(&agent), state, reason, message);
        entry.task.state = state as i32;
        entry.task.statuses.push(status.clone());
        let release = (!entry.released).then(|| {
            entry.released = true;
            (entry.role.clone(), entry.resources.clone())
        });
        f.send(&events::update(status));
        if tepui_proto::model::is_terminal(state as i32) {
            f.complete(task);
        }
        if let Some((role, resources)) = release {
            self.allocator.recover(
                framework,
                &role,
                &agent,
                &resources,
                Duration::ZERO,
                Instant::now(),
            );
        }
    }
}

/// `cpus:1; mem:32`-style text for messages.
pub fn describe(bundle: &Bundle) -> String {
    let parts: Vec<String> = bundle
        .scalars()
        .map(|(name, amount)| format!("{name}:{amount}"))
        .collect();
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join("; ")
    }
}

fn send_link_to(link: &AgentLink, message: master_to_agent::Message) {
    let message = MasterToAgent {
        message: Some(message),
    };
    let _ = link
        .tx
        .send(tepui_proto::recordio::encode_message(&message));
}

fn send_link(agent: Option<&Agent>, message: master_to_agent::Message) {
    match agent.and_then(|a| a.link.as_ref()) {
        Some(link) => send_link_to(link, message),
        None => tracing::debug!("a message for a disconnected agent is dropped"),
    }
}
