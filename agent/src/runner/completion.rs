//! When an ended executor run is over for good: only once every update
//! of its tasks is checkpointed and acknowledged (or its framework is shut
//! down) is the
//! run marked completed (`executor.sentinel`) and its sandbox and
//! checkpoints scheduled for removal. Until then a restarted agent
//! recovers the run's update streams and forwards what is still
//! unacknowledged, as Mesos writes the sentinel in removeExecutor, after
//! the acknowledgements; marking it at once lost a terminal update that
//! an agent crash caught between the executor's end and the ack.

use super::{Runner, lock};
use crate::status_update::TaskKey;

/// An ended run whose tasks' updates may still await acknowledgement.
#[derive(Debug, Clone)]
pub(super) struct EndedRun {
    pub(super) framework: String,
    pub(super) executor: String,
    pub(super) container: String,
    /// Whether its framework checkpoints (only then is there a sentinel).
    pub(super) checkpoint: bool,
    /// Its tasks' ids.
    pub(super) tasks: Vec<String>,
}

impl Runner {
    /// Completes `run` now if nothing of it awaits acknowledgement, else
    /// when the last acknowledgement arrives.
    pub(super) fn complete_when_acknowledged(&self, run: EndedRun) {
        if self.run_acknowledged(&run) {
            self.complete_run(&run);
        } else {
            tracing::debug!(framework = %run.framework, executor = %run.executor, "ended run waits for its acknowledgements");
            lock(&self.awaiting_acks).push(run);
        }
    }

    /// Completes the ended runs of `framework` that nothing awaits any
    /// more (after an acknowledgement, or its shutdown).
    pub(super) fn complete_acknowledged_runs(&self, framework: &str) {
        let waiting: Vec<EndedRun> = lock(&self.awaiting_acks)
            .iter()
            .filter(|r| r.framework == framework)
            .cloned()
            .collect();
        for run in waiting {
            if self.run_acknowledged(&run) {
                lock(&self.awaiting_acks).retain(|r| r.container != run.container);
                self.complete_run(&run);
            }
        }
    }

    /// Whether no update of `run`'s tasks awaits acknowledgement (all do
    /// not, once its framework is shut down: nobody will acknowledge).
    fn run_acknowledged(&self, run: &EndedRun) -> bool {
        if lock(&self.shut_down_frameworks).contains(&run.framework) {
            return true;
        }
        if run
            .tasks
            .iter()
            .any(|task| self.is_unrecorded(&run.framework, task))
        {
            return false;
        }
        let updates = lock(&self.updates);
        run.tasks.iter().all(|task| {
            !updates.is_pending(&TaskKey {
                framework: run.framework.clone(),
                task: task.clone(),
            })
        })
    }

    fn complete_run(&self, run: &EndedRun) {
        if run.checkpoint {
            self.mark_completed(&run.framework, &run.executor, &run.container);
        }
        self.schedule_gc(
            &run.framework,
            &run.executor,
            &run.container,
            std::time::SystemTime::now(),
        );
    }
}
