//! `/state`: the agent, its frameworks, executors and tasks, in the JSON
//! shape of the Mesos agent's `/state`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tepui_proto::v1::FrameworkInfo;

use super::Endpoints;
use super::json;
use crate::runner::RunView;
use crate::runner::framework_id;
use tepui_proto::acls::Action;

// Mesos still reports the deprecated `source` and `role` for older clients.
#[allow(deprecated)]
fn framework(info: &FrameworkInfo, executors: Vec<Value>, completed: Vec<Value>) -> Value {
    json!({
        "id": framework_id(info),
        "name": info.name,
        "user": info.user,
        "failover_timeout": info.failover_timeout.unwrap_or(0.0),
        "checkpoint": info.checkpoint.unwrap_or(false),
        "hostname": info.hostname.clone().unwrap_or_default(),
        "role": info.role.clone().unwrap_or_else(|| "*".to_owned()),
        "roles": info.roles,
        "principal": info.principal.clone().unwrap_or_default(),
        "executors": executors,
        "completed_executors": completed,
    })
}

/// Whether `principal` may see `run` under the ACLs: its framework
/// (view_frameworks, by the framework's user) and its executor
/// (view_executors, by the executor's user, else the framework's).
fn seen(endpoints: &Endpoints, principal: Option<&str>, run: &RunView) -> bool {
    let acls = &endpoints.acls;
    acls.authorized(Action::ViewFramework, principal, Some(&run.framework.user))
        && acls.authorized(Action::ViewExecutor, principal, Some(super::run_user(run)))
}

/// The whole `/state` document, as `principal` may see it.
pub fn state(endpoints: &Endpoints, principal: Option<&str>) -> Value {
    let runner = &endpoints.runner;
    let agent_id = runner.id();
    let mut live: BTreeMap<String, (FrameworkInfo, Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for run in runner
        .runs()
        .into_iter()
        .filter(|r| seen(endpoints, principal, r))
    {
        let entry = live
            .entry(framework_id(&run.framework))
            .or_insert_with(|| (run.framework.clone(), Vec::new(), Vec::new()));
        entry.1.push(json::executor(&run, &agent_id));
    }
    // Ended runs go under their framework when it still runs here, else
    // under completed_frameworks.
    let mut gone: BTreeMap<String, (FrameworkInfo, Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for run in runner
        .completed_runs()
        .into_iter()
        .filter(|r| seen(endpoints, principal, r))
    {
        let id = framework_id(&run.framework);
        let executor: Value = json::executor(&run, &agent_id);
        match live.get_mut(&id) {
            Some(entry) => entry.2.push(executor),
            None => gone
                .entry(id)
                .or_insert_with(|| (run.framework.clone(), Vec::new(), Vec::new()))
                .2
                .push(executor),
        }
    }
    let frameworks: Vec<Value> = live
        .into_values()
        .map(|(info, executors, completed)| framework(&info, executors, completed))
        .collect();
    let completed_frameworks: Vec<Value> = gone
        .into_values()
        .map(|(info, executors, completed)| framework(&info, executors, completed))
        .collect();
    let start_time = endpoints
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut doc = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "start_time": start_time,
        "id": agent_id,
        "pid": format!("slave(1)@{}", endpoints.endpoint),
        "hostname": endpoints.info.hostname,
        "port": endpoints.info.port.unwrap_or(0),
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "TASK_LABEL_UNIQUENESS_CHECK"],
        "resources": json::resources(&endpoints.info.resources),
        "attributes": tepui_proto::model::attributes(&endpoints.info.attributes),
        "master_hostname": endpoints.master.rsplit_once(':').map_or(endpoints.master.as_str(), |(h, _)| h),
        "flags": { "work_dir": endpoints.work_dir.display().to_string(), "master": endpoints.master },
        "frameworks": frameworks,
        "completed_frameworks": completed_frameworks,
    });
    if !endpoints
        .acls
        .authorized(Action::ViewFlags, principal, None)
        && let Some(doc) = doc.as_object_mut()
    {
        doc.remove("flags");
    }
    doc
}
