//! `/metrics/snapshot`, `/metrics`, `/containers` and
//! `/monitor/statistics`: the agent's gauges and counters, and each
//! container's usage read from its cgroup.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tepui_proto::resources::scalar;

use super::Endpoints;
use crate::runner::RunView;
use tepui_proto::v1::TaskState;

/// Every metric by its Mesos name.
pub fn snapshot(endpoints: &Endpoints) -> BTreeMap<String, f64> {
    let runner = &endpoints.runner;
    let runs = runner.runs();
    let mut metrics = BTreeMap::new();
    runner.counters().export(&mut metrics);
    let count = |state: TaskState| {
        runs.iter()
            .flat_map(|r| &r.tasks)
            .filter(|(_, s)| *s == state as i32)
            .count() as f64
    };
    metrics.insert("slave/tasks_running".into(), count(TaskState::TaskRunning));
    metrics.insert("slave/tasks_staging".into(), count(TaskState::TaskStaging));
    metrics.insert(
        "slave/tasks_starting".into(),
        count(TaskState::TaskStarting),
    );
    metrics.insert("slave/tasks_killing".into(), count(TaskState::TaskKilling));
    metrics.insert("slave/executors_running".into(), runs.len() as f64);
    let registering = runs.iter().filter(|r| !r.subscribed).count();
    metrics.insert("slave/executors_registering".into(), registering as f64);
    let frameworks: std::collections::HashSet<_> =
        runs.iter().map(|r| r.framework.id.clone()).collect();
    metrics.insert("slave/frameworks_active".into(), frameworks.len() as f64);
    metrics.insert(
        "slave/registered".into(),
        if runner.is_registered() { 1.0 } else { 0.0 },
    );
    let uptime = endpoints.started.elapsed().map_or(0.0, |d| d.as_secs_f64());
    metrics.insert("slave/uptime_secs".into(), uptime);
    let total = &endpoints.info.resources;
    let in_use: Vec<_> = runs.iter().map(RunView::resources_in_use).collect();
    for name in ["cpus", "mem", "disk"] {
        let total = scalar(total, name);
        let used: f64 = in_use.iter().map(|r| scalar(r, name)).sum();
        metrics.insert(format!("slave/{name}_total"), total);
        metrics.insert(format!("slave/{name}_used"), used);
        metrics.insert(
            format!("slave/{name}_percent"),
            if total > 0.0 { used / total } else { 0.0 },
        );
    }
    metrics
}

/// `/metrics/snapshot`.
pub fn snapshot_json(endpoints: &Endpoints) -> Value {
    Value::Object(
        snapshot(endpoints)
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect(),
    )
}

/// `/metrics`.
pub fn prometheus(endpoints: &Endpoints) -> String {
    crate::metrics::prometheus(&snapshot(endpoints))
}

/// A container's usage as Mesos's ResourceStatistics JSON.
async fn statistics_of(endpoints: &Endpoints, run: &RunView) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let limits = run.resources_in_use();
    let mut stats = serde_json::Map::new();
    stats.insert("timestamp".into(), json!(now));
    stats.insert("cpus_limit".into(), json!(scalar(&limits, "cpus")));
    stats.insert(
        "mem_limit_bytes".into(),
        json!((scalar(&limits, "mem") * 1024.0 * 1024.0) as u64),
    );
    if let Some(usage) = endpoints.runner.usage(&run.container).await {
        let secs = |usec: u64| usec as f64 / 1e6;
        stats.insert(
            "cpus_user_time_secs".into(),
            json!(secs(usage.cpu.user_usec)),
        );
        stats.insert(
            "cpus_system_time_secs".into(),
            json!(secs(usage.cpu.system_usec)),
        );
        stats.insert("cpus_nr_periods".into(), json!(usage.cpu.nr_periods));
        stats.insert("cpus_nr_throttled".into(), json!(usage.cpu.nr_throttled));
        stats.insert(
            "cpus_throttled_time_secs".into(),
            json!(secs(usage.cpu.throttled_usec)),
        );
        stats.insert("processes".into(), json!(usage.processes));
        if let Some(memory) = usage.memory {
            stats.insert("mem_total_bytes".into(), json!(memory.current));
            stats.insert("mem_rss_bytes".into(), json!(memory.anon));
            stats.insert("mem_anon_bytes".into(), json!(memory.anon));
            stats.insert("mem_file_bytes".into(), json!(memory.file));
            stats.insert("mem_cache_bytes".into(), json!(memory.file));
            stats.insert("mem_mapped_file_bytes".into(), json!(memory.file_mapped));
            stats.insert("mem_swap_bytes".into(), json!(memory.swap));
            stats.insert("mem_unevictable_bytes".into(), json!(memory.unevictable));
            if let Some(limit) = memory.limit {
                stats.insert("mem_limit_bytes".into(), json!(limit));
            }
        }
        if let Some(io) = usage.io {
            stats.insert("blkio_read_bytes".into(), json!(io.rbytes));
            stats.insert("blkio_write_bytes".into(), json!(io.wbytes));
        }
        if let Some(pids) = usage.pids {
            stats.insert("threads".into(), json!(pids));
        }
    }
    Value::Object(stats)
}

// Mesos still reports the deprecated `source` and `role` for older clients.
#[allow(deprecated)]
fn identity(run: &RunView) -> serde_json::Map<String, Value> {
    let mut object = serde_json::Map::new();
    object.insert("executor_id".into(), json!(run.info.executor_id.value));
    object.insert(
        "executor_name".into(),
        json!(run.info.name.clone().unwrap_or_default()),
    );
    object.insert(
        "framework_id".into(),
        json!(crate::runner::framework_id(&run.framework)),
    );
    object.insert(
        "source".into(),
        json!(run.info.source.clone().unwrap_or_default()),
    );
    object
}

/// `/monitor/statistics`.
pub async fn statistics(endpoints: &Endpoints) -> Value {
    let mut out = Vec::new();
    for run in endpoints.runner.runs() {
        let mut entry = identity(&run);
        entry.insert("statistics".into(), statistics_of(endpoints, &run).await);
        out.push(Value::Object(entry));
    }
    Value::Array(out)
}

/// `/containers`.
pub async fn containers(endpoints: &Endpoints) -> Value {
    let mut out = Vec::new();
    for run in endpoints.runner.runs() {
        let mut entry = identity(&run);
        entry.insert("container_id".into(), json!(run.container));
        entry.insert("statistics".into(), statistics_of(endpoints, &run).await);
        let mut status = serde_json::Map::new();
        status.insert("container_id".into(), json!({ "value": run.container }));
        if let Some(pid) = endpoints.runner.container_pid(&run.container) {
            status.insert("executor_pid".into(), json!(pid));
        }
        entry.insert("status".into(), Value::Object(status));
        out.push(Value::Object(entry));
    }
    Value::Array(out)
}
