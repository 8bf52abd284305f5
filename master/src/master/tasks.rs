//! Tasks: ACCEPT (checked by [`super::validation`], then carried out;
//! an invalid task gets TASK_ERROR, as Mesos's master answers it),
//! KILL (the scheduler's and the operator's), ACKNOWLEDGE, RECONCILE,
//! SHUTDOWN of an executor and MESSAGE to one.

use std::time::Instant;

use tepui_proto::internal::{self, master_to_agent};
use tepui_proto::v1::scheduler::call;
use tepui_proto::v1::{FrameworkId, Task, TaskState, TaskStatus, task_status};

use super::validation::{self, Launch, refuse_of};
use super::{Master, Refusal, bad, send_link};
use crate::clock;
use crate::events;
use crate::resources::Bundle;
use crate::state::{ExecutorEntry, TaskEntry};

impl Master {
    /// ACCEPT: every operation is validated against the offers before any
    /// is carried out; what the operations leave is given back, filtered.
    pub fn accept(&mut self, framework: &str, accept: call::Accept) -> Result<(), Refusal> {
        let refuse = refuse_of(accept.filters.as_ref())?;
        validation::supported(&accept.operations)?;
        let f = self
            .frameworks
            .get(framework)
            .ok_or_else(|| Refusal::NotSubscribed(framework.to_owned()))?;
        let validation::Accepted {
            agent,
            role,
            offered,
        } = match validation::accepted_offers(&self.offers, framework, &accept.offer_ids) {
            Ok(accepted) => accepted,
            Err(why) => {
                self.invalid_offers(framework, &accept, &why.to_string());
                return Ok(());
            }
        };
        let validation::Planned { launches, invalid } = validation::plan(
            framework,
            f,
            &agent,
            &accept.operations,
            &offered,
            &self.config.acls,
        )?;
        if let Some(f) = self.frameworks.get(framework) {
            for (task, reason, why) in invalid {
                tracing::info!(framework = %framework, task = %task, why = %why, "task refused (TASK_ERROR)");
                f.send(&events::update(events::master_status(
                    &task,
                    Some(&agent),
                    TaskState::TaskError,
                    reason,
                    why,
                )));
            }
        }
        for id in &accept.offer_ids {
            if let Some(entry) = self.offers.remove(&id.value)
                && let Some(f) = self.frameworks.get_mut(entry.framework.as_ref())
            {
                f.offers.remove(&id.value);
            }
        }
        let mut used = Bundle::default();
        for launch in launches {
            used.add(&launch.resources);
            self.launch(framework, &role, &agent, launch);
        }
        let mut unused = offered;
        unused.subtract(&used);
        self.allocator
            .recover(framework, &role, &agent, &unused, refuse, Instant::now());
        Ok(())
    }

    /// An ACCEPT naming offers that are not (or no longer) valid, as Mesos
    /// answers it: the call is taken, each task it would launch is
    /// TASK_LOST (TASK_DROPPED for a partition-aware framework) with
    /// REASON_INVALID_OFFERS, and its valid offers are given back. A
    /// framework whose offer was rescinded by an agent's re-registration
    /// learns it that way rather than by a refused call.
    fn invalid_offers(&mut self, framework: &str, accept: &call::Accept, why: &str) {
        use tepui_proto::v1::offer::operation::Type as Op;
        tracing::warn!(framework = %framework, why = %why, "ACCEPT with invalid offers");
        for id in &accept.offer_ids {
            if self
                .offers
                .get(&id.value)
                .is_some_and(|o| *o.framework == *framework)
            {
                self.remove_offer(&id.value, std::time::Duration::ZERO);
            }
        }
        let Some(f) = self.frameworks.get(framework) else {
            return;
        };
        let state = if f.partition_aware() {
            TaskState::TaskDropped
        } else {
            TaskState::TaskLost
        };
        for operation in &accept.operations {
            let tasks = match operation.r#type.and_then(|t| Op::try_from(t).ok()) {
                Some(Op::Launch) => operation.launch.as_ref().map(|l| l.task_infos.as_slice()),
                Some(Op::LaunchGroup) => operation
                    .launch_group
                    .as_ref()
                    .map(|g| g.task_group.tasks.as_slice()),
                _ => None,
            };
            for task in tasks.unwrap_or_default() {
                let agent =
                    (!task.agent_id.value.is_empty()).then_some(task.agent_id.value.as_str());
                f.send(&events::update(events::master_status(
                    &task.task_id.value,
                    agent,
                    state,
                    task_status::Reason::InvalidOffers,
                    format!("Task launched with invalid offers: {why}"),
                )));
            }
        }
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
            return Err(Refusal::UnknownTask(task.to_owned()));
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
