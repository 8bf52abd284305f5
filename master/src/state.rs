//! What the master knows of each framework, agent, task and offer.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use tepui_proto::v1::{AgentInfo, ExecutorInfo, FrameworkInfo, Task, framework_info};
use tokio::sync::mpsc;

use crate::allocator::Id;
use crate::events::EventSink;
use crate::resources::Bundle;

/// How many ended tasks a framework keeps for `/state`.
pub const COMPLETED_TASKS: usize = 1000;
/// How many torn-down frameworks the master keeps for `/state`.
pub const COMPLETED_FRAMEWORKS: usize = 50;

/// A task the master tracks.
#[derive(Debug, Clone)]
pub struct TaskEntry {
    /// The task as `/state` and reconciliation show it.
    pub task: Task,
    /// The role its resources are allocated to.
    pub role: String,
    /// Its resources.
    pub resources: Bundle,
    /// Whether its resources went back to the allocator (terminal state).
    pub released: bool,
}

/// A framework's executor on one agent.
#[derive(Debug, Clone)]
pub struct ExecutorEntry {
    /// What the framework gave.
    pub info: ExecutorInfo,
    /// The role its resources are allocated to.
    pub role: String,
    /// Its resources.
    pub resources: Bundle,
}

/// A framework, subscribed or not.
#[derive(Debug)]
pub struct Framework {
    /// Its info, with its id.
    pub info: FrameworkInfo,
    /// The roles it is subscribed to.
    pub roles: Vec<String>,
    /// Its event stream while connected.
    pub sink: Option<EventSink>,
    /// The id of that stream (`Mesos-Stream-Id`).
    pub stream_id: Option<String>,
    /// Known only from an agent's report; not yet re-subscribed.
    pub recovered: bool,
    /// When it first subscribed (seconds since the epoch).
    pub registered_time: f64,
    /// When it last re-subscribed.
    pub reregistered_time: Option<f64>,
    /// When its stream ended.
    pub disconnected_at: Option<(Instant, f64)>,
    /// Its tasks not yet acknowledged terminal.
    pub tasks: HashMap<String, TaskEntry>,
    /// Its ended tasks, oldest first, bounded.
    pub completed_tasks: VecDeque<Task>,
    /// Its outstanding offers.
    pub offers: BTreeSet<String>,
    /// Its executors, by (agent, executor id).
    pub executors: BTreeMap<(String, String), ExecutorEntry>,
}

impl Framework {
    /// A framework from `info` (which has its id).
    pub fn new(info: FrameworkInfo, now: f64) -> Self {
        let roles = roles_of(&info);
        Self {
            info,
            roles,
            sink: None,
            stream_id: None,
            recovered: false,
            registered_time: now,
            reregistered_time: None,
            disconnected_at: None,
            tasks: HashMap::new(),
            completed_tasks: VecDeque::new(),
            offers: BTreeSet::new(),
            executors: BTreeMap::new(),
        }
    }

    /// The ids of its executors on `agent`, without a scan of the others.
    pub fn executors_on<'a>(&'a self, agent: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let start = if self.executors.is_empty() {
            None
        } else {
            Some((agent.to_owned(), String::new()))
        };
        start
            .into_iter()
            .flat_map(|start| self.executors.range(start..))
            .take_while(move |((a, _), _)| a == agent)
            .map(|((_, e), _)| e.as_str())
    }

    /// Its id.
    pub fn id(&self) -> &str {
        self.info.id.as_ref().map_or("", |i| i.value.as_str())
    }

    /// Whether its scheduler is connected.
    pub fn connected(&self) -> bool {
        self.sink.is_some()
    }

    /// Whether it declared PARTITION_AWARE.
    pub fn partition_aware(&self) -> bool {
        self.info
            .capabilities
            .iter()
            .any(|c| c.r#type == Some(framework_info::capability::Type::PartitionAware as i32))
    }

    /// Sends `event` when connected.
    pub fn send(&self, event: &tepui_proto::v1::scheduler::Event) {
        if let Some(sink) = &self.sink {
            sink.send(event);
        }
    }

    /// Moves a task to the completed history.
    pub fn complete(&mut self, task: &str) {
        if let Some(entry) = self.tasks.remove(task) {
            if self.completed_tasks.len() == COMPLETED_TASKS {
                self.completed_tasks.pop_front();
            }
            self.completed_tasks.push_back(entry.task);
        }
    }
}

/// The roles of a framework: `roles` with MULTI_ROLE, else `role`.
#[allow(deprecated)]
pub fn roles_of(info: &FrameworkInfo) -> Vec<String> {
    let multi = info
        .capabilities
        .iter()
        .any(|c| c.r#type == Some(framework_info::capability::Type::MultiRole as i32));
    if multi || !info.roles.is_empty() {
        info.roles.clone()
    } else {
        vec![info.role.clone().unwrap_or_else(|| "*".to_owned())]
    }
}

/// Whether `role` is a valid role name (Mesos's rules).
pub fn valid_role(role: &str) -> Result<(), String> {
    if role.is_empty() {
        return Err("a role name must not be empty".into());
    }
    if role == "." || role == ".." || role.starts_with('-') || role.starts_with('/') {
        return Err(format!("role {role:?} is not a valid role name"));
    }
    if role.ends_with('/') || role.contains("//") {
        return Err(format!("role {role:?} is not a valid role name"));
    }
    if role
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Err(format!(
            "role {role:?} must not hold whitespace or backslashes"
        ));
    }
    Ok(())
}

/// The master's end of an agent's stream.
#[derive(Debug, Clone)]
pub struct AgentLink {
    /// `Tepui-Agent-Stream-Id`.
    pub stream_id: String,
    /// RecordIO frames of `MasterToAgent`.
    pub tx: mpsc::UnboundedSender<Bytes>,
}

/// A registered agent.
#[derive(Debug)]
pub struct Agent {
    /// Its info, with its id.
    pub info: AgentInfo,
    /// Its tepui version.
    pub version: String,
    /// IP:PORT its HTTP API serves on, as it registered.
    pub endpoint: Option<String>,
    /// Its resources.
    pub total: Bundle,
    /// Its stream while connected.
    pub link: Option<AgentLink>,
    /// When it registered (seconds since the epoch).
    pub registered_time: f64,
    /// When it last re-registered.
    pub reregistered_time: Option<f64>,
    /// Pings in a row without a pong.
    pub missed_pings: u32,
    /// Whether a pong came since the last ping.
    pub ponged: bool,
}

impl Agent {
    /// Its id.
    pub fn id(&self) -> &str {
        self.info.id.as_ref().map_or("", |i| i.value.as_str())
    }

    /// Its name as Mesos clients address it, `slave(1)@IP:PORT` (by
    /// hostname when it registered no endpoint).
    pub fn pid(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("slave(1)@{endpoint}"),
            None => format!(
                "slave(1)@{}:{}",
                self.info.hostname,
                self.info.port.unwrap_or(5051)
            ),
        }
    }
}

/// An outstanding offer: what it is made of, not the message sent, which
/// [`crate::master::Master::offer_message`] rebuilds when asked (a
/// message is ten times the size, and thousands are outstanding).
#[derive(Debug, Clone)]
pub struct OfferEntry {
    /// The framework.
    pub framework: Id,
    /// The role offered to.
    pub role: Id,
    /// The agent.
    pub agent: Id,
    /// What it holds.
    pub resources: Bundle,
    /// When it was made.
    pub made: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_follow_mesos_rules() {
        for ok in ["*", "web", "eng/backend", "a.b"] {
            assert!(valid_role(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "-x", "/x", "x/", "a//b", "a b", "a\\b"] {
            assert!(valid_role(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    #[allow(deprecated)]
    fn roles_come_from_roles_with_multi_role_else_role() {
        let mut info = FrameworkInfo::default();
        assert_eq!(roles_of(&info), ["*"]);
        info.role = Some("web".into());
        assert_eq!(roles_of(&info), ["web"]);
        info.roles = vec!["a".into(), "b".into()];
        assert_eq!(roles_of(&info), ["a", "b"]);
    }
}
