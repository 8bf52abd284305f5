//! The status update manager: every update of a task is checkpointed
//! before it is forwarded, and forwarded again with backoff until the
//! scheduler acknowledges it. One stream per task delivers in order: the
//! next update goes out only once the one before is acknowledged, so the
//! terminal update is always the last. Duplicates (by uuid) are dropped.
//!
//! This is the state machine alone; the agent drives it (forwarding what
//! it returns, and calling [`Manager::due`] on a timer).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tepui_proto::internal::status_update_record::Type as RecordType;
use tepui_proto::internal::{StatusUpdate, StatusUpdateRecord};

use crate::checkpoint::{self, CheckpointError, Log};

/// The first wait before forwarding an unacknowledged update again.
pub const RETRY_MIN: Duration = Duration::from_secs(10);
/// The longest wait between forwards.
pub const RETRY_MAX: Duration = Duration::from_secs(600);

/// A task, by framework and task id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskKey {
    /// The framework.
    pub framework: String,
    /// The task.
    pub task: String,
}

impl TaskKey {
    /// The key of the task an update is about.
    pub fn of(update: &StatusUpdate) -> Self {
        Self {
            framework: update.framework_id.value.clone(),
            task: update.status.task_id.value.clone(),
        }
    }
}

/// An update or acknowledgement that cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Updates need a uuid to be acknowledged by.
    #[error("task {task}: a status update without a uuid")]
    NoUuid {
        /// The task.
        task: String,
    },
    /// The task has ended: an update after its terminal one is dropped
    /// (as a Mesos agent drops it), so that nothing follows the terminal
    /// update and the task's latest state never goes back.
    #[error("task {task} is already terminated with state {state}")]
    Terminated {
        /// The task.
        task: String,
        /// Its terminal state's name.
        state: String,
    },
    /// No stream for the task.
    #[error("task {task} of framework {framework}: no status update stream")]
    Unknown {
        /// The framework.
        framework: String,
        /// The task.
        task: String,
    },
    /// The checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// What an acknowledgement did.
#[derive(Debug, Default, PartialEq)]
pub struct Acknowledged {
    /// Whether it matched the update awaiting acknowledgement (a stale or
    /// duplicate acknowledgement changes nothing).
    pub matched: bool,
    /// The next update to forward, if one was waiting.
    pub next: Option<StatusUpdate>,
    /// Whether the stream has ended (its terminal update acknowledged).
    pub ended: bool,
}

struct Stream {
    /// Updates not yet acknowledged, oldest (the one forwarded) first.
    pending: VecDeque<StatusUpdate>,
    /// uuids of every update taken, for duplicate detection.
    seen: HashSet<Vec<u8>>,
    /// The checkpoint log, when the framework checkpoints.
    log: Option<Log>,
    /// Whether the terminal update was acknowledged.
    ended: bool,
    /// The state of the newest update taken.
    latest: Option<i32>,
    /// When the head is due again, and the wait after that.
    retry_at: Instant,
    backoff: Duration,
}

impl Stream {
    fn new(log: Option<Log>) -> Self {
        Self {
            pending: VecDeque::new(),
            seen: HashSet::new(),
            log,
            ended: false,
            latest: None,
            retry_at: Instant::now() + RETRY_MIN,
            backoff: RETRY_MIN,
        }
    }

    fn record(&mut self, record: &StatusUpdateRecord) -> Result<(), CheckpointError> {
        match &mut self.log {
            Some(log) => log.append(record),
            None => Ok(()),
        }
    }

    /// The head was (re)forwarded now.
    fn forwarded(&mut self, now: Instant) {
        self.retry_at = now + self.backoff;
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
    }
}

/// Whether `state` ends a task.
pub fn is_terminal(state: i32) -> bool {
    tepui_proto::model::is_terminal(state)
}

/// The status update streams of all the agent's tasks.
#[derive(Default)]
pub struct Manager {
    streams: HashMap<TaskKey, Stream>,
}

impl Manager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `update`, checkpointing it to `log` first when given (the
    /// task's task.updates file). Returns the update to forward now: this
    /// one if the stream was idle, else none (it waits its turn).
    pub fn update(
        &mut self,
        update: StatusUpdate,
        log: Option<&Path>,
    ) -> Result<Option<StatusUpdate>, UpdateError> {
        let key = TaskKey::of(&update);
        let uuid = update
            .status
            .uuid
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| UpdateError::NoUuid {
                task: key.task.clone(),
            })?;
        let stream = match self.streams.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Stream::new(log.map(Log::open).transpose()?))
            }
        };
        if stream.seen.contains(&uuid) {
            tracing::debug!(task = %key.task, "duplicate status update dropped");
            return Ok(None);
        }
        if let Some(latest) = stream.latest.filter(|s| is_terminal(*s)) {
            return Err(UpdateError::Terminated {
                task: key.task,
                state: tepui_proto::model::state_name(latest),
            });
        }
        stream.record(&StatusUpdateRecord {
            r#type: RecordType::Update as i32,
            update: Some(update.clone()),
            uuid: None,
        })?;
        stream.seen.insert(uuid);
        stream.latest = Some(update.status.state);
        stream.pending.push_back(update.clone());
        if stream.pending.len() == 1 {
            stream.backoff = RETRY_MIN;
            stream.forwarded(Instant::now());
            return Ok(Some(update));
        }
        Ok(None)
    }

    /// Takes the scheduler's acknowledgement of `uuid` for a task.
    pub fn acknowledge(&mut self, key: &TaskKey, uuid: &[u8]) -> Result<Acknowledged, UpdateError> {
        let stream = self
            .streams
            .get_mut(key)
            .ok_or_else(|| UpdateError::Unknown {
                framework: key.framework.clone(),
                task: key.task.clone(),
            })?;
        let matches_head = stream
            .pending
            .front()
            .and_then(|u| u.status.uuid.as_deref())
            .is_some_and(|u| u == uuid);
        if !matches_head {
            tracing::warn!(task = %key.task, "acknowledgement of an update not awaiting one; ignored");
            return Ok(Acknowledged::default());
        }
        stream.record(&StatusUpdateRecord {
            r#type: RecordType::Ack as i32,
            update: None,
            uuid: Some(uuid.to_vec()),
        })?;
        let acked = stream.pending.pop_front();
        let ended = acked.is_some_and(|u| is_terminal(u.status.state));
        stream.ended = ended;
        let next = stream.pending.front().cloned();
        if next.is_some() {
            stream.backoff = RETRY_MIN;
            stream.forwarded(Instant::now());
        }
        // An ended stream stays (with its uuids, to drop late duplicates)
        // until the agent forgets the task.
        Ok(Acknowledged {
            matched: true,
            next,
            ended,
        })
    }

    /// The updates due to be forwarded again at `now` (each stream's head
    /// unacknowledged past its backoff); their backoff doubles.
    pub fn due(&mut self, now: Instant) -> Vec<StatusUpdate> {
        let mut out = Vec::new();
        for stream in self.streams.values_mut() {
            if stream.retry_at <= now
                && let Some(head) = stream.pending.front().cloned()
            {
                stream.forwarded(now);
                out.push(head);
            }
        }
        out
    }

    /// The update each stream awaits acknowledgement for (to forward again
    /// at once after re-registering with a master).
    pub fn heads(&self) -> Vec<StatusUpdate> {
        self.streams
            .values()
            .filter_map(|s| s.pending.front().cloned())
            .collect()
    }

    /// Whether a task still has updates awaiting acknowledgement.
    pub fn is_pending(&self, key: &TaskKey) -> bool {
        self.streams.get(key).is_some_and(|s| !s.pending.is_empty())
    }

    /// Rebuilds a task's stream from its checkpoint log after a restart;
    /// returns the update to forward again, if one awaits acknowledgement.
    /// A log that does not read is an error naming it.
    pub fn recover(&mut self, log: &Path) -> Result<Option<StatusUpdate>, UpdateError> {
        let records: Vec<StatusUpdateRecord> = checkpoint::read_log(log)?;
        let mut stream = Stream::new(None);
        let mut key = None;
        for record in records {
            match RecordType::try_from(record.r#type) {
                Ok(RecordType::Update) => {
                    let Some(update) = record.update else {
                        return Err(corrupt(log, "an UPDATE record without its update"));
                    };
                    key.get_or_insert_with(|| TaskKey::of(&update));
                    if let Some(uuid) = update.status.uuid.clone() {
                        stream.seen.insert(uuid);
                    }
                    stream.latest = Some(update.status.state);
                    stream.pending.push_back(update);
                }
                Ok(RecordType::Ack) => {
                    let head = stream.pending.pop_front();
                    let matches = head
                        .as_ref()
                        .and_then(|u| u.status.uuid.as_deref())
                        .is_some_and(|u| Some(u) == record.uuid.as_deref());
                    if !matches {
                        return Err(corrupt(log, "an ACK that matches no pending update"));
                    }
                    stream.ended = head.is_some_and(|u| is_terminal(u.status.state));
                }
                _ => return Err(corrupt(log, "a record of unknown type")),
            }
        }
        let Some(key) = key else {
            return Ok(None);
        };
        stream.log = Some(Log::open(log)?);
        let head = stream.pending.front().cloned();
        if head.is_some() {
            stream.forwarded(Instant::now());
        }
        self.streams.insert(key, stream);
        Ok(head)
    }

    /// The state of the newest update taken for a task.
    pub fn latest_state(&self, key: &TaskKey) -> Option<i32> {
        self.streams.get(key).and_then(|s| s.latest)
    }

    /// Forgets a task's stream (its framework was shut down).
    pub fn forget(&mut self, key: &TaskKey) {
        self.streams.remove(key);
    }
}

fn corrupt(path: &Path, why: &str) -> UpdateError {
    UpdateError::Checkpoint(CheckpointError {
        path: PathBuf::from(path),
        why: why.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tepui_proto::v1::TaskState;
    use tepui_proto::v1::{FrameworkId, TaskId, TaskStatus};

    fn update(task: &str, state: TaskState, uuid: u8) -> StatusUpdate {
        StatusUpdate {
            framework_id: FrameworkId { value: "fw".into() },
            status: TaskStatus {
                task_id: TaskId { value: task.into() },
                state: state as i32,
                uuid: Some(vec![uuid]),
                ..Default::default()
            },
            latest_state: None,
        }
    }

    fn key(task: &str) -> TaskKey {
        TaskKey {
            framework: "fw".into(),
            task: task.into(),
        }
    }

    #[test]
    fn delivers_in_order_one_at_a_time_and_ends_on_the_terminal_ack() {
        let mut m = Manager::new();
        assert_eq!(
            m.update(update("t", TaskState::TaskStarting, 1), None)
                .unwrap(),
            Some(update("t", TaskState::TaskStarting, 1))
        );
        assert_eq!(
            m.update(update("t", TaskState::TaskRunning, 2), None)
                .unwrap(),
            None
        );
        assert_eq!(
            m.update(update("t", TaskState::TaskFinished, 3), None)
                .unwrap(),
            None
        );
        // A duplicate from the executor is dropped.
        assert_eq!(
            m.update(update("t", TaskState::TaskRunning, 2), None)
                .unwrap(),
            None
        );
        // A stale acknowledgement changes nothing.
        assert!(!m.acknowledge(&key("t"), &[2]).unwrap().matched);
        let a = m.acknowledge(&key("t"), &[1]).unwrap();
        assert_eq!(a.next, Some(update("t", TaskState::TaskRunning, 2)));
        let a = m.acknowledge(&key("t"), &[2]).unwrap();
        assert_eq!(a.next, Some(update("t", TaskState::TaskFinished, 3)));
        let a = m.acknowledge(&key("t"), &[3]).unwrap();
        assert!(a.ended && a.next.is_none());
        assert!(!m.is_pending(&key("t")));
        // After the end: a late duplicate is dropped, anything new refused.
        assert_eq!(
            m.update(update("t", TaskState::TaskRunning, 2), None)
                .unwrap(),
            None
        );
        assert!(matches!(
            m.update(update("t", TaskState::TaskRunning, 9), None),
            Err(UpdateError::Terminated { .. })
        ));
        assert!(matches!(
            m.update(
                StatusUpdate {
                    status: TaskStatus {
                        uuid: None,
                        ..update("u", TaskState::TaskRunning, 0).status
                    },
                    ..update("u", TaskState::TaskRunning, 0)
                },
                None
            ),
            Err(UpdateError::NoUuid { .. })
        ));
    }

    #[test]
    fn nothing_is_taken_after_the_terminal_update_even_before_its_acknowledgement() {
        // An executor whose RUNNING the agent could not checkpoint (a full
        // disk) sent its FINISHED first and the RUNNING again after it:
        // the RUNNING is dropped, never forwarded after the FINISHED, and
        // the task's latest state stays FINISHED.
        let mut m = Manager::new();
        m.update(update("t", TaskState::TaskStarting, 1), None)
            .unwrap();
        m.update(update("t", TaskState::TaskFinished, 3), None)
            .unwrap();
        let e = m
            .update(update("t", TaskState::TaskRunning, 2), None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "task t is already terminated with state TASK_FINISHED"
        );
        assert_eq!(
            m.latest_state(&key("t")),
            Some(TaskState::TaskFinished as i32)
        );
        let a = m.acknowledge(&key("t"), &[1]).unwrap();
        assert_eq!(a.next, Some(update("t", TaskState::TaskFinished, 3)));
        let a = m.acknowledge(&key("t"), &[3]).unwrap();
        assert!(a.ended && a.next.is_none());
        // A terminal update's duplicate is still only a duplicate.
        assert_eq!(
            m.update(update("t", TaskState::TaskFinished, 3), None)
                .unwrap(),
            None
        );
    }

    #[test]
    fn unacknowledged_heads_come_due_with_doubling_backoff() {
        let mut m = Manager::new();
        m.update(update("t", TaskState::TaskRunning, 1), None)
            .unwrap();
        let now = Instant::now();
        assert!(m.due(now).is_empty());
        assert_eq!(m.due(now + RETRY_MIN + Duration::from_millis(10)).len(), 1);
        // Next wait is twice as long.
        assert!(
            m.due(now + RETRY_MIN * 2 + Duration::from_millis(20))
                .is_empty()
        );
        assert_eq!(m.due(now + RETRY_MIN * 4).len(), 1);
    }

    #[test]
    fn a_restart_recovers_what_awaits_acknowledgement_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t/task.updates");
        let mut m = Manager::new();
        m.update(update("t", TaskState::TaskRunning, 1), Some(&log))
            .unwrap();
        m.update(update("t", TaskState::TaskFinished, 2), Some(&log))
            .unwrap();
        m.acknowledge(&key("t"), &[1]).unwrap();
        drop(m);

        let mut restarted = Manager::new();
        assert_eq!(
            restarted.recover(&log).unwrap(),
            Some(update("t", TaskState::TaskFinished, 2))
        );
        // The executor re-sends what it had not seen acknowledged: a duplicate.
        assert_eq!(
            restarted
                .update(update("t", TaskState::TaskRunning, 1), None)
                .unwrap(),
            None
        );
        assert!(restarted.acknowledge(&key("t"), &[2]).unwrap().ended);
        // After the terminal acknowledgement, recovery finds nothing to
        // forward, and still knows the uuids.
        let mut again = Manager::new();
        assert_eq!(again.recover(&log).unwrap(), None);
        assert_eq!(
            again
                .update(update("t", TaskState::TaskFinished, 2), None)
                .unwrap(),
            None
        );

        std::fs::write(&log, b"3\nxyz").unwrap();
        let e = Manager::new().recover(&log).unwrap_err().to_string();
        assert!(e.contains("task.updates"), "{e}");
    }
}
