//! Recovery after a restart, the counterpart of Mesos's slave/state.cpp:
//! the checkpointed executor runs are read from the work dir (frameworks,
//! executors, runs, tasks and their update streams), their containers
//! re-attached, and the runs wait for their executors to subscribe again;
//! a run whose container is gone fails its unfinished tasks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tepui_proto::v1::{
    ExecutorInfo, FrameworkInfo, TaskInfo, TaskState, framework_info, task_status,
};

use super::{Executor, ExecutorState, Runner, Termination, lock};
use crate::checkpoint;
use crate::executor_env::mesos_duration;
use crate::paths::{Layout, RunIds};
use crate::status_update::TaskKey;

impl Runner {
    /// After a restart: rebuilds the executor runs of checkpointing
    /// frameworks from the work dir, re-attaches their containers and
    /// waits for their executors to subscribe again; runs whose container
    /// is gone fail their unfinished tasks. Returns (recovered, lost).
    ///
    /// With `strict`, an unreadable checkpoint fails recovery (naming the
    /// file); without, the run it belongs to is skipped with a warning and
    /// its container, no longer known, is destroyed as an orphan.
    ///
    /// Executors are answered 503 from [`Runner::begin_recovery`] until
    /// this returns, so that none is refused as unknown because it came
    /// back before its run was read.
    pub async fn recover(
        self: &Arc<Self>,
        agent_id: &str,
        strict: bool,
    ) -> Result<(usize, usize), RecoveryError> {
        self.begin_recovery();
        let recovered = self.recover_runs(agent_id, strict).await;
        self.recovering.store(false, Ordering::SeqCst);
        recovered
    }

    /// Marks recovery as under way: called before the agent serves, so
    /// that no executor is answered before its run is known again.
    pub fn begin_recovery(&self) {
        self.recovering.store(true, Ordering::SeqCst);
    }

    /// Whether recovery is under way.
    pub fn is_recovering(&self) -> bool {
        self.recovering.load(Ordering::SeqCst)
    }

    async fn recover_runs(
        self: &Arc<Self>,
        agent_id: &str,
        strict: bool,
    ) -> Result<(usize, usize), RecoveryError> {
        self.set_agent_id(agent_id);
        let mut found = Vec::new();
        // Each run's update streams are read before anything is re-attached.
        let (runs, completed) = scan(&self.config.layout, agent_id, strict)?;
        for (framework, executor, container, since) in completed {
            self.schedule_gc(&framework, &executor, &container, since);
        }
        for run in runs {
            let mut failed = None;
            for (_, log) in &run.tasks {
                if let Err(e) = lock(&self.updates).recover(log) {
                    failed = Some(RecoveryError {
                        path: log.clone(),
                        why: e.to_string(),
                    });
                    break;
                }
            }
            match failed {
                Some(e) if strict => return Err(e),
                Some(e) => {
                    tracing::warn!(error = %e, container = %run.container, "skipping an executor run whose checkpoint does not read")
                }
                None => found.push(run),
            }
        }
        let containers: Vec<String> = found.iter().map(|r| r.container.clone()).collect();
        let recovered =
            self.containerizer
                .recover(&containers)
                .await
                .map_err(|e| RecoveryError {
                    path: PathBuf::from("containers"),
                    why: e.to_string(),
                })?;
        let (mut alive, mut lost) = (0, 0);
        let mut waiting = Vec::new();
        for run in found {
            let key = (run.framework_id.clone(), run.info.executor_id.value.clone());
            let mut tasks = HashMap::new();
            for (task, _) in &run.tasks {
                let task_key = TaskKey {
                    framework: run.framework_id.clone(),
                    task: task.task_id.value.clone(),
                };
                let state = lock(&self.updates)
                    .latest_state(&task_key)
                    .unwrap_or(TaskState::TaskStaging as i32);
                tasks.insert(task.task_id.value.clone(), state);
            }
            let sandbox = self
                .config
                .layout
                .sandbox(&RunIds {
                    agent: agent_id,
                    framework: &run.framework_id,
                    executor: &run.info.executor_id.value,
                    container: &run.container,
                })
                .map_err(|e| RecoveryError {
                    path: PathBuf::from(&run.container),
                    why: e.to_string(),
                })?;
            lock(&self.executors).insert(
                key.clone(),
                Executor {
                    framework: run.framework.clone(),
                    info: run.info.clone(),
                    container: run.container.clone(),
                    sandbox,
                    queued: Vec::new(),
                    tasks,
                    infos: run
                        .tasks
                        .iter()
                        .map(|(t, _)| (t.task_id.value.clone(), t.clone()))
                        .collect(),
                    sink: None,
                    state: ExecutorState::Registering,
                    termination: None,
                    image_config: None,
                },
            );
            if recovered.alive.contains(&run.container) {
                alive += 1;
                tracing::info!(framework = %key.0, executor = %key.1, container = %run.container, "executor run recovered; waiting for it to subscribe");
                let partition_aware = run.framework.capabilities.iter().any(|c| {
                    c.r#type == Some(framework_info::capability::Type::PartitionAware as i32)
                });
                waiting.push((key.clone(), run.container.clone(), partition_aware));
                let runner = self.clone();
                tokio::spawn(async move { runner.watch(key, run.container).await });
            } else {
                lost += 1;
                self.executor_failed(
                    &key,
                    task_status::Reason::ExecutorTerminated,
                    "Executor terminated while the agent was down".to_owned(),
                );
            }
        }
        // Executors that do not subscribe again within the re-registration
        // timeout (counted from now, when they can) are destroyed; their
        // tasks are LOST (GONE for partition-aware frameworks), as in Mesos.
        let runner = self.clone();
        tokio::spawn(async move {
            let timeout = runner.config.reregistration_timeout;
            tokio::time::sleep(timeout).await;
            for (key, container, partition_aware) in waiting {
                let state = if partition_aware {
                    TaskState::TaskGone
                } else {
                    TaskState::TaskLost
                };
                let end = Termination {
                    state,
                    reason: task_status::Reason::ExecutorReregistrationTimeout,
                    message: format!(
                        "Executor did not reregister within {}",
                        mesos_duration(timeout)
                    ),
                };
                runner.destroy_unregistered(&key, &container, end).await;
            }
        });
        Ok((alive, lost))
    }
}

/// Recovery could not read the work dir.
#[derive(Debug, thiserror::Error)]
#[error("recovering {path}: {why}")]
pub struct RecoveryError {
    /// The file or directory.
    pub path: PathBuf,
    /// What was wrong.
    pub why: String,
}

/// One checkpointed executor run.
struct CheckpointedRun {
    framework_id: String,
    framework: FrameworkInfo,
    info: ExecutorInfo,
    container: String,
    /// Its tasks and their update logs.
    tasks: Vec<(TaskInfo, PathBuf)>,
}

fn entries(dir: &std::path::Path) -> Vec<(String, PathBuf)> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default()
}

fn required<M: prost::Message + Default>(path: PathBuf) -> Result<M, RecoveryError> {
    match checkpoint::read::<M>(&path) {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(RecoveryError {
            path,
            why: "missing".into(),
        }),
        Err(e) => Err(RecoveryError { path, why: e.why }),
    }
}

/// The executor runs checkpointed under `agent_id` that had not completed.
/// An unreadable checkpoint is an error when `strict`, else its framework,
/// executor or run is skipped with a warning.
fn scan(layout: &Layout, agent_id: &str, strict: bool) -> Result<Scanned, RecoveryError> {
    let bad = |e: crate::paths::BadId| RecoveryError {
        path: layout.work_dir().to_owned(),
        why: e.to_string(),
    };
    let skip = |e: RecoveryError| -> Result<(), RecoveryError> {
        if strict {
            return Err(e);
        }
        tracing::warn!(error = %e, "skipping what this checkpoint describes");
        Ok(())
    };
    let mut runs = Vec::new();
    let mut completed = Vec::new();
    let frameworks = layout.agent_meta(agent_id).map_err(bad)?.join("frameworks");
    for (framework_id, framework_dir) in entries(&frameworks) {
        let framework: FrameworkInfo = match required(framework_dir.join("framework.info")) {
            Ok(f) => f,
            Err(e) => {
                skip(e)?;
                continue;
            }
        };
        for (_, executor_dir) in entries(&framework_dir.join("executors")) {
            let info: ExecutorInfo = match required(executor_dir.join("executor.info")) {
                Ok(i) => i,
                Err(e) => {
                    skip(e)?;
                    continue;
                }
            };
            'runs: for (container, run_dir) in entries(&executor_dir.join("runs")) {
                if let Ok(sentinel) = std::fs::metadata(run_dir.join("executor.sentinel")) {
                    let since = sentinel
                        .modified()
                        .unwrap_or_else(|_| std::time::SystemTime::now());
                    completed.push((
                        framework_id.clone(),
                        info.executor_id.value.clone(),
                        container,
                        since,
                    ));
                    continue;
                }
                let mut tasks = Vec::new();
                for (_, task_dir) in entries(&run_dir.join("tasks")) {
                    match required::<TaskInfo>(task_dir.join("task.info")) {
                        Ok(task) => tasks.push((task, task_dir.join("task.updates"))),
                        Err(e) => {
                            skip(e)?;
                            continue 'runs;
                        }
                    }
                }
                runs.push(CheckpointedRun {
                    framework_id: framework_id.clone(),
                    framework: framework.clone(),
                    info: info.clone(),
                    container,
                    tasks,
                });
            }
        }
    }
    Ok((runs, completed))
}

/// Runs to recover, and finished runs (framework, executor, container,
/// when it ended) to collect.
type Scanned = (
    Vec<CheckpointedRun>,
    Vec<(String, String, String, std::time::SystemTime)>,
);
