//! `/metrics/snapshot` with Mesos's metric names, and the same figures in
//! Prometheus's text format at `/metrics`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tepui_proto::v1::TaskState;

use crate::clock;
use crate::master::Master;

/// The figures, by Mesos name.
pub fn figures(master: &Master) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let mut put = |name: &str, value: f64| {
        m.insert(name.to_owned(), value);
    };
    put("master/elected", 1.0);
    put("master/uptime_secs", clock::now() - master.start_time);
    let active = master.agents.values().filter(|a| a.link.is_some()).count();
    put("master/slaves_active", active as f64);
    put("master/slaves_connected", active as f64);
    put(
        "master/slaves_disconnected",
        (master.agents.len() - active) as f64,
    );
    put(
        "master/slaves_inactive",
        (master.agents.len() - active) as f64,
    );
    put("master/slaves_unreachable", master.unreachable.len() as f64);
    put(
        "master/slave_removals",
        master.counters.agents_removed as f64,
    );
    let connected = master.frameworks.values().filter(|f| f.connected()).count();
    put("master/frameworks_active", connected as f64);
    put("master/frameworks_connected", connected as f64);
    put(
        "master/frameworks_disconnected",
        (master.frameworks.len() - connected) as f64,
    );
    put(
        "master/frameworks_inactive",
        (master.frameworks.len() - connected) as f64,
    );
    put("master/outstanding_offers", master.offers.len() as f64);
    put(
        "master/messages_status_update",
        master.counters.status_updates as f64,
    );
    put("master/invalid_calls", master.counters.invalid_calls as f64);
    put("master/offers_sent", master.counters.offers_sent as f64);
    put(
        "master/offers_declined",
        master.counters.offers_declined as f64,
    );
    put(
        "master/offers_rescinded",
        master.counters.offers_rescinded as f64,
    );
    put(
        "master/tasks_launched",
        master.counters.tasks_launched as f64,
    );
    put(
        "allocator/mesos/allocation_runs",
        master.counters.allocation_runs as f64,
    );
    let mut by_state: BTreeMap<i32, u64> = BTreeMap::new();
    for f in master.frameworks.values() {
        for t in f.tasks.values() {
            *by_state.entry(t.task.state).or_default() += 1;
        }
        for t in &f.completed_tasks {
            *by_state.entry(t.state).or_default() += 1;
        }
    }
    for state in [
        TaskState::TaskStaging,
        TaskState::TaskStarting,
        TaskState::TaskRunning,
        TaskState::TaskKilling,
        TaskState::TaskFinished,
        TaskState::TaskFailed,
        TaskState::TaskKilled,
        TaskState::TaskLost,
        TaskState::TaskError,
        TaskState::TaskDropped,
        TaskState::TaskUnreachable,
        TaskState::TaskGone,
    ] {
        // TASK_RUNNING -> master/tasks_running, as Mesos names them.
        let name = state
            .as_str_name()
            .trim_start_matches("TASK_")
            .to_ascii_lowercase();
        put(
            &format!("master/tasks_{name}"),
            by_state.get(&(state as i32)).copied().unwrap_or(0) as f64,
        );
    }
    for (name, total) in master.allocator.total().scalars() {
        put(&format!("master/{name}_total"), total);
    }
    let mut used: BTreeMap<String, f64> = BTreeMap::new();
    for a in master.agents.values() {
        if let Some(allocated) = master.allocator.allocated_on(a.id()) {
            for (name, amount) in allocated.scalars() {
                *used.entry(name.to_owned()).or_default() += amount;
            }
        }
    }
    for (name, amount) in used {
        put(&format!("master/{name}_used"), amount);
    }
    m
}

/// `/metrics/snapshot`.
pub fn snapshot(master: &Master) -> Value {
    Value::Object(
        figures(master)
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect(),
    )
}

/// `/metrics`: `tepui_` + the Mesos name with `/` as `_`.
pub fn prometheus(master: &Master) -> String {
    tepui_proto::model::prometheus(&figures(master))
}
