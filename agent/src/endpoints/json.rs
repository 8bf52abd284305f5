//! Mesos's JSON models of resources, tasks and executors (its
//! `common/http.cpp`), as `/state` shows them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use tepui_proto::v1::{Resource, TaskInfo, TaskState, value};

use crate::runner::{RunView, framework_id};

/// Ranges as Mesos writes them: `[a-b, c-d]`.
pub fn ranges_text(ranges: Option<&value::Ranges>) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .flat_map(|r| &r.range)
        .map(|r| format!("{}-{}", r.begin, r.end))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// A set as Mesos writes it: `{a,b}`.
pub fn set_text(set: Option<&value::Set>) -> String {
    format!("{{{}}}", set.map(|s| s.item.join(",")).unwrap_or_default())
}

/// Resources as one object: scalars summed by name, ranges as
/// `[a-b, c-d]`, sets as `{a,b}`.
pub fn resources(resources: &[Resource]) -> Value {
    let mut scalars: BTreeMap<&str, f64> = BTreeMap::new();
    let mut object = Map::new();
    for name in ["cpus", "mem", "disk", "gpus"] {
        scalars.insert(name, 0.0);
    }
    for resource in resources {
        match value::Type::try_from(resource.r#type) {
            Ok(value::Type::Scalar) => {
                *scalars.entry(&resource.name).or_default() +=
                    resource.scalar.as_ref().map_or(0.0, |s| s.value);
            }
            Ok(value::Type::Ranges) => {
                let text = ranges_text(resource.ranges.as_ref());
                object.insert(resource.name.clone(), json!(text));
            }
            Ok(value::Type::Set) => {
                let text = set_text(resource.set.as_ref());
                object.insert(resource.name.clone(), json!(text));
            }
            _ => {}
        }
    }
    for (name, amount) in scalars {
        object.insert(name.to_owned(), json!(amount));
    }
    Value::Object(object)
}

/// A state's Mesos name, e.g. `TASK_RUNNING`.
pub fn state_name(state: i32) -> String {
    TaskState::try_from(state)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| "TASK_UNKNOWN".to_owned())
}

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
