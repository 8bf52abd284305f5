//! The master's side of status updates: acknowledgements taken, updates
//! forwarded again after a re-registration or when their retry is due,
//! and the agent's own TASK_ERROR for a task it cannot take.

use tepui_proto::internal::StatusUpdate;
use tepui_proto::v1::{FrameworkId, TaskState, task_status};

use super::{RunError, Runner, agent_status, lock};
use crate::status_update::TaskKey;

impl Runner {
    /// The scheduler acknowledged an update (relayed by the master).
    pub fn acknowledge(&self, framework: &str, task: &str, uuid: &[u8]) {
        let key = TaskKey {
            framework: framework.to_owned(),
            task: task.to_owned(),
        };
        // The manager's lock is let go before an ended run is checked.
        let acked = lock(&self.updates).acknowledge(&key, uuid);
        match acked {
            Ok(acked) => {
                if let Some(next) = acked.next {
                    self.forward(next);
                }
                if acked.ended {
                    self.complete_acknowledged_runs(framework);
                }
            }
            Err(e) => tracing::warn!(error = %e, "acknowledgement refused"),
        }
    }

    /// Whether a master is listening (set by the master link).
    pub fn set_registered(&self, registered: bool) {
        self.registered
            .store(registered, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a master is listening.
    pub fn is_registered(&self) -> bool {
        self.registered.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forwards again every update awaiting acknowledgement (after the
    /// agent registers again with a master).
    pub fn forward_pending(&self) {
        let heads = lock(&self.updates).heads();
        for update in heads {
            self.forward(update);
        }
    }

    /// Refuses a task the agent cannot take: TASK_ERROR from the agent
    /// for an invalid task; TASK_FAILED (REASON_CONTAINER_LAUNCH_FAILED)
    /// when the agent itself failed, such as its disk being full.
    pub fn reject_task(&self, framework: &str, task: &str, error: &RunError) {
        let (state, reason) = if error.agent_failed {
            (
                TaskState::TaskFailed,
                task_status::Reason::ContainerLaunchFailed,
            )
        } else {
            (TaskState::TaskError, task_status::Reason::TaskInvalid)
        };
        let status = agent_status(task, state, reason, &error.why);
        let update = StatusUpdate {
            framework_id: FrameworkId {
                value: framework.to_owned(),
            },
            latest_state: Some(status.state),
            status,
        };
        // A refused update is logged where it is refused.
        let _ = self.manage(update, None);
    }

    /// The updates due to be forwarded again now.
    pub fn retry_due(&self) {
        self.retake_unrecorded();
        let due = lock(&self.updates).due(std::time::Instant::now());
        for update in due {
            self.forward(update);
        }
    }
}
