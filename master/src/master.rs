//! The master's state machine: frameworks subscribe and call, agents
//! register and report, the allocator's offers go out, tasks go to
//! agents and their status updates come back. Every method runs under
//! one lock and never waits: events and messages go onto unbounded
//! streams.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tepui_proto::internal::{self, MasterToAgent, master_to_agent};
use tepui_proto::v1::scheduler::call;
use tepui_proto::v1::{
    AgentId, AgentInfo, ExecutorId, ExecutorInfo, FrameworkId, MasterInfo, Offer, OfferId, Task,
    TaskInfo, TaskState, TaskStatus, offer, task_status,
};

use crate::allocator::{Allocator, filters::DEFAULT_REFUSE};
use crate::clock;
use crate::events::{self, EventSink};
use crate::registry::Registry;
use crate::resources::Bundle;
use crate::state::{
    Agent, AgentLink, COMPLETED_FRAMEWORKS, ExecutorEntry, Framework, OfferEntry, TaskEntry,
    roles_of, valid_role,
};

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
            min_allocatable: crate::allocator::default_min_allocatable(),
        }
    }
}

/// A call the master refuses, with the HTTP status Mesos uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// 400, 403 or 404.
    pub status: u16,
    /// What is wrong.
    pub message: String,
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal {
        status: 400,
        message: message.into(),
    }
}

fn forbidden(message: impl Into<String>) -> Refusal {
    Refusal {
        status: 403,
        message: message.into(),
    }
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
            version: Some(crate::MESOS_VERSION.to_owned()),
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

    // ----- frameworks -------------------------------------------------

    /// SUBSCRIBE: a new framework, or a known one failing over. Returns
    /// the framework id.
    pub fn subscribe(
        &mut self,
        call_framework_id: Option<&str>,
        subscribe: call::Subscribe,
        sink: EventSink,
        stream_id: &str,
    ) -> Result<String, Refusal> {
        let mut info = subscribe.framework_info;
        let claimed = info.id.as_ref().map(|i| i.value.clone());
        if call_framework_id.is_some() && call_framework_id != claimed.as_deref() {
            return Err(bad(
                "'framework_id' differs from 'subscribe.framework_info.id'",
            ));
        }
        let roles = checked_roles(&info)?;
        if info.user.is_empty() {
            return Err(bad("'framework_info.user' must not be empty"));
        }
        if let Some(timeout) = info.failover_timeout
            && (!timeout.is_finite() || timeout < 0.0)
        {
            return Err(bad("'failover_timeout' must be a non-negative number"));
        }
        if let Some(id) = &claimed
            && self.completed_frameworks.iter().any(|f| f.id() == id)
        {
            return Err(forbidden(format!("framework {id} has been torn down")));
        }
        let now = clock::now();
        let id = match claimed {
            Some(id) if !id.is_empty() => id,
            _ => self.fresh("F"),
        };
        info.id = Some(FrameworkId { value: id.clone() });
        let heartbeat = self.config.heartbeat_interval.as_secs_f64();
        let subscribed = events::subscribed(&id, heartbeat, &self.info);
        match self.frameworks.get_mut(&id) {
            Some(framework) => {
                // Failover: the old stream is told and closed; its offers
                // are rescinded so that the new scheduler starts clean.
                if let Some(old) = framework.sink.take() {
                    old.send(&events::error("framework failed over"));
                }
                framework.info = info;
                framework.roles = roles.clone();
                framework.recovered = false;
                framework.reregistered_time = Some(now);
                framework.disconnected_at = None;
                framework.sink = Some(sink);
                framework.stream_id = Some(stream_id.to_owned());
                self.rescind_offers_of(&id);
                self.allocator.add_framework(&id, &roles);
                tracing::info!(framework = %id, "framework re-subscribed");
            }
            None => {
                let mut framework = Framework::new(info, now);
                framework.sink = Some(sink);
                framework.stream_id = Some(stream_id.to_owned());
                tracing::info!(framework = %id, name = %framework.info.name, roles = ?roles, "framework subscribed");
                self.frameworks.insert(id.clone(), framework);
                self.allocator.add_framework(&id, &roles);
            }
        }
        if !subscribe.suppressed_roles.is_empty() {
            self.allocator.suppress(&id, &subscribe.suppressed_roles);
        }
        if let Some(framework) = self.frameworks.get(&id) {
            framework.send(&subscribed);
        }
        Ok(id)
    }

    /// Checks that a non-subscribe call comes from the framework's current
    /// stream.
    pub fn check_stream(&self, framework: &str, stream_id: Option<&str>) -> Result<(), Refusal> {
        // The statuses and their order are Mesos's (master/http.cpp).
        let Some(f) = self.frameworks.get(framework) else {
            return Err(bad(format!("framework {framework} cannot be found")));
        };
        let (Some(current), Some(_)) = (&f.stream_id, &f.sink) else {
            return Err(forbidden(format!(
                "framework {framework} is not subscribed"
            )));
        };
        let Some(given) = stream_id else {
            return Err(bad(
                "all non-subscribe calls should include the 'Mesos-Stream-Id' header",
            ));
        };
        if given != current {
            return Err(bad(format!(
                "the stream id '{given}' included in this request didn't match the stream id currently associated with framework id {framework}"
            )));
        }
        Ok(())
    }

    /// A framework's stream ended.
    pub fn disconnected(&mut self, framework: &str, stream_id: &str) {
        let Some(f) = self.frameworks.get_mut(framework) else {
            return;
        };
        if f.stream_id.as_deref() != Some(stream_id) {
            return;
        }
        f.sink = None;
        f.disconnected_at = Some((Instant::now(), clock::now()));
        tracing::info!(framework = %framework, failover_timeout = f.info.failover_timeout.unwrap_or(0.0), "framework disconnected");
        self.allocator.set_framework_active(framework, false);
        self.rescind_offers_of(framework);
    }

    /// TEARDOWN, or a failover timeout: every task and executor of the
    /// framework is shut down and it is forgotten.
    pub fn teardown(&mut self, framework: &str) {
        self.rescind_offers_of(framework);
        let Some(mut f) = self.frameworks.remove(framework) else {
            return;
        };
        let shutdown = master_to_agent::Message::ShutdownFramework(internal::ShutdownFramework {
            framework_id: FrameworkId {
                value: framework.to_owned(),
            },
        });
        let agents: std::collections::BTreeSet<String> = f
            .tasks
            .values()
            .map(|t| t.task.agent_id.value.clone())
            .chain(f.executors.keys().map(|(a, _)| a.clone()))
            .collect();
        for agent in &agents {
            self.send_agent(agent, shutdown.clone());
        }
        let now = Instant::now();
        let tasks: Vec<String> = f.tasks.keys().cloned().collect();
        for task in tasks {
            if let Some(entry) = f.tasks.get_mut(&task) {
                if !entry.released {
                    entry.released = true;
                    self.allocator.recover(
                        framework,
                        &entry.role,
                        &entry.task.agent_id.value,
                        &entry.resources,
                        Duration::ZERO,
                        now,
                    );
                }
                if !tepui_proto::model::is_terminal(entry.task.state) {
                    entry.task.state = TaskState::TaskKilled as i32;
                }
            }
            f.complete(&task);
        }
        for ((agent, _), executor) in std::mem::take(&mut f.executors) {
            self.allocator.recover(
                framework,
                &executor.role,
                &agent,
                &executor.resources,
                Duration::ZERO,
                now,
            );
        }
        if let Some(sink) = f.sink.take() {
            sink.send(&events::error("framework has been torn down"));
        }
        self.allocator.remove_framework(framework);
        self.counters.frameworks_removed += 1;
        tracing::info!(framework = %framework, "framework torn down");
        if self.completed_frameworks.len() == COMPLETED_FRAMEWORKS {
            self.completed_frameworks.pop_front();
        }
        self.completed_frameworks.push_back(f);
    }

    /// UPDATE_FRAMEWORK.
    pub fn update_framework(
        &mut self,
        framework: &str,
        update: call::UpdateFramework,
    ) -> Result<(), Refusal> {
        let info = update.framework_info;
        if info.id.as_ref().map(|i| i.value.as_str()) != Some(framework) {
            return Err(bad(
                "'update_framework.framework_info.id' must be the caller's framework id",
            ));
        }
        let roles = checked_roles(&info)?;
        let Some(f) = self.frameworks.get_mut(framework) else {
            return Err(forbidden(format!(
                "framework {framework} is not subscribed"
            )));
        };
        if f.info.user != info.user || f.info.principal != info.principal {
            return Err(bad("'user' and 'principal' cannot be changed"));
        }
        f.info = info;
        f.roles = roles.clone();
        self.allocator.update_roles(framework, &roles);
        self.allocator.revive(framework, &[]);
        if !update.suppressed_roles.is_empty() {
            self.allocator.suppress(framework, &update.suppressed_roles);
        }
        Ok(())
    }

    // ----- offers -----------------------------------------------------

    /// One allocation cycle; offers go out, one OFFERS event per framework.
    pub fn allocate(&mut self) -> usize {
        let now = Instant::now();
        let allocations = self.allocator.allocate(now);
        self.counters.allocation_runs += 1;
        let count = allocations.len();
        let mut by_framework: HashMap<crate::allocator::Id, Vec<Offer>> = HashMap::new();
        for allocation in allocations {
            if !self.agents.contains_key(allocation.agent.as_ref()) {
                continue;
            }
            let id = self.fresh("O");
            let entry = OfferEntry {
                framework: allocation.framework,
                role: allocation.role,
                agent: allocation.agent,
                resources: allocation.resources,
                made: now,
            };
            let offer = self.offer_message(&id, &entry);
            if let Some(f) = self.frameworks.get_mut(entry.framework.as_ref()) {
                f.offers.insert(id.clone());
            }
            match by_framework.get_mut(&entry.framework) {
                Some(offers) => offers.push(offer),
                None => {
                    by_framework.insert(entry.framework.clone(), vec![offer]);
                }
            }
            self.offers.insert(id, entry);
        }
        for (framework, offers) in by_framework {
            self.counters.offers_sent += offers.len() as u64;
            if let Some(f) = self.frameworks.get(framework.as_ref()) {
                f.send(&events::offers(offers));
            }
        }
        count
    }

    /// The OFFERS message for an outstanding offer.
    pub fn offer_message(&self, id: &str, entry: &OfferEntry) -> Offer {
        let agent = self.agents.get(entry.agent.as_ref());
        let executor_ids = self
            .frameworks
            .get(entry.framework.as_ref())
            .map(|f| {
                f.executors_on(&entry.agent)
                    .map(|e| ExecutorId {
                        value: e.to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Offer {
            id: OfferId {
                value: id.to_owned(),
            },
            framework_id: FrameworkId {
                value: entry.framework.to_string(),
            },
            agent_id: AgentId {
                value: entry.agent.to_string(),
            },
            hostname: agent.map(|a| a.info.hostname.clone()).unwrap_or_default(),
            url: agent.map(|a| agent_url(&a.info)),
            resources: entry.resources.to_proto(Some(&entry.role)),
            attributes: agent.map(|a| a.info.attributes.clone()).unwrap_or_default(),
            executor_ids,
            allocation_info: Some(tepui_proto::v1::resource::AllocationInfo {
                role: Some(entry.role.to_string()),
            }),
            ..Offer::default()
        }
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

    /// DECLINE.
    pub fn decline(&mut self, framework: &str, decline: call::Decline) -> Result<(), Refusal> {
        let refuse = refuse_of(decline.filters.as_ref())?;
        for id in &decline.offer_ids {
            // Mesos ignores offers that are no longer valid.
            if self
                .offers
                .get(&id.value)
                .is_some_and(|o| *o.framework == *framework)
            {
                self.remove_offer(&id.value, refuse);
                self.counters.offers_declined += 1;
            }
        }
        Ok(())
    }

    /// ACCEPT: every operation is validated against the offers before any
    /// is carried out; what the operations leave is given back, filtered.
    pub fn accept(&mut self, framework: &str, accept: call::Accept) -> Result<(), Refusal> {
        let refuse = refuse_of(accept.filters.as_ref())?;
        if accept.offer_ids.is_empty() {
            return Err(bad("'accept.offer_ids' must not be empty"));
        }
        let mut agent: Option<String> = None;
        let mut role: Option<String> = None;
        let mut offered = Bundle::default();
        for (i, id) in accept.offer_ids.iter().enumerate() {
            if accept.offer_ids[..i].contains(id) {
                return Err(bad(format!("offer {} is given twice", id.value)));
            }
            let Some(entry) = self.offers.get(&id.value) else {
                return Err(bad(format!(
                    "offer {} is unknown or no longer valid",
                    id.value
                )));
            };
            if *entry.framework != *framework {
                return Err(bad(format!(
                    "offer {} was not made to framework {framework}",
                    id.value
                )));
            }
            if agent.as_ref().is_some_and(|a| **a != *entry.agent) {
                return Err(bad("the offers accepted together must be of one agent"));
            }
            if role.as_ref().is_some_and(|r| **r != *entry.role) {
                return Err(bad("the offers accepted together must be of one role"));
            }
            agent = Some(entry.agent.to_string());
            role = Some(entry.role.to_string());
            offered.add(&entry.resources);
        }
        let (Some(agent), Some(role)) = (agent, role) else {
            return Err(bad("'accept.offer_ids' must not be empty"));
        };
        let plan = self.plan(framework, &agent, &accept.operations, &offered)?;
        for id in &accept.offer_ids {
            if let Some(entry) = self.offers.remove(&id.value)
                && let Some(f) = self.frameworks.get_mut(entry.framework.as_ref())
            {
                f.offers.remove(&id.value);
            }
        }
        let mut used = Bundle::default();
        for launch in plan {
            used.add(&launch.resources);
            self.launch(framework, &role, &agent, launch);
        }
        let mut unused = offered;
        unused.subtract(&used);
        self.allocator
            .recover(framework, &role, &agent, &unused, refuse, Instant::now());
        Ok(())
    }

    /// Validates the operations of an accept; nothing changes yet.
    fn plan(
        &self,
        framework: &str,
        agent: &str,
        operations: &[offer::Operation],
        offered: &Bundle,
    ) -> Result<Vec<Launch>, Refusal> {
        use offer::operation::Type as Op;
        let f = self
            .frameworks
            .get(framework)
            .ok_or_else(|| forbidden(format!("framework {framework} is not subscribed")))?;
        let mut remaining = offered.clone();
        let mut seen_tasks: Vec<String> = Vec::new();
        let mut new_executors: HashMap<String, ExecutorInfo> = HashMap::new();
        let mut plan = Vec::new();
        for operation in operations {
            let kind = operation.r#type.and_then(|t| Op::try_from(t).ok());
            let (tasks, executor) = match kind {
                Some(Op::Launch) => {
                    let launch = operation
                        .launch
                        .as_ref()
                        .ok_or_else(|| bad("a LAUNCH operation needs 'launch'"))?;
                    (launch.task_infos.clone(), None)
                }
                Some(Op::LaunchGroup) => {
                    let group = operation
                        .launch_group
                        .as_ref()
                        .ok_or_else(|| bad("a LAUNCH_GROUP operation needs 'launch_group'"))?;
                    if group.task_group.tasks.is_empty() {
                        return Err(bad("a task group must hold at least one task"));
                    }
                    (group.task_group.tasks.clone(), Some(group.executor.clone()))
                }
                Some(other) => {
                    return Err(bad(format!(
                        "operation {} is not supported by tepui",
                        other.as_str_name()
                    )));
                }
                None => return Err(bad("an operation without a known 'type'")),
            };
            let mut launch_tasks = Vec::new();
            let mut launch_resources = Bundle::default();
            let mut group_executor = None;
            if let Some(mut executor) = executor {
                let id = executor.executor_id.value.clone();
                if id.is_empty() {
                    return Err(bad("a task group's executor needs an 'executor_id'"));
                }
                executor.framework_id = Some(FrameworkId {
                    value: framework.to_owned(),
                });
                group_executor = Some(executor);
            }
            for mut task in tasks {
                let id = task.task_id.value.clone();
                if id.is_empty() {
                    return Err(bad("a task needs a non-empty 'task_id'"));
                }
                if f.tasks.contains_key(&id) || seen_tasks.contains(&id) {
                    return Err(bad(format!(
                        "task {id} is a duplicate of a task of this framework"
                    )));
                }
                seen_tasks.push(id.clone());
                if task.agent_id.value.is_empty() {
                    task.agent_id.value = agent.to_owned();
                }
                if task.agent_id.value != agent {
                    return Err(bad(format!(
                        "task {id} names agent {} but the offers are of agent {agent}",
                        task.agent_id.value
                    )));
                }
                let resources = Bundle::from_proto(&task.resources)
                    .map_err(|e| bad(format!("task {id}: {e}")))?;
                let mut needs = resources.clone();
                if group_executor.is_some() {
                    if task.executor.is_some() {
                        return Err(bad(format!(
                            "task {id} of a task group must not name an executor"
                        )));
                    }
                    if task.command.is_none() && task.container.is_none() {
                        return Err(bad(format!("task {id} needs a 'command'")));
                    }
                } else {
                    match (&task.command, &mut task.executor) {
                        (Some(_), Some(_)) => {
                            return Err(bad(format!(
                                "task {id} must have either an executor or a command, not both"
                            )));
                        }
                        (None, None) => {
                            return Err(bad(format!(
                                "task {id} must have either an executor or a command"
                            )));
                        }
                        (Some(command), None) => {
                            if command.shell != Some(false)
                                && command.value.as_deref().is_none_or(str::is_empty)
                                && task.container.is_none()
                            {
                                return Err(bad(format!(
                                    "task {id}: a shell command needs a 'value'"
                                )));
                            }
                        }
                        (None, Some(executor)) => {
                            let exec_id = executor.executor_id.value.clone();
                            if exec_id.is_empty() {
                                return Err(bad(format!(
                                    "task {id}: the executor needs an 'executor_id'"
                                )));
                            }
                            if executor.command.is_none() {
                                return Err(bad(format!(
                                    "task {id}: executor {exec_id} needs a 'command'"
                                )));
                            }
                            executor.framework_id = Some(FrameworkId {
                                value: framework.to_owned(),
                            });
                            let known = f
                                .executors
                                .contains_key(&(agent.to_owned(), exec_id.clone()))
                                || new_executors.contains_key(&exec_id);
                            if !known {
                                let er = Bundle::from_proto(&executor.resources)
                                    .map_err(|e| bad(format!("executor {exec_id}: {e}")))?;
                                needs.add(&er);
                                new_executors.insert(exec_id, executor.clone());
                            }
                        }
                    }
                }
                launch_tasks.push((task, resources));
                launch_resources.add(&needs);
            }
            if let Some(executor) = &group_executor {
                let exec_id = executor.executor_id.value.clone();
                let known = f
                    .executors
                    .contains_key(&(agent.to_owned(), exec_id.clone()))
                    || new_executors.contains_key(&exec_id);
                if !known {
                    let er = Bundle::from_proto(&executor.resources)
                        .map_err(|e| bad(format!("executor {exec_id}: {e}")))?;
                    launch_resources.add(&er);
                    new_executors.insert(exec_id, executor.clone());
                }
            }
            if !remaining.contains(&launch_resources) {
                return Err(bad(format!(
                    "the tasks' resources ({}) exceed what the offers leave ({})",
                    describe(&launch_resources),
                    describe(&remaining)
                )));
            }
            remaining.subtract(&launch_resources);
            plan.push(Launch {
                tasks: launch_tasks,
                group_executor,
                resources: launch_resources,
                new_executors: std::mem::take(&mut new_executors),
            });
        }
        Ok(plan)
    }

    /// Carries out one validated operation.
    fn launch(&mut self, framework: &str, role: &str, agent: &str, launch: Launch) {
        let Some(f) = self.frameworks.get_mut(framework) else {
            return;
        };
        for (id, info) in &launch.new_executors {
            let resources = Bundle::from_proto(&info.resources).unwrap_or_default();
            f.executors.insert(
                (agent.to_owned(), id.clone()),
                ExecutorEntry {
                    info: info.clone(),
                    role: role.to_owned(),
                    resources,
                },
            );
        }
        let framework_info = f.info.clone();
        let mut group = Vec::new();
        for (task, resources) in launch.tasks {
            let executor_id = task
                .executor
                .as_ref()
                .map(|e| e.executor_id.clone())
                .or_else(|| {
                    launch
                        .group_executor
                        .as_ref()
                        .map(|e| e.executor_id.clone())
                });
            let entry = TaskEntry {
                task: Task {
                    name: task.name.clone(),
                    task_id: task.task_id.clone(),
                    framework_id: FrameworkId {
                        value: framework.to_owned(),
                    },
                    executor_id,
                    agent_id: task.agent_id.clone(),
                    state: TaskState::TaskStaging as i32,
                    resources: task.resources.clone(),
                    labels: task.labels.clone(),
                    discovery: task.discovery.clone(),
                    container: task.container.clone(),
                    health_check: task.health_check.clone(),
                    kill_policy: task.kill_policy,
                    user: task.command.as_ref().and_then(|c| c.user.clone()),
                    ..Task::default()
                },
                role: role.to_owned(),
                resources,
                released: false,
            };
            tracing::info!(framework = %framework, task = %task.task_id.value, agent = %agent, "launching task");
            f.tasks.insert(task.task_id.value.clone(), entry);
            self.counters.tasks_launched += 1;
            if launch.group_executor.is_some() {
                group.push(task);
            } else {
                let message = master_to_agent::Message::RunTask(internal::RunTask {
                    framework_info: framework_info.clone(),
                    task,
                });
                send_link(self.agents.get(agent), message);
            }
        }
        if let Some(executor) = launch.group_executor {
            let message = master_to_agent::Message::RunTaskGroup(internal::RunTaskGroup {
                framework_info,
                executor,
                task_group: tepui_proto::v1::TaskGroupInfo { tasks: group },
            });
            send_link(self.agents.get(agent), message);
        }
    }

    /// REVIVE.
    pub fn revive(&mut self, framework: &str, roles: &[String]) {
        self.allocator.revive(framework, roles);
    }

    /// SUPPRESS.
    pub fn suppress(&mut self, framework: &str, roles: &[String]) {
        self.allocator.suppress(framework, roles);
    }

    // ----- tasks ------------------------------------------------------

    /// KILL: the agent is asked to kill the task; an unknown task is
    /// answered as reconciliation answers it.
    pub fn kill(&mut self, framework: &str, kill: call::Kill) {
        let task = kill.task_id.value.clone();
        let agent = self
            .frameworks
            .get(framework)
            .and_then(|f| f.tasks.get(&task))
            .map(|t| t.task.agent_id.value.clone());
        match agent {
            Some(agent) => {
                tracing::info!(framework = %framework, task = %task, "killing task");
                self.send_agent(
                    &agent,
                    master_to_agent::Message::KillTask(internal::KillTask {
                        framework_id: FrameworkId {
                            value: framework.to_owned(),
                        },
                        task_id: kill.task_id,
                        kill_policy: kill.kill_policy,
                    }),
                );
            }
            None => self.reconcile_one(framework, &task, kill.agent_id.map(|a| a.value)),
        }
    }

    /// An operator's kill (`tepui kill`): the task's agent is asked to
    /// kill it; its framework sees the updates as for its own KILL.
    pub fn operator_kill(&mut self, task: &str) -> Result<(), Refusal> {
        let owner = self
            .frameworks
            .iter()
            .find(|(_, f)| f.tasks.contains_key(task))
            .map(|(id, _)| id.clone());
        let Some(framework) = owner else {
            return Err(Refusal {
                status: 404,
                message: format!("no running task {task}"),
            });
        };
        self.kill(
            &framework,
            call::Kill {
                task_id: tepui_proto::v1::TaskId {
                    value: task.to_owned(),
                },
                agent_id: None,
                kill_policy: None,
            },
        );
        Ok(())
    }

    /// ACKNOWLEDGE: forwarded to the agent; an acknowledged terminal
    /// update ends the master's interest in the task.
    pub fn acknowledge(&mut self, framework: &str, ack: call::Acknowledge) -> Result<(), Refusal> {
        if ack.uuid.is_empty() {
            return Err(bad("'acknowledge.uuid' must not be empty"));
        }
        let task = ack.task_id.value.clone();
        let agent = ack.agent_id.value.clone();
        if let Some(f) = self.frameworks.get_mut(framework)
            && let Some(entry) = f.tasks.get(&task)
            && entry.task.status_update_uuid.as_deref() == Some(ack.uuid.as_slice())
            && entry
                .task
                .status_update_state
                .is_some_and(tepui_proto::model::is_terminal)
        {
            f.complete(&task);
        }
        self.send_agent(
            &agent,
            master_to_agent::Message::StatusUpdateAcknowledgement(
                internal::StatusUpdateAcknowledgement {
                    agent_id: ack.agent_id,
                    framework_id: FrameworkId {
                        value: framework.to_owned(),
                    },
                    task_id: ack.task_id,
                    uuid: ack.uuid,
                },
            ),
        );
        Ok(())
    }

    /// RECONCILE: the latest state of the tasks named, or of every task
    /// when none is.
    pub fn reconcile(&mut self, framework: &str, reconcile: call::Reconcile) {
        if reconcile.tasks.is_empty() {
            let statuses: Vec<TaskStatus> = self
                .frameworks
                .get(framework)
                .map(|f| f.tasks.values().map(|t| latest_status(&t.task)).collect())
                .unwrap_or_default();
            if let Some(f) = self.frameworks.get(framework) {
                for status in statuses {
                    f.send(&events::update(status));
                }
            }
            return;
        }
        for task in reconcile.tasks {
            self.reconcile_one(
                framework,
                &task.task_id.value,
                task.agent_id.map(|a| a.value),
            );
        }
    }

    fn reconcile_one(&mut self, framework: &str, task: &str, agent: Option<String>) {
        let Some(f) = self.frameworks.get(framework) else {
            return;
        };
        let status = if let Some(entry) = f.tasks.get(task) {
            latest_status(&entry.task)
        } else if let Some(done) = f
            .completed_tasks
            .iter()
            .rev()
            .find(|t| t.task_id.value == task)
        {
            latest_status(done)
        } else {
            let agent_known = agent.as_ref().is_some_and(|a| self.agents.contains_key(a));
            let agent_unreachable = agent
                .as_ref()
                .is_some_and(|a| self.unreachable.contains_key(a));
            let state = match (f.partition_aware(), agent_known, agent_unreachable) {
                (false, _, _) => TaskState::TaskLost,
                (true, true, _) => TaskState::TaskGone,
                (true, false, true) => TaskState::TaskUnreachable,
                (true, false, false) => TaskState::TaskUnknown,
            };
            events::master_status(
                task,
                agent.as_deref(),
                state,
                task_status::Reason::Reconciliation,
                "reconciliation: the task is unknown to the master",
            )
        };
        f.send(&events::update(status));
    }

    /// SHUTDOWN of an executor.
    pub fn shutdown_executor(&mut self, framework: &str, shutdown: call::Shutdown) {
        self.send_agent(
            &shutdown.agent_id.value.clone(),
            master_to_agent::Message::ShutdownExecutor(internal::ShutdownExecutor {
                framework_id: FrameworkId {
                    value: framework.to_owned(),
                },
                executor_id: shutdown.executor_id,
            }),
        );
    }

    /// MESSAGE to an executor.
    pub fn message(&mut self, framework: &str, message: call::Message) -> Result<(), Refusal> {
        let agent = message.agent_id.value.clone();
        if !self.agents.contains_key(&agent) {
            return Err(bad(format!("agent {agent} is not registered")));
        }
        self.send_agent(
            &agent,
            master_to_agent::Message::FrameworkMessage(internal::FrameworkMessage {
                agent_id: message.agent_id,
                framework_id: FrameworkId {
                    value: framework.to_owned(),
                },
                executor_id: message.executor_id,
                data: message.data,
            }),
        );
        Ok(())
    }

    // ----- agents -----------------------------------------------------

    fn send_agent(&self, agent: &str, message: master_to_agent::Message) {
        send_link(self.agents.get(agent), message);
    }

    fn ping_interval(&self) -> f64 {
        self.config.agent_ping_timeout.as_secs_f64()
    }

    /// RegisterAgent: a new id; the agent's stream is `link`.
    pub fn register_agent(
        &mut self,
        register: internal::RegisterAgent,
        link: AgentLink,
    ) -> Result<String, Refusal> {
        let mut info = register.agent_info;
        let total = Bundle::from_proto(&info.resources).map_err(|e| bad(e.to_string()))?;
        let id = self.fresh("S");
        info.id = Some(AgentId { value: id.clone() });
        let now = clock::now();
        tracing::info!(agent = %id, hostname = %info.hostname, resources = %describe(&total), "agent registered");
        send_link_to(
            &link,
            master_to_agent::Message::AgentRegistered(internal::AgentRegistered {
                agent_id: AgentId { value: id.clone() },
                master_info: Some(self.info.clone()),
                ping_interval_seconds: Some(self.ping_interval()),
            }),
        );
        self.allocator.add_agent(&id, total.clone());
        self.agents.insert(
            id.clone(),
            Agent {
                info,
                version: register.version,
                endpoint: register.endpoint.filter(|e| !e.is_empty()),
                total,
                link: Some(link),
                registered_time: now,
                reregistered_time: None,
                missed_pings: 0,
                ponged: true,
            },
        );
        self.save_registry();
        Ok(id)
    }

    /// ReregisterAgent: the agent comes back with what it runs; the
    /// master adopts its tasks (and frameworks it did not know), tells it
    /// which tasks to kill, and reports LOST what it expected but the
    /// agent does not run.
    pub fn reregister_agent(
        &mut self,
        reregister: internal::ReregisterAgent,
        link: AgentLink,
    ) -> Result<String, Refusal> {
        let info = reregister.agent_info;
        let id = info
            .id
            .as_ref()
            .map(|i| i.value.clone())
            .filter(|i| !i.is_empty())
            .ok_or_else(|| bad("a re-registering agent must carry its id"))?;
        if self.gone.contains_key(&id) {
            return Err(forbidden(format!(
                "agent {id} was marked gone by the operator; start it with a fresh work dir to join as a new agent"
            )));
        }
        let total = Bundle::from_proto(&info.resources).map_err(|e| bad(e.to_string()))?;
        let now = clock::now();
        let registered_time = self.agents.get(&id).map_or(now, |a| a.registered_time);
        // Forget the old incarnation (its allocations included); what the
        // agent reports is the truth from here on.
        self.rescind_offers_on(&id);
        self.allocator.remove_agent(&id);
        self.allocator.add_agent(&id, total.clone());
        self.expected.remove(&id);
        let was_unreachable = self.unreachable.remove(&id).is_some();
        for framework in &reregister.frameworks {
            let Some(fid) = framework.id.as_ref().map(|i| i.value.clone()) else {
                continue;
            };
            if !self.frameworks.contains_key(&fid)
                && !self.completed_frameworks.iter().any(|f| f.id() == fid)
            {
                let mut recovered = Framework::new(framework.clone(), now);
                recovered.recovered = true;
                recovered.disconnected_at = Some((Instant::now(), now));
                tracing::info!(framework = %fid, agent = %id, "framework recovered from an agent's report");
                self.allocator.add_framework(&fid, &recovered.roles);
                self.allocator.set_framework_active(&fid, false);
                self.frameworks.insert(fid, recovered);
            }
        }
        let mut unknown_tasks = Vec::new();
        let mut reported: Vec<(String, String)> = Vec::new();
        for task in reregister.tasks {
            let fid = task.framework_id.value.clone();
            let tid = task.task_id.value.clone();
            let Some(f) = self.frameworks.get_mut(&fid) else {
                unknown_tasks.push(task.task_id.clone());
                continue;
            };
            reported.push((fid.clone(), tid.clone()));
            let terminal = tepui_proto::model::is_terminal(task.state);
            let role = f.roles.first().cloned().unwrap_or_else(|| "*".to_owned());
            let role = task
                .resources
                .iter()
                .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.clone()))
                .unwrap_or(role);
            let resources = Bundle::from_proto(&task.resources).unwrap_or_default();
            let entry = f.tasks.entry(tid).or_insert_with(|| TaskEntry {
                task: task.clone(),
                role: role.clone(),
                resources: resources.clone(),
                released: false,
            });
            entry.task.state = task.state;
            entry.task.agent_id = AgentId { value: id.clone() };
            if task.status_update_state.is_some() {
                entry.task.status_update_state = task.status_update_state;
                entry.task.status_update_uuid = task.status_update_uuid.clone();
            }
            if !task.statuses.is_empty() {
                entry.task.statuses = task.statuses.clone();
            }
            entry.released = terminal;
            if !terminal {
                self.allocator.account(&fid, &role, &id, &resources);
            }
        }
        for executor in &reregister.executor_infos {
            let Some(fid) = executor.framework_id.as_ref().map(|f| f.value.clone()) else {
                continue;
            };
            if let Some(f) = self.frameworks.get_mut(&fid) {
                let role = f.roles.first().cloned().unwrap_or_else(|| "*".to_owned());
                let resources = Bundle::from_proto(&executor.resources).unwrap_or_default();
                self.allocator.account(&fid, &role, &id, &resources);
                f.executors.insert(
                    (id.clone(), executor.executor_id.value.clone()),
                    ExecutorEntry {
                        info: executor.clone(),
                        role,
                        resources,
                    },
                );
            }
        }
        // Tasks the master placed on this agent that it does not report
        // never reached it (or are gone with its restart).
        let mut lost = Vec::new();
        for (fid, f) in &self.frameworks {
            for (tid, t) in &f.tasks {
                if t.task.agent_id.value == id
                    && !tepui_proto::model::is_terminal(t.task.state)
                    && !reported.iter().any(|(rf, rt)| rf == fid && rt == tid)
                {
                    lost.push((fid.clone(), tid.clone()));
                }
            }
        }
        for (fid, tid) in lost {
            self.master_update(
                &fid,
                &tid,
                TaskState::TaskLost,
                task_status::Reason::AgentRestarted,
                "the agent re-registered without this task",
            );
        }
        tracing::info!(agent = %id, hostname = %info.hostname, was_unreachable, unknown_tasks = unknown_tasks.len(), "agent re-registered");
        send_link_to(
            &link,
            master_to_agent::Message::AgentReregistered(internal::AgentReregistered {
                agent_id: AgentId { value: id.clone() },
                master_info: Some(self.info.clone()),
                ping_interval_seconds: Some(self.ping_interval()),
                unknown_tasks,
            }),
        );
        self.agents.insert(
            id.clone(),
            Agent {
                info,
                version: reregister.version,
                endpoint: reregister.endpoint.filter(|e| !e.is_empty()),
                total,
                link: Some(link),
                registered_time,
                reregistered_time: Some(now),
                missed_pings: 0,
                ponged: true,
            },
        );
        self.save_registry();
        Ok(id)
    }

    /// Checks that an agent's POST comes over its current stream.
    pub fn check_agent_stream(&self, stream_id: Option<&str>) -> Result<String, Refusal> {
        let Some(stream_id) = stream_id else {
            return Err(bad("expected a Tepui-Agent-Stream-Id header"));
        };
        self.agents
            .values()
            .find(|a| a.link.as_ref().is_some_and(|l| l.stream_id == stream_id))
            .map(|a| a.id().to_owned())
            .ok_or_else(|| {
                forbidden(format!(
                    "stream {stream_id} is not an agent's current stream"
                ))
            })
    }

    /// An agent's stream ended: no offers of it until it is back.
    pub fn agent_disconnected(&mut self, agent: &str, stream_id: &str) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if a.link.as_ref().is_none_or(|l| l.stream_id != stream_id) {
            return;
        }
        a.link = None;
        tracing::warn!(agent = %agent, "agent disconnected");
        self.allocator.set_agent_active(agent, false);
        self.rescind_offers_on(agent);
    }

    /// A Pong.
    pub fn pong(&mut self, agent: &str) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.ponged = true;
            a.missed_pings = 0;
            if a.link.is_some() {
                self.allocator.set_agent_active(agent, true);
            }
        }
    }

    /// A status update from an agent: recorded and forwarded.
    pub fn status_update(&mut self, agent: &str, update: internal::StatusUpdate) {
        self.counters.status_updates += 1;
        let framework = update.framework_id.value.clone();
        let mut status = update.status;
        if status.agent_id.is_none() {
            status.agent_id = Some(AgentId {
                value: agent.to_owned(),
            });
        }
        let latest = update.latest_state.unwrap_or(status.state);
        let task = status.task_id.value.clone();
        let Some(f) = self.frameworks.get_mut(&framework) else {
            tracing::warn!(framework = %framework, task = %task, "a status update for an unknown framework");
            return;
        };
        let mut release = None;
        if let Some(entry) = f.tasks.get_mut(&task) {
            entry.task.state = latest;
            entry.task.status_update_state = Some(status.state);
            entry.task.status_update_uuid = status.uuid.clone();
            if entry.task.statuses.last().map(|s| (s.state, &s.uuid))
                != Some((status.state, &status.uuid))
            {
                let mut recorded = status.clone();
                recorded.data = None;
                entry.task.statuses.push(recorded);
            }
            if tepui_proto::model::is_terminal(latest) && !entry.released {
                entry.released = true;
                release = Some((entry.role.clone(), entry.resources.clone()));
            }
        }
        tracing::debug!(framework = %framework, task = %task, state = %tepui_proto::model::state_name(status.state), "status update");
        f.send(&events::update(status));
        if let Some((role, resources)) = release {
            self.allocator.recover(
                &framework,
                &role,
                agent,
                &resources,
                Duration::ZERO,
                Instant::now(),
            );
        }
    }

    /// An executor's container ended.
    pub fn executor_exited(&mut self, agent: &str, exited: internal::ExecutorExited) {
        let framework = exited.framework_id.value.clone();
        let executor = exited.executor_id.value.clone();
        let Some(f) = self.frameworks.get_mut(&framework) else {
            return;
        };
        if let Some(entry) = f.executors.remove(&(agent.to_owned(), executor.clone())) {
            self.allocator.recover(
                &framework,
                &entry.role,
                agent,
                &entry.resources,
                Duration::ZERO,
                Instant::now(),
            );
        }
        f.send(&events::failure(agent, Some(&executor), exited.status));
    }

    /// A FrameworkMessage from an executor.
    pub fn executor_message(&mut self, agent: &str, message: internal::FrameworkMessage) {
        if let Some(f) = self.frameworks.get(&message.framework_id.value) {
            f.send(&events::message(
                agent,
                &message.executor_id.value,
                message.data,
            ));
        }
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

    /// Removes an agent that stopped answering: its tasks are LOST (or
    /// UNREACHABLE to partition-aware frameworks) and its frameworks are
    /// told the agent is gone.
    pub fn remove_agent(&mut self, agent: &str, why: &str) {
        self.remove_agent_as(agent, why, false);
    }

    /// MARK_AGENT_GONE: the operator says the agent will not come back.
    /// A registered agent is told to shut its frameworks down and removed;
    /// its tasks, and those left UNREACHABLE by an earlier removal, end
    /// GONE_BY_OPERATOR (LOST to frameworks that are not partition-aware).
    /// The agent is never admitted again under its id.
    pub fn mark_agent_gone(&mut self, agent: &str) -> Result<(), Refusal> {
        if self.gone.contains_key(agent) {
            return Ok(());
        }
        if self.agents.contains_key(agent) {
            let frameworks: Vec<String> = self
                .frameworks
                .iter()
                .filter(|(_, f)| {
                    f.tasks.values().any(|t| t.task.agent_id.value == agent)
                        || f.executors_on(agent).next().is_some()
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in frameworks {
                self.send_agent(
                    agent,
                    master_to_agent::Message::ShutdownFramework(internal::ShutdownFramework {
                        framework_id: FrameworkId { value: id },
                    }),
                );
            }
            self.remove_agent_as(agent, "marked gone by the operator", true);
            return Ok(());
        }
        let Some((info, _)) = self.unreachable.remove(agent) else {
            return Err(Refusal {
                status: 404,
                message: format!("agent {agent} is neither registered nor unreachable"),
            });
        };
        tracing::warn!(agent = %agent, "unreachable agent marked gone by the operator");
        let now = clock::now();
        self.gone.insert(agent.to_owned(), (info, now));
        for f in self.frameworks.values_mut() {
            let unreachable: Vec<String> = f
                .tasks
                .iter()
                .filter(|(_, t)| {
                    t.task.agent_id.value == agent
                        && t.task.state == TaskState::TaskUnreachable as i32
                })
                .map(|(id, _)| id.clone())
                .collect();
            for task in unreachable {
                let status = events::master_status(
                    &task,
                    Some(agent),
                    TaskState::TaskGoneByOperator,
                    task_status::Reason::AgentRemovedByOperator,
                    format!("agent {agent} marked gone by the operator"),
                );
                if let Some(entry) = f.tasks.get_mut(&task) {
                    entry.task.state = TaskState::TaskGoneByOperator as i32;
                    entry.task.statuses.push(status.clone());
                }
                f.send(&events::update(status));
                f.complete(&task);
            }
        }
        self.save_registry();
        Ok(())
    }

    /// Removes an agent, as unreachable or (`gone`) for good.
    fn remove_agent_as(&mut self, agent: &str, why: &str, gone: bool) {
        self.rescind_offers_on(agent);
        let Some(a) = self.agents.remove(agent) else {
            return;
        };
        if gone {
            tracing::warn!(agent = %agent, hostname = %a.info.hostname, why, "agent removed for good");
        } else {
            tracing::warn!(agent = %agent, hostname = %a.info.hostname, why, "agent removed as unreachable");
        }
        self.counters.agents_removed += 1;
        self.allocator.remove_agent(agent);
        let now = clock::now();
        if gone {
            self.gone.insert(agent.to_owned(), (a.info, now));
        } else {
            self.unreachable.insert(agent.to_owned(), (a.info, now));
        }
        let mut affected = Vec::new();
        for (fid, f) in &self.frameworks {
            let tasks: Vec<String> = f
                .tasks
                .iter()
                .filter(|(_, t)| t.task.agent_id.value == agent)
                .map(|(id, _)| id.clone())
                .collect();
            affected.push((fid.clone(), f.partition_aware(), tasks));
        }
        for (fid, partition_aware, tasks) in affected {
            for task in &tasks {
                let Some(f) = self.frameworks.get_mut(&fid) else {
                    continue;
                };
                let Some(entry) = f.tasks.get_mut(task) else {
                    continue;
                };
                // The agent's allocation went with it.
                entry.released = true;
                if tepui_proto::model::is_terminal(entry.task.state) {
                    f.complete(task);
                    continue;
                }
                let state = match (partition_aware, gone) {
                    (true, false) => TaskState::TaskUnreachable,
                    (true, true) => TaskState::TaskGoneByOperator,
                    (false, _) => TaskState::TaskLost,
                };
                let reason = if gone {
                    task_status::Reason::AgentRemovedByOperator
                } else {
                    task_status::Reason::AgentRemoved
                };
                let mut status = events::master_status(
                    task,
                    Some(agent),
                    state,
                    reason,
                    format!("agent {agent} removed: {why}"),
                );
                if state == TaskState::TaskUnreachable {
                    status.unreachable_time = Some(tepui_proto::v1::TimeInfo {
                        nanoseconds: (now * 1e9) as i64,
                    });
                }
                entry.task.state = state as i32;
                entry.task.statuses.push(status.clone());
                f.send(&events::update(status));
                if state != TaskState::TaskUnreachable {
                    f.complete(task);
                }
            }
            if let Some(f) = self.frameworks.get_mut(&fid) {
                f.executors.retain(|(a, _), _| a != agent);
                f.send(&events::failure(agent, None, None));
            }
        }
        self.save_registry();
    }

    // ----- timers -----------------------------------------------------

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

/// One LAUNCH or LAUNCH_GROUP, validated.
struct Launch {
    tasks: Vec<(TaskInfo, Bundle)>,
    group_executor: Option<ExecutorInfo>,
    resources: Bundle,
    new_executors: HashMap<String, ExecutorInfo>,
}

/// A framework's roles, refused when there are none or one is invalid.
fn checked_roles(info: &tepui_proto::v1::FrameworkInfo) -> Result<Vec<String>, Refusal> {
    let roles = roles_of(info);
    if roles.is_empty() {
        return Err(bad("a framework must be subscribed to at least one role"));
    }
    for role in &roles {
        valid_role(role).map_err(bad)?;
    }
    Ok(roles)
}

fn refuse_of(filters: Option<&tepui_proto::v1::Filters>) -> Result<Duration, Refusal> {
    match filters.and_then(|f| f.refuse_seconds) {
        None => Ok(DEFAULT_REFUSE),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s.min(365.0 * 86400.0))),
        Some(_) => Err(bad(
            "'filters.refuse_seconds' must be a non-negative number",
        )),
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

/// The latest status of a task, as reconciliation reports it.
fn latest_status(task: &Task) -> TaskStatus {
    let mut status = task.statuses.last().cloned().unwrap_or_else(|| TaskStatus {
        task_id: task.task_id.clone(),
        state: task.state,
        ..TaskStatus::default()
    });
    status.state = task.state;
    status.uuid = None;
    status.data = None;
    status.agent_id = Some(task.agent_id.clone());
    status.source = Some(task_status::Source::Master as i32);
    status.reason = Some(task_status::Reason::Reconciliation as i32);
    status.message = Some("reconciliation: latest task state".to_owned());
    status.timestamp = Some(clock::now());
    status
}

/// The agent's URL as offers carry it.
fn agent_url(info: &AgentInfo) -> tepui_proto::v1::Url {
    tepui_proto::v1::Url {
        scheme: "http".to_owned(),
        address: tepui_proto::v1::Address {
            hostname: Some(info.hostname.clone()),
            ip: Some(info.hostname.clone()),
            port: info.port.unwrap_or(5051),
        },
        path: Some("/slave(1)".to_owned()),
        ..tepui_proto::v1::Url::default()
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
