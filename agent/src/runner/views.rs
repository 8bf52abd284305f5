//! Read views of the runs for the endpoints, the master link and the
//! metrics (live and recently completed runs, what to report on
//! re-registering, sandboxes and usage), and the garbage collection of
//! finished runs' sandboxes.

use std::path::PathBuf;

use tepui_proto::v1::{AgentId, ExecutorInfo, FrameworkId, FrameworkInfo, TaskInfo, TaskState};

use super::{Executor, ExecutorState, Runner, lock};
use crate::gc::GcConfig;
use crate::metrics::Counters;
use crate::status_update;

/// An executor run as the endpoints show it.
#[derive(Debug, Clone)]
pub struct RunView {
    /// Its framework.
    pub framework: FrameworkInfo,
    /// Its executor.
    pub info: ExecutorInfo,
    /// Its container id.
    pub container: String,
    /// Its sandbox on the host.
    pub sandbox: PathBuf,
    /// Its tasks with their latest states.
    pub tasks: Vec<(TaskInfo, i32)>,
    /// The ids of tasks waiting for the executor to subscribe.
    pub queued: Vec<String>,
    /// Whether its executor is subscribed now.
    pub subscribed: bool,
    /// Where the run is in its life.
    pub state: ExecutorState,
}

impl RunView {
    /// What the run holds now: its executor's resources and those of its
    /// tasks that have not ended.
    pub fn resources_in_use(&self) -> Vec<tepui_proto::v1::Resource> {
        let mut all = self.info.resources.clone();
        for (task, state) in &self.tasks {
            if !status_update::is_terminal(*state) {
                all.extend(task.resources.iter().cloned());
            }
        }
        all
    }
}

impl Executor {
    pub(super) fn view(&self) -> RunView {
        let mut tasks: Vec<(TaskInfo, i32)> = self
            .infos
            .iter()
            .map(|(id, info)| {
                let state = self
                    .tasks
                    .get(id)
                    .copied()
                    .unwrap_or(TaskState::TaskStaging as i32);
                (info.clone(), state)
            })
            .collect();
        tasks.sort_by(|a, b| a.0.task_id.value.cmp(&b.0.task_id.value));
        RunView {
            framework: self.framework.clone(),
            info: self.info.clone(),
            container: self.container.clone(),
            sandbox: self.sandbox.clone(),
            tasks,
            queued: self
                .queued
                .iter()
                .flat_map(|l| l.tasks().iter().map(|t| t.task_id.value.clone()))
                .collect(),
            subscribed: self.sink.as_ref().is_some_and(|s| !s.is_closed()),
            state: self.state,
        }
    }
}

impl Runner {
    /// Removes finished runs older than the age the disk usage allows;
    /// never a running executor's sandbox. Returns what was removed.
    pub fn collect_garbage(&self, config: &GcConfig) -> Vec<PathBuf> {
        let usage = crate::gc::disk_usage(self.config.layout.work_dir()).unwrap_or(0.0);
        let allowed = crate::gc::max_age(config, usage);
        let live: Vec<PathBuf> = lock(&self.executors)
            .values()
            .map(|e| e.sandbox.clone())
            .collect();
        self.gc
            .prune(std::time::SystemTime::now(), allowed, |path| {
                live.iter()
                    .any(|l| l.starts_with(path) || path.starts_with(l))
            })
    }

    /// What this agent runs, for re-registering: the frameworks, executors
    /// and tasks of its live executor runs.
    pub fn report(
        &self,
    ) -> (
        Vec<FrameworkInfo>,
        Vec<ExecutorInfo>,
        Vec<tepui_proto::v1::Task>,
    ) {
        let agent_id = self.agent_id();
        let executors = lock(&self.executors);
        let mut frameworks: Vec<FrameworkInfo> = Vec::new();
        let mut infos = Vec::new();
        let mut tasks = Vec::new();
        for ((framework_id, _), run) in executors.iter() {
            if !frameworks.iter().any(|f| f.id == run.framework.id) {
                frameworks.push(run.framework.clone());
            }
            infos.push(run.info.clone());
            for (task_id, state) in &run.tasks {
                let Some(info) = run.infos.get(task_id) else {
                    continue;
                };
                tasks.push(tepui_proto::v1::Task {
                    name: info.name.clone(),
                    task_id: info.task_id.clone(),
                    framework_id: FrameworkId {
                        value: framework_id.clone(),
                    },
                    executor_id: Some(run.info.executor_id.clone()),
                    agent_id: AgentId {
                        value: agent_id.clone(),
                    },
                    state: *state,
                    resources: info.resources.clone(),
                    ..Default::default()
                });
            }
        }
        (frameworks, infos, tasks)
    }

    /// How many executor runs are live now.
    pub fn live_runs(&self) -> usize {
        lock(&self.executors).len()
    }

    /// The executor runs live now.
    pub fn runs(&self) -> Vec<RunView> {
        lock(&self.executors).values().map(Executor::view).collect()
    }

    /// The latest ended executor runs, oldest first.
    pub fn completed_runs(&self) -> Vec<RunView> {
        lock(&self.completed).iter().cloned().collect()
    }

    /// The counters for the metrics endpoints.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The id the master gave this agent (empty before registration).
    pub fn id(&self) -> String {
        self.agent_id()
    }

    /// The pid of a container's first process (its executor).
    pub fn container_pid(&self, container: &str) -> Option<i32> {
        self.containerizer.pid(container)
    }

    /// The resource usage of a container.
    pub async fn usage(&self, container: &str) -> Option<tepui_containerizer::Usage> {
        self.containerizer.usage(container).await.ok()
    }

    /// The sandbox of the executor run in `container`, live or one of the
    /// latest completed runs.
    pub fn container_sandbox(&self, container: &str) -> Option<PathBuf> {
        if let Some(run) = lock(&self.executors)
            .values()
            .find(|e| e.container == container)
        {
            return Some(run.sandbox.clone());
        }
        lock(&self.completed)
            .iter()
            .find(|r| r.container == container)
            .map(|r| r.sandbox.clone())
    }

    /// Whether an executor run lives in `container` now.
    pub fn is_live(&self, container: &str) -> bool {
        lock(&self.executors)
            .values()
            .any(|e| e.container == container)
    }

    /// The sandbox of a task's executor run, while it runs.
    pub fn sandbox_of(&self, framework: &str, executor: &str) -> Option<PathBuf> {
        lock(&self.executors)
            .get(&(framework.to_owned(), executor.to_owned()))
            .map(|e| e.sandbox.clone())
    }
}
