//! Agents: registration and re-registration (adopting what an agent
//! reports), the stream check of an agent's messages, a stream that
//! ends, pongs, removal of an unreachable agent and MARK_AGENT_GONE.

use std::time::Instant;

use tepui_proto::internal::{self, master_to_agent};
use tepui_proto::v1::{AgentId, FrameworkId, TaskState, task_status};

use super::{Master, Refusal, bad, describe, send_link_to};
use crate::clock;
use crate::events;
use crate::resources::Bundle;
use crate::state::{Agent, AgentLink, ExecutorEntry, Framework, TaskEntry};

impl Master {
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

    /// Whether `principal` (the authenticated one; none when the agent
    /// channel requires no credential) may speak for agent `id`: the one
    /// its id was admitted under, if it was under one.
    pub fn check_agent_principal(&self, id: &str, principal: Option<&str>) -> Result<(), Refusal> {
        match (principal, self.agent_principals.get(id)) {
            (Some(given), Some(known)) if given != known => {
                tracing::warn!(agent = %id, principal = %given, "refusing an agent under another principal than its own");
                Err(Refusal::AgentPrincipal(id.to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// Remembers the principal agent `id` was admitted under.
    pub fn remember_agent_principal(&mut self, id: &str, principal: Option<&str>) {
        if let Some(principal) = principal
            && self.agent_principals.get(id).map(String::as_str) != Some(principal)
        {
            self.agent_principals
                .insert(id.to_owned(), principal.to_owned());
            self.save_registry();
        }
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
            return Err(Refusal::AgentGone(id));
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
            return Err(Refusal::MissingAgentStreamId);
        };
        self.agents
            .values()
            .find(|a| a.link.as_ref().is_some_and(|l| l.stream_id == stream_id))
            .map(|a| a.id().to_owned())
            .ok_or_else(|| Refusal::NotAgentStream(stream_id.to_owned()))
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
            return Err(Refusal::UnknownAgent(agent.to_owned()));
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
}
