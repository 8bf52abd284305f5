//! Stopping: a task killed (KILL to its executor, or at once while it is
//! still queued), an executor or a whole framework shut down (SHUTDOWN,
//! then its container destroyed after the grace period), and every run
//! destroyed for `--recover=cleanup`.

use std::sync::Arc;
use std::time::Duration;

use tepui_proto::v1::executor::{Event, event};
use tepui_proto::v1::{TaskState, task_status};

use super::{Runner, agent_status, lock};
use crate::executor_api::EventSink;

impl Runner {
    /// Kills a task: its executor is sent KILL (with the kill policy, if
    /// given); a task still queued for an executor that has not subscribed
    /// ends at once as TASK_KILLED from the agent.
    pub fn kill_task(
        &self,
        framework: &str,
        task: &str,
        kill_policy: Option<tepui_proto::v1::KillPolicy>,
    ) {
        let mut executors = lock(&self.executors);
        let Some((key, run)) = executors
            .iter_mut()
            .find(|((fw, _), run)| fw == framework && run.tasks.contains_key(task))
        else {
            drop(executors);
            tracing::warn!(%framework, %task, "kill of an unknown task");
            return;
        };
        let key = key.clone();
        let queued = run
            .queued
            .iter()
            .position(|l| l.tasks().iter().any(|t| t.task_id.value == task));
        if let Some(position) = queued {
            // A queued group goes as a whole, as a launched one would.
            let launch = run.queued.remove(position);
            let killed: Vec<String> = launch
                .tasks()
                .iter()
                .map(|t| t.task_id.value.clone())
                .collect();
            for id in &killed {
                run.tasks.insert(id.clone(), TaskState::TaskKilled as i32);
            }
            let (framework_info, container) = (run.framework.clone(), run.container.clone());
            drop(executors);
            for id in killed {
                let status = agent_status(
                    &id,
                    TaskState::TaskKilled,
                    task_status::Reason::TaskKilledDuringLaunch,
                    "killed before its executor took it",
                );
                self.take_agent_update(&key.0, &framework_info, &container, &key.1, status);
            }
            return;
        }
        let Some(sink) = run.sink.clone() else {
            return;
        };
        drop(executors);
        let kill = Event {
            r#type: Some(event::Type::Kill as i32),
            kill: Some(event::Kill {
                task_id: tepui_proto::v1::TaskId {
                    value: task.to_owned(),
                },
                kill_policy,
            }),
            ..Default::default()
        };
        tokio::spawn(async move {
            sink.send(&kill).await;
        });
    }

    /// Kills a task of whichever framework runs it (the master names only
    /// the task when it does not know it).
    pub fn kill_unknown_task(&self, task: &str) {
        let framework = lock(&self.executors)
            .iter()
            .find(|(_, run)| run.tasks.contains_key(task))
            .map(|((fw, _), _)| fw.clone());
        if let Some(framework) = framework {
            self.kill_task(&framework, task, None);
        }
    }

    /// Shuts down every executor of a framework (SHUTDOWN, then the
    /// container is destroyed after the shutdown grace period).
    pub fn shutdown_framework(self: &Arc<Self>, framework: &str) {
        lock(&self.shut_down_frameworks).insert(framework.to_owned());
        self.complete_acknowledged_runs(framework);
        let runs: Vec<(Option<EventSink>, String)> = lock(&self.executors)
            .iter_mut()
            .filter(|((fw, _), _)| fw == framework)
            .map(|(_, run)| run.terminate())
            .collect();
        for (sink, container) in runs {
            self.shutdown_run(sink, container);
        }
    }

    /// Shuts down one executor as [`Runner::shutdown_framework`] does.
    pub fn shutdown_executor(self: &Arc<Self>, framework: &str, executor: &str) {
        let run = lock(&self.executors)
            .get_mut(&(framework.to_owned(), executor.to_owned()))
            .map(|run| run.terminate());
        match run {
            Some((sink, container)) => self.shutdown_run(sink, container),
            None => tracing::warn!(%framework, %executor, "shutdown of an unknown executor"),
        }
    }

    /// Sends SHUTDOWN to a run's executor, then destroys its container
    /// when it has not ended within the shutdown grace period.
    fn shutdown_run(&self, sink: Option<EventSink>, container: String) {
        let shutdown = self.shutdown(sink, container);
        tokio::spawn(shutdown);
    }

    /// What [`Runner::shutdown_run`] runs, for a caller that must send
    /// other events to the executor first.
    pub(super) fn shutdown(
        &self,
        sink: Option<EventSink>,
        container: String,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let containerizer = self.containerizer.clone();
        let grace = self.config.shutdown_grace_period;
        async move {
            if let Some(sink) = sink {
                let shutdown = Event {
                    r#type: Some(event::Type::Shutdown as i32),
                    ..Default::default()
                };
                sink.send(&shutdown).await;
                if tokio::time::timeout(grace, containerizer.wait(&container))
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            if let Err(e) = containerizer.destroy(&container).await {
                tracing::warn!(%container, error = %e, "destroying an executor at shutdown");
            }
        }
    }

    /// Destroys every executor run (`--recover=cleanup`) and waits until
    /// their tasks have their terminal updates; returns how many there were.
    pub async fn destroy_all(&self) -> usize {
        let containers: Vec<String> = lock(&self.executors)
            .values_mut()
            .map(|e| e.terminate().1)
            .collect();
        for container in &containers {
            if let Err(e) = self.containerizer.destroy(container).await {
                tracing::warn!(%container, error = %e, "destroying an executor at cleanup");
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !lock(&self.executors).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        containers.len()
    }
}
