//! The agent's counters and gauges, named as the Mesos agent names them
//! (`slave/tasks_running`, ...), served as JSON (`/metrics/snapshot`) and
//! as Prometheus text (`/metrics`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use tepui_proto::v1::TaskState;

/// Counters the runner keeps as tasks and executors end.
#[derive(Debug, Default)]
pub struct Counters {
    tasks_finished: AtomicU64,
    tasks_failed: AtomicU64,
    tasks_killed: AtomicU64,
    tasks_lost: AtomicU64,
    tasks_gone: AtomicU64,
    tasks_error: AtomicU64,
    executors_terminated: AtomicU64,
    valid_status_updates: AtomicU64,
    invalid_status_updates: AtomicU64,
}

impl Counters {
    /// Counts a status update taken, whose task was in `previous` before
    /// (a task's terminal state is counted once, however often repeated).
    pub fn update(&self, previous: Option<i32>, state: i32) {
        self.valid_status_updates.fetch_add(1, Ordering::Relaxed);
        if previous.is_some_and(crate::status_update::is_terminal) {
            return;
        }
        let counter = match TaskState::try_from(state) {
            Ok(TaskState::TaskFinished) => &self.tasks_finished,
            Ok(TaskState::TaskFailed) => &self.tasks_failed,
            Ok(TaskState::TaskKilled) => &self.tasks_killed,
            Ok(TaskState::TaskLost | TaskState::TaskDropped | TaskState::TaskUnreachable) => {
                &self.tasks_lost
            }
            Ok(TaskState::TaskGone | TaskState::TaskGoneByOperator) => &self.tasks_gone,
            Ok(TaskState::TaskError) => &self.tasks_error,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a status update refused.
    pub fn invalid_update(&self) {
        self.invalid_status_updates.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an executor run that ended.
    pub fn executor_terminated(&self) {
        self.executors_terminated.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters by their Mesos names.
    pub fn export(&self, into: &mut BTreeMap<String, f64>) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        for (name, counter) in [
            ("slave/tasks_finished", &self.tasks_finished),
            ("slave/tasks_failed", &self.tasks_failed),
            ("slave/tasks_killed", &self.tasks_killed),
            ("slave/tasks_lost", &self.tasks_lost),
            ("slave/tasks_gone", &self.tasks_gone),
            ("slave/tasks_error", &self.tasks_error),
            ("slave/executors_terminated", &self.executors_terminated),
            ("slave/valid_status_updates", &self.valid_status_updates),
            ("slave/invalid_status_updates", &self.invalid_status_updates),
        ] {
            into.insert(name.to_owned(), get(counter));
        }
    }
}

pub use tepui_proto::model::prometheus;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_state_counts_once_and_names_are_sanitized() {
        let counters = Counters::default();
        counters.update(
            Some(TaskState::TaskRunning as i32),
            TaskState::TaskFinished as i32,
        );
        counters.update(
            Some(TaskState::TaskFinished as i32),
            TaskState::TaskFinished as i32,
        );
        counters.update(None, TaskState::TaskRunning as i32);
        let mut metrics = BTreeMap::new();
        counters.export(&mut metrics);
        assert_eq!(metrics["slave/tasks_finished"], 1.0);
        assert_eq!(metrics["slave/valid_status_updates"], 3.0);
        let text = prometheus(&metrics);
        assert!(
            text.contains(
                "# TYPE tepui_slave_tasks_finished gauge\ntepui_slave_tasks_finished 1\n"
            ),
            "{text}"
        );
    }
}
