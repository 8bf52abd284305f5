//! What agents report about tasks and executors: status updates,
//! executors that exited, and executors' messages to their frameworks.

use std::time::{Duration, Instant};

use tepui_proto::internal;
use tepui_proto::v1::AgentId;

use super::Master;
use crate::events;

impl Master {
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
}
