//! Mesos's JSON models of an agent's tasks and executors (its
//! `common/http.cpp`), as `/state` shows them.

use serde_json::{Value, json};
pub use tepui_proto::model::{resources, state_name};
use tepui_proto::v1::TaskInfo;

use crate::runner::{RunView, framework_id};

/// One task of an executor run.
pub fn task(run: &RunView, agent_id: &str, task: &TaskInfo, state: i32) -> Value {
    json!({
        "id": task.task_id.value,
        "name": task.name,
        "framework_id": framework_id(&run.framework),
        "executor_id": if task.executor.is_some() || run.info.command.is_some() {
            run.info.executor_id.value.clone()
        } else {
            String::new()
        },
        "slave_id": agent_id,
        "agent_id": agent_id,
        "state": state_name(state),
        "resources": resources(&task.resources),
        "statuses": [{ "state": state_name(state) }],
    })
}

/// One executor run with its tasks split as Mesos splits them: running
/// (`tasks`), not yet sent (`queued_tasks`) and ended (`completed_tasks`).
// Mesos still reports the deprecated `source` and `role` for older clients.
#[allow(deprecated)]
pub fn executor(run: &RunView, agent_id: &str) -> Value {
    let (mut tasks, mut queued, mut completed) = (Vec::new(), Vec::new(), Vec::new());
    for (info, state) in &run.tasks {
        let entry = task(run, agent_id, info, *state);
        if crate::status_update::is_terminal(*state) {
            completed.push(entry);
        } else if run.queued.contains(&info.task_id.value) {
            queued.push(entry);
        } else {
            tasks.push(entry);
        }
    }
    json!({
        "id": run.info.executor_id.value,
        "name": run.info.name.clone().unwrap_or_default(),
        "source": run.info.source.clone().unwrap_or_default(),
        "container": run.container,
        "directory": run.sandbox.display().to_string(),
        "resources": resources(&run.resources_in_use()),
        "type": if run.info.command.is_some() { "CUSTOM" } else { "DEFAULT" },
        "tasks": tasks,
        "queued_tasks": queued,
        "completed_tasks": completed,
    })
}
