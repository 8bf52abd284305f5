//! Mesos's JSON models of resources, attributes and task states (its
//! `common/http.cpp`), as the `/state` endpoints of master and agent show
//! them, and Mesos-named metrics as Prometheus text.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::v1::{Attribute, Resource, TaskState, value};

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

/// Attributes as one object: `{name: value}`, scalars as numbers.
pub fn attributes(attributes: &[Attribute]) -> Value {
    let object: Map<String, Value> = attributes
        .iter()
        .map(|a| {
            let value = match value::Type::try_from(a.r#type) {
                Ok(value::Type::Scalar) => json!(a.scalar.as_ref().map_or(0.0, |s| s.value)),
                Ok(value::Type::Ranges) => json!(ranges_text(a.ranges.as_ref())),
                Ok(value::Type::Set) => json!(set_text(a.set.as_ref())),
                _ => json!(a.text.as_ref().map(|t| t.value.clone()).unwrap_or_default()),
            };
            (a.name.clone(), value)
        })
        .collect();
    Value::Object(object)
}

/// A state's Mesos name, e.g. `TASK_RUNNING`.
pub fn state_name(state: i32) -> String {
    TaskState::try_from(state)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| "TASK_UNKNOWN".to_owned())
}

/// Whether `state` is one a task never leaves.
pub fn is_terminal(state: i32) -> bool {
    use TaskState as S;
    matches!(
        TaskState::try_from(state),
        Ok(S::TaskFinished
            | S::TaskFailed
            | S::TaskKilled
            | S::TaskError
            | S::TaskLost
            | S::TaskDropped
            | S::TaskGone
            | S::TaskGoneByOperator)
    )
}

/// The Prometheus text exposition of `metrics`: each name with every
/// character outside `[a-zA-Z0-9_]` as `_`, under a `tepui_` prefix.
pub fn prometheus(metrics: &BTreeMap<String, f64>) -> String {
    let mut out = String::new();
    for (name, value) in metrics {
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        out.push_str(&format!(
            "# TYPE tepui_{name} gauge\ntepui_{name} {value}\n"
        ));
    }
    out
}
