//! Taking tasks: a task or task group is checked, checkpointed when its
//! framework checkpoints, and queued for its executor; the first task of
//! an executor starts its run (see `start`), later ones go to the running
//! executor or wait in its queue until it subscribes.

use std::sync::Arc;

use tepui_proto::v1::executor::Event;
use tepui_proto::v1::{
    ExecutorId, ExecutorInfo, FrameworkInfo, TaskGroupInfo, TaskInfo, TaskState, task_status,
};

use super::start::Requested;
use super::{Executor, ExecutorKey, ExecutorState, Launch, RunError, Runner, hex, lock};
use crate::checkpoint;
use crate::executor_api::EventSink;
use crate::paths::RunIds;

/// The ContainerInfo of an executor run: its executor's, or for a command
/// task (the built-in executor), the task's.
fn container_of<'a>(
    info: &'a ExecutorInfo,
    launch: &'a Launch,
) -> Option<&'a tepui_proto::v1::ContainerInfo> {
    match (&info.container, launch) {
        (Some(container), _) => Some(container),
        (None, Launch::Task(task)) if task.executor.is_none() => task.container.as_ref(),
        _ => None,
    }
}

/// The image an executor run starts from (see [`container_of`]).
fn image_of(
    info: &ExecutorInfo,
    launch: &Launch,
) -> Result<Option<tepui_proto::v1::Image>, String> {
    let Some(container) = container_of(info, launch) else {
        return Ok(None);
    };
    use tepui_proto::v1::container_info::Type;
    match Type::try_from(container.r#type) {
        Ok(Type::Mesos) => Ok(container.mesos.as_ref().and_then(|m| m.image.clone())),
        Ok(Type::Docker) => Err(
            "ContainerInfo type DOCKER (the Docker containerizer) is not supported; use type MESOS with mesos.image"
                .into(),
        ),
        _ => Err("an unknown ContainerInfo type".into()),
    }
}

impl Runner {
    /// Takes a task of `framework`: starts its executor run and queues it.
    pub fn run_task(
        self: &Arc<Self>,
        framework: FrameworkInfo,
        task: TaskInfo,
    ) -> Result<(), RunError> {
        let fail = |why: &str| RunError {
            task: task.task_id.value.clone(),
            why: why.to_owned(),
            agent_failed: false,
        };
        let info = match (&task.executor, &task.command) {
            (Some(executor), None) => executor.clone(),
            (None, Some(_)) => ExecutorInfo {
                executor_id: ExecutorId {
                    value: task.task_id.value.clone(),
                },
                framework_id: framework.id.clone(),
                name: Some(format!("Command Executor (Task: {})", task.task_id.value)),
                ..Default::default()
            },
            (Some(_), Some(_)) => {
                return Err(fail("a task has a command or an executor, not both"));
            }
            (None, None) => return Err(fail("a task needs a command or an executor")),
        };
        if task.executor.is_some() && task.container.is_some() {
            return Err(fail(
                "a task of a custom executor cannot have its own container; give the executor's container the image",
            ));
        }
        self.take(framework, info, Launch::Task(Box::new(task)))
    }

    /// Takes a task group of `framework` for `executor` (the built-in
    /// executor when it has no command, as Mesos's default executor).
    pub fn run_task_group(
        self: &Arc<Self>,
        framework: FrameworkInfo,
        executor: ExecutorInfo,
        group: TaskGroupInfo,
    ) -> Result<(), RunError> {
        let first = group
            .tasks
            .first()
            .map(|t| t.task_id.value.clone())
            .unwrap_or_default();
        let fail = |why: &str| RunError {
            task: first.clone(),
            why: why.to_owned(),
            agent_failed: false,
        };
        if group.tasks.is_empty() {
            return Err(fail("a task group needs at least one task"));
        }
        for task in &group.tasks {
            if task.executor.is_some() {
                return Err(fail(
                    "a task of a group must not name an executor; the group's executor runs it",
                ));
            }
            if task.command.is_none() {
                return Err(fail("every task of a group needs a command"));
            }
            if task.container.is_some() {
                return Err(fail(
                    "a task of a group cannot have its own container here; give the executor's container the image",
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        if !group.tasks.iter().all(|t| seen.insert(&t.task_id.value)) {
            return Err(fail("a task group names a task id twice"));
        }
        self.take(framework, executor, Launch::Group(group))
    }

    /// Queues a launch for its executor, starting the executor run when
    /// it is not running yet.
    fn take(
        self: &Arc<Self>,
        framework: FrameworkInfo,
        info: ExecutorInfo,
        launch: Launch,
    ) -> Result<(), RunError> {
        let tasks = launch.tasks().to_vec();
        let fail = |why: &str| RunError {
            task: tasks
                .first()
                .map(|t| t.task_id.value.clone())
                .unwrap_or_default(),
            why: why.to_owned(),
            agent_failed: false,
        };
        let framework_id = framework
            .id
            .clone()
            .ok_or_else(|| fail("the framework has no id"))?
            .value;
        // The agent's own failures (its disk), not the task's.
        let agent_fail = |why: &str| RunError {
            agent_failed: true,
            ..fail(why)
        };
        let key = (framework_id.clone(), info.executor_id.value.clone());
        let mut executors = lock(&self.executors);
        if let Some(running) = executors.get_mut(&key) {
            // A running executor takes further tasks (custom executors, groups).
            if tasks
                .iter()
                .any(|t| running.tasks.contains_key(&t.task_id.value))
            {
                return Err(fail("a task of this id already runs here"));
            }
            if running.framework.checkpoint.unwrap_or(false) {
                let agent_id = self.agent_id();
                let ids = RunIds {
                    agent: &agent_id,
                    framework: &framework_id,
                    executor: &info.executor_id.value,
                    container: &running.container,
                };
                self.checkpoint_run(&ids, &running.framework, &running.info, &tasks)
                    .map_err(|e| agent_fail(&e))?;
            }
            for task in &tasks {
                running
                    .tasks
                    .insert(task.task_id.value.clone(), TaskState::TaskStaging as i32);
                running
                    .infos
                    .insert(task.task_id.value.clone(), task.clone());
            }
            let limits = self.limits_of(running);
            let container = running.container.clone();
            let send = running
                .sink
                .clone()
                .map(|sink| (sink, running.event(launch.clone(), self.config.switch_user)));
            if send.is_none() {
                running.queued.push(launch);
            }
            drop(executors);
            let runner = self.clone();
            tokio::spawn(async move {
                if let Err(e) = runner.containerizer.update(&container, limits).await {
                    tracing::warn!(%container, error = %e, "updating an executor's limits for new tasks");
                }
                if let Some((sink, event)) = send {
                    runner.send_launch(&key, sink, event).await;
                }
            });
            return Ok(());
        }
        let container = hex(&tepui_driver::executor::random_uuid());
        let agent_id = self.agent_id();
        let ids = RunIds {
            agent: &agent_id,
            framework: &framework_id,
            executor: &info.executor_id.value,
            container: &container,
        };
        let sandbox = self
            .config
            .layout
            .sandbox(&ids)
            .map_err(|e| fail(&e.to_string()))?;
        std::fs::create_dir_all(&sandbox)
            .map_err(|e| agent_fail(&format!("{}: {e}", sandbox.display())))?;
        if framework.checkpoint.unwrap_or(false) {
            self.checkpoint_run(&ids, &framework, &info, &tasks)
                .map_err(|e| agent_fail(&e.to_string()))?;
        }
        let image = match image_of(&info, &launch) {
            Ok(image) => image,
            Err(why) => return Err(fail(&why)),
        };
        let rlimits = crate::rlimit_info::rlimits(
            container_of(&info, &launch).and_then(|c| c.rlimit_info.as_ref()),
            crate::rlimit_info::own_hard,
        )
        .map_err(|why| fail(&why))?;
        let linux_info = container_of(&info, &launch).and_then(|c| c.linux_info.as_ref());
        let isolation = self
            .config
            .linux
            .resolve(linux_info)
            .map_err(|why| fail(&why))?;
        let run = Executor {
            framework,
            info: info.clone(),
            container: container.clone(),
            sandbox: sandbox.clone(),
            queued: vec![launch],
            tasks: tasks
                .iter()
                .map(|t| (t.task_id.value.clone(), TaskState::TaskStaging as i32))
                .collect(),
            infos: tasks
                .iter()
                .map(|t| (t.task_id.value.clone(), t.clone()))
                .collect(),
            sink: None,
            state: ExecutorState::Registering,
            termination: None,
            image_config: None,
        };
        executors.insert(key.clone(), run);
        drop(executors);
        tracing::info!(framework = %framework_id, executor = %info.executor_id.value, %container, tasks = tasks.len(), "starting an executor");
        let runner = self.clone();
        tokio::spawn(async move {
            runner
                .start_executor(
                    key,
                    info,
                    tasks,
                    Requested {
                        image,
                        isolation,
                        rlimits,
                    },
                    container,
                    sandbox,
                )
                .await
        });
        Ok(())
    }

    /// Sends a launch to a subscribed executor, or fails its tasks when
    /// their command cannot be formed for the image.
    pub(super) async fn send_launch(
        &self,
        key: &ExecutorKey,
        sink: EventSink,
        event: Result<Event, (Vec<String>, String)>,
    ) {
        match event {
            Ok(event) => {
                sink.send(&event).await;
            }
            Err((tasks, why)) => {
                for task in tasks {
                    self.fail_task(key, &task, task_status::Reason::ContainerLaunchFailed, &why);
                }
            }
        }
    }

    /// Checkpoints a new executor run: framework.info, executor.info and
    /// its first tasks' task.info, so a restarted agent can recover it.
    fn checkpoint_run(
        &self,
        ids: &RunIds<'_>,
        framework: &FrameworkInfo,
        info: &ExecutorInfo,
        tasks: &[TaskInfo],
    ) -> Result<(), String> {
        let layout = &self.config.layout;
        let framework_dir = layout
            .framework_meta(ids.agent, ids.framework)
            .map_err(|e| e.to_string())?;
        checkpoint::write(&framework_dir.join("framework.info"), framework)
            .map_err(|e| e.to_string())?;
        let executor_dir = layout
            .executor_meta(ids.agent, ids.framework, ids.executor)
            .map_err(|e| e.to_string())?;
        checkpoint::write(&executor_dir.join("executor.info"), info).map_err(|e| e.to_string())?;
        for task in tasks {
            let task_dir = layout
                .task_meta(ids, &task.task_id.value)
                .map_err(|e| e.to_string())?;
            checkpoint::write(&task_dir.join("task.info"), task).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
