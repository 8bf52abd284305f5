//! The conversation with executors: the executor API's calls (SUBSCRIBE,
//! UPDATE, MESSAGE) as the [`ExecutorHost`] the API serves, and framework
//! messages passed on to a subscribed executor.

use std::collections::HashSet;
use std::time::Duration;

use tepui_proto::internal::{AgentToMaster, agent_to_master};
use tepui_proto::v1::executor::{Event, call, event};
use tepui_proto::v1::{
    AgentId, AgentInfo, ContainerId, ExecutorId, FrameworkId, NetworkInfo, TaskState, TaskStatus,
    framework_info, network_info, task_status,
};

use super::{ExecutorState, Runner, lock};
use crate::executor_api::{self, EventSink, ExecutorHost, UpdateRefused};
use crate::status_update::{TaskKey, UpdateError};

impl Runner {
    /// A task the executor saw die (its process killed) in a container
    /// that hit its memory limit failed for that limit: the update says
    /// so, with Mesos's reason, as when the whole executor is OOM-killed.
    fn blame_limitation(&self, container: &str, status: &mut TaskStatus) {
        if status.state != TaskState::TaskFailed as i32 {
            return;
        }
        let Ok(Some(limitation)) = self.containerizer.limitation(container) else {
            return;
        };
        status.reason = Some(tepui_containerizer::mesos_reason(&limitation) as i32);
        status.message = Some(match status.message.take() {
            Some(said) if !said.is_empty() => format!("{limitation}: {said}"),
            _ => limitation.to_string(),
        });
    }

    /// Fills in what the executor's update did not say of its container,
    /// as the Mesos agent does: its id, its first process and the agent's
    /// address (the container shares the agent's network).
    fn describe_container(&self, container: &str, status: &mut TaskStatus) {
        let described = status.container_status.get_or_insert_with(Default::default);
        if described.container_id.is_none() {
            described.container_id = Some(ContainerId {
                value: container.to_owned(),
                parent: None,
            });
        }
        if described.executor_pid.is_none() {
            described.executor_pid = self
                .containerizer
                .pid(container)
                .and_then(|pid| u32::try_from(pid).ok());
        }
        if described.network_infos.is_empty()
            && let Ok(address) = self.config.endpoint.parse::<std::net::SocketAddr>()
        {
            let protocol = if address.is_ipv6() {
                network_info::Protocol::IPv6
            } else {
                network_info::Protocol::IPv4
            };
            described.network_infos.push(NetworkInfo {
                ip_addresses: vec![network_info::IpAddress {
                    protocol: Some(protocol as i32),
                    ip_address: Some(address.ip().to_string()),
                }],
                ..Default::default()
            });
        }
    }

    /// Passes a scheduler's message to its executor (dropped, as in Mesos,
    /// when the executor is unknown or not subscribed).
    pub fn message_executor(&self, framework: &str, executor: &str, data: Vec<u8>) {
        let sink = lock(&self.executors)
            .get(&(framework.to_owned(), executor.to_owned()))
            .and_then(|run| run.sink.clone());
        let Some(sink) = sink else {
            tracing::warn!(%framework, %executor, "dropping a framework message for an executor not subscribed here");
            return;
        };
        let message = Event {
            r#type: Some(event::Type::Message as i32),
            message: Some(event::Message { data }),
            ..Default::default()
        };
        tokio::spawn(async move {
            sink.send(&message).await;
        });
    }
}

impl ExecutorHost for Runner {
    fn heartbeat_interval(&self) -> Duration {
        self.config.heartbeat_interval
    }

    fn recovering(&self) -> bool {
        self.is_recovering()
    }

    fn container_of(&self, framework: &str, executor: &str) -> Option<String> {
        let key = (framework.to_owned(), executor.to_owned());
        lock(&self.executors)
            .get(&key)
            .map(|run| run.container.clone())
    }

    fn subscribe(
        &self,
        framework: &str,
        executor: &str,
        subscribe: call::Subscribe,
        events: EventSink,
    ) -> Result<(), String> {
        let key = (framework.to_owned(), executor.to_owned());
        let (subscribed, queued, resent, framework_info, container, dropped) = {
            let mut executors = lock(&self.executors);
            let Some(run) = executors.get_mut(&key) else {
                return Err(format!(
                    "unknown executor {executor} of framework {framework}"
                ));
            };
            run.sink = Some(events.clone());
            if run.state == ExecutorState::Registering {
                run.state = ExecutorState::Running;
            }
            let subscribed = Event {
                r#type: Some(event::Type::Subscribed as i32),
                subscribed: Some(event::Subscribed {
                    executor_info: run.info.clone(),
                    framework_info: run.framework.clone(),
                    agent_info: AgentInfo {
                        hostname: self.config.hostname.clone(),
                        id: Some(AgentId {
                            value: self.agent_id(),
                        }),
                        ..Default::default()
                    },
                    container_id: Some(ContainerId {
                        value: run.container.clone(),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            };
            // A task still STAGING that the executor does not know and
            // that is not queued here was sent by an agent that died
            // before the executor had it: it is LOST (DROPPED when the
            // framework is partition-aware), as in Mesos.
            let known: HashSet<&str> = subscribe
                .unacknowledged_tasks
                .iter()
                .map(|t| t.task_id.value.as_str())
                .collect();
            let queued_ids: HashSet<&str> = run
                .queued
                .iter()
                .flat_map(|launch| launch.tasks())
                .map(|t| t.task_id.value.as_str())
                .collect();
            let dropped: Vec<String> = run
                .tasks
                .iter()
                .filter(|(id, state)| {
                    **state == TaskState::TaskStaging as i32
                        && !known.contains(id.as_str())
                        && !queued_ids.contains(id.as_str())
                })
                .map(|(id, _)| id.clone())
                .collect();
            // An executor left with nothing to run is shut down (Mesos's
            // MESOS-8411 rule): the command executor never ends on its own
            // without a task.
            let idle = !dropped.is_empty()
                && queued_ids.is_empty()
                && run.tasks.iter().all(|(id, state)| {
                    dropped.contains(id) || crate::status_update::is_terminal(*state)
                });
            let partition_aware =
                run.framework.capabilities.iter().any(|c| {
                    c.r#type == Some(framework_info::capability::Type::PartitionAware as i32)
                });
            let shutdown = idle.then(|| run.terminate());
            let queued: Vec<_> = std::mem::take(&mut run.queued)
                .into_iter()
                .map(|launch| run.event(launch, self.config.switch_user))
                .collect();
            let resent: Vec<TaskStatus> = subscribe
                .unacknowledged_updates
                .into_iter()
                .map(|u| u.status)
                .collect();
            (
                subscribed,
                queued,
                resent,
                run.framework.clone(),
                run.container.clone(),
                (dropped, partition_aware, shutdown),
            )
        };
        tracing::info!(%framework, %executor, "executor subscribed");
        let (dropped, partition_aware, shutdown) = dropped;
        let dropped_state = if partition_aware {
            TaskState::TaskDropped
        } else {
            TaskState::TaskLost
        };
        for task in &dropped {
            tracing::warn!(%framework, %executor, %task, state = ?dropped_state, "a STAGING task unknown to its re-subscribed executor: it was launched during an agent restart");
            self.end_task(
                &key,
                task,
                dropped_state,
                task_status::Reason::AgentRestarted,
                "Task launched during agent restart",
            );
        }
        let shutdown = shutdown.map(|(sink, container)| {
            tracing::warn!(%framework, %executor, "shutting down an executor that has no task left to run");
            self.shutdown(sink, container)
        });
        // Only what was checkpointed is acknowledged; the rest comes again
        // with the executor's next subscription or retry.
        let resent: Vec<TaskStatus> = resent
            .into_iter()
            .filter(|status| {
                !matches!(
                    self.take_update(
                        framework,
                        &framework_info,
                        &container,
                        executor,
                        status.clone(),
                    ),
                    Err(UpdateError::Checkpoint(_))
                )
            })
            .collect();
        // The run's view follows what the manager now holds (a resent
        // update may be newer than the view, or a duplicate of an older one).
        let latest: Vec<(String, i32)> = {
            let updates = lock(&self.updates);
            resent
                .iter()
                .filter_map(|status| {
                    let task = status.task_id.value.clone();
                    let state = updates.latest_state(&TaskKey {
                        framework: framework.to_owned(),
                        task: task.clone(),
                    })?;
                    Some((task, state))
                })
                .collect()
        };
        if let Some(run) = lock(&self.executors).get_mut(&key) {
            for (task, state) in latest {
                if let Some(view) = run.tasks.get_mut(&task) {
                    *view = state;
                }
            }
        }
        let mut launches = Vec::new();
        for event in queued {
            match event {
                Ok(event) => launches.push(event),
                Err((tasks, why)) => {
                    for task in tasks {
                        self.fail_task(
                            &key,
                            &task,
                            task_status::Reason::ContainerLaunchFailed,
                            &why,
                        );
                    }
                }
            }
        }
        tokio::spawn(async move {
            events.send(&subscribed).await;
            for launch in &launches {
                events.send(launch).await;
            }
            for status in &resent {
                events.send(&executor_api::acknowledged(status)).await;
            }
            if let Some(shutdown) = shutdown {
                shutdown.await;
            }
        });
        Ok(())
    }

    fn update(
        &self,
        framework: &str,
        executor: &str,
        mut status: TaskStatus,
    ) -> Result<(), UpdateRefused> {
        let key = (framework.to_owned(), executor.to_owned());
        let (framework_info, container, sink, previous) = {
            let mut executors = lock(&self.executors);
            let Some(run) = executors.get_mut(&key) else {
                return Err(UpdateRefused::Invalid(format!(
                    "unknown executor {executor} of framework {framework}"
                )));
            };
            let Some(state) = run.tasks.get_mut(&status.task_id.value) else {
                return Err(UpdateRefused::Invalid(format!(
                    "task {} is not one of this executor's",
                    status.task_id.value
                )));
            };
            let previous = std::mem::replace(state, status.state);
            (
                run.framework.clone(),
                run.container.clone(),
                run.sink.clone(),
                previous,
            )
        };
        self.blame_limitation(&container, &mut status);
        self.describe_container(&container, &mut status);
        let taken = self.take_update(
            framework,
            &framework_info,
            &container,
            executor,
            status.clone(),
        );
        if let Err(e) = taken {
            // The run's view keeps the state the manager holds: an update
            // not taken (not checkpointed, or after the task's terminal
            // update) must not move it back.
            if let Some(state) = lock(&self.executors)
                .get_mut(&key)
                .and_then(|run| run.tasks.get_mut(&status.task_id.value))
            {
                *state = previous;
            }
            if let UpdateError::Checkpoint(e) = e {
                // Not acknowledged: the executor keeps it and sends it again.
                return Err(UpdateRefused::Unavailable(format!(
                    "the agent could not checkpoint the update; send it again: {e}"
                )));
            }
            // Anything else was dropped where it was refused, and is
            // acknowledged below so the executor does not send it again
            // (as a Mesos agent acknowledges an update it drops).
        }
        if let Some(sink) = sink {
            tokio::spawn(async move {
                sink.send(&executor_api::acknowledged(&status)).await;
            });
        }
        Ok(())
    }

    fn message(&self, framework: &str, executor: &str, data: Vec<u8>) -> Result<(), String> {
        let _ = self.to_master.send(AgentToMaster {
            message: Some(agent_to_master::Message::FrameworkMessage(
                tepui_proto::internal::FrameworkMessage {
                    agent_id: AgentId {
                        value: self.agent_id(),
                    },

                    framework_id: FrameworkId {
                        value: framework.to_owned(),
                    },
                    executor_id: ExecutorId {
                        value: executor.to_owned(),
                    },
                    data,
                },
            )),
        });
        Ok(())
    }
}
