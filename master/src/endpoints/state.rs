//! `/master/state` and its parts in the JSON shape of Mesos's master
//! (its `master/http.cpp` and `common/http.cpp` models).

use crate::authorization::Viewer;
use std::collections::HashMap;

use serde_json::{Value, json};
use tepui_proto::model::{attributes, resources, state_name};
use tepui_proto::v1::{ContainerStatus, Labels, Task, TaskState, TaskStatus};

use crate::MESOS_VERSION;
use crate::master::Master;
use crate::resources::Bundle;
use crate::state::{Agent, Framework};

/// Labels as Mesos's models show them: the array of key/value pairs.
fn labels(labels: &Labels) -> Value {
    tepui_proto::json::to_value(labels)
        .map(|mut l| l["labels"].take())
        .unwrap_or_default()
}

/// A ContainerStatus as Mesos's model shows it: its protobuf JSON with the
/// networks' labels as arrays and without the executor's pid.
fn container_status(container: &ContainerStatus) -> Value {
    let Ok(mut out) = tepui_proto::json::to_value(container) else {
        return Value::Null;
    };
    if let Some(fields) = out.as_object_mut() {
        fields.remove("executor_pid");
    }
    for (json, info) in out["network_infos"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .zip(&container.network_infos)
    {
        if let Some(l) = &info.labels {
            json["labels"] = labels(l);
        }
    }
    out
}

/// One of a task's statuses: its state and time, and the labels,
/// container and health it carried.
fn status(s: &TaskStatus) -> Value {
    let mut out = json!({
        "state": state_name(s.state),
        "timestamp": s.timestamp.unwrap_or(0.0),
    });
    if let Some(l) = &s.labels {
        out["labels"] = labels(l);
    }
    if let Some(container) = &s.container_status {
        out["container_status"] = container_status(container);
    }
    if let Some(healthy) = s.healthy {
        out["healthy"] = healthy.into();
    }
    out
}

fn task(task: &Task, role: &str) -> Value {
    let statuses: Vec<Value> = task.statuses.iter().map(status).collect();
    json!({
        "id": task.task_id.value,
        "name": task.name,
        "framework_id": task.framework_id.value,
        "executor_id": task.executor_id.as_ref().map(|e| e.value.clone()).unwrap_or_default(),
        "slave_id": task.agent_id.value,
        "agent_id": task.agent_id.value,
        "state": state_name(task.state),
        "resources": resources(&task.resources),
        "role": role,
        "statuses": statuses,
        "user": task.user.clone().unwrap_or_default(),
    })
}

/// One framework as `/master/state` shows it.
#[allow(deprecated)]
pub fn framework(f: &Framework, master: &Master, viewer: &Viewer) -> Value {
    let role = f.roles.first().cloned().unwrap_or_else(|| "*".to_owned());
    let mut running = Vec::new();
    let mut unreachable = Vec::new();
    let mut used = Vec::new();
    for t in f.tasks.values() {
        if !viewer.task(&t.task, &f.info) {
            continue;
        }
        let entry = task(&t.task, &t.role);
        if t.task.state == TaskState::TaskUnreachable as i32 {
            unreachable.push(entry);
        } else {
            if !t.released {
                used.extend(t.task.resources.iter().cloned());
            }
            running.push(entry);
        }
    }
    let completed: Vec<Value> = f
        .completed_tasks
        .iter()
        .filter(|t| viewer.task(t, &f.info))
        .map(|t| task(t, &role))
        .collect();
    let outstanding: Vec<_> = f
        .offers
        .iter()
        .filter_map(|id| Some((id, master.offers.get(id)?)))
        .collect();
    let offers: Vec<Value> = outstanding
        .iter()
        .map(|(id, o)| {
            json!({
                "id": id,
                "framework_id": &*o.framework,
                "slave_id": &*o.agent,
                "agent_id": &*o.agent,
                "resources": resources(&o.resources.to_proto(Some(&o.role))),
            })
        })
        .collect();
    let offered: Vec<_> = outstanding
        .iter()
        .flat_map(|(_, o)| o.resources.to_proto(Some(&o.role)))
        .collect();
    let capabilities: Vec<String> = f
        .info
        .capabilities
        .iter()
        .filter_map(|c| c.r#type)
        .filter_map(|t| tepui_proto::v1::framework_info::capability::Type::try_from(t).ok())
        .map(|t| t.as_str_name().to_owned())
        .collect();
    let mut allocated = used.clone();
    allocated.extend(offered.iter().cloned());
    json!({
        "id": f.id(),
        "name": f.info.name,
        "pid": "",
        "user": f.info.user,
        "hostname": f.info.hostname.clone().unwrap_or_default(),
        "webui_url": f.info.webui_url.clone().unwrap_or_default(),
        "failover_timeout": f.info.failover_timeout.unwrap_or(0.0),
        "checkpoint": f.info.checkpoint.unwrap_or(false),
        "role": role,
        "roles": f.roles,
        "principal": f.info.principal.clone().unwrap_or_default(),
        "capabilities": capabilities,
        "registered_time": f.registered_time,
        "reregistered_time": f.reregistered_time.unwrap_or(f.registered_time),
        "unregistered_time": f.disconnected_at.map_or(0.0, |(_, t)| t),
        "active": f.connected(),
        "connected": f.connected(),
        "recovered": f.recovered,
        "resources": resources(&allocated),
        "allocated_resources": resources(&allocated),
        "used_resources": resources(&used),
        "offered_resources": resources(&offered),
        "tasks": running,
        "unreachable_tasks": unreachable,
        "completed_tasks": completed,
        "offers": offers,
        "executors": [],
    })
}

/// One agent as `/master/state` shows it, with what is offered of it.
pub fn slave(a: &Agent, master: &Master, offered: Option<&Bundle>) -> Value {
    let id = a.id();
    let allocated = master
        .allocator
        .allocated_on(id)
        .map(|b| b.to_proto(None))
        .unwrap_or_default();
    let offered = offered.map(|b| b.to_proto(None)).unwrap_or_default();
    let port = a.info.port.unwrap_or(5051);
    json!({
        "id": id,
        "pid": a.pid(),
        "hostname": a.info.hostname,
        "port": port,
        "registered_time": a.registered_time,
        "reregistered_time": a.reregistered_time.unwrap_or(a.registered_time),
        "resources": resources(&a.info.resources),
        "used_resources": resources(&allocated),
        "offered_resources": resources(&offered),
        "reserved_resources": {},
        "unreserved_resources": resources(&a.info.resources),
        "attributes": attributes(&a.info.attributes),
        "active": a.link.is_some(),
        "deactivated": false,
        "version": a.version,
        "capabilities": [],
    })
}

/// `/master/frameworks`, all of it.
pub fn frameworks_doc(master: &Master) -> Value {
    frameworks_seen(master, &Viewer::everything())
}

/// `/master/frameworks` as `viewer` may see it (view_frameworks,
/// view_tasks).
pub fn frameworks_seen(master: &Master, viewer: &Viewer) -> Value {
    let mut frameworks: Vec<&Framework> = master
        .frameworks
        .values()
        .filter(|f| viewer.framework(&f.info))
        .collect();
    frameworks.sort_by(|a, b| a.id().cmp(b.id()));
    json!({
        "frameworks": frameworks.iter().map(|f| framework(f, master, viewer)).collect::<Vec<_>>(),
        "completed_frameworks": master
            .completed_frameworks
            .iter()
            .filter(|f| viewer.framework(&f.info))
            .map(|f| framework(f, master, viewer))
            .collect::<Vec<_>>(),
        "unregistered_frameworks": [],
    })
}

/// `/master/slaves`.
pub fn slaves_doc(master: &Master) -> Value {
    let mut agents: Vec<&Agent> = master.agents.values().collect();
    agents.sort_by(|a, b| a.id().cmp(b.id()));
    let unreachable: Vec<Value> = master
        .unreachable
        .iter()
        .map(|(id, (info, time))| json!({"id": id, "hostname": info.hostname, "time": time}))
        .collect();
    // What is offered of each agent, in one pass over the offers.
    let mut offered: HashMap<&str, Bundle> = HashMap::new();
    for o in master.offers.values() {
        offered
            .entry(o.agent.as_ref())
            .or_default()
            .add(&o.resources);
    }
    json!({
        "slaves": agents.iter().map(|a| slave(a, master, offered.get(a.id()))).collect::<Vec<_>>(),
        "recovered_slaves": master.expected.keys().collect::<Vec<_>>(),
        "unreachable_slaves": unreachable,
    })
}

/// `/master/tasks`: every task, running and ended.
pub fn tasks_doc(master: &Master) -> Value {
    tasks_seen(master, &Viewer::everything())
}

/// `/master/tasks` as `viewer` may see it (view_frameworks, view_tasks).
pub fn tasks_seen(master: &Master, viewer: &Viewer) -> Value {
    let mut tasks = Vec::new();
    for f in master
        .frameworks
        .values()
        .chain(&master.completed_frameworks)
        .filter(|f| viewer.framework(&f.info))
    {
        for t in f.tasks.values().filter(|t| viewer.task(&t.task, &f.info)) {
            tasks.push(task(&t.task, &t.role));
        }
        let role = f.roles.first().cloned().unwrap_or_default();
        for t in f.completed_tasks.iter().filter(|t| viewer.task(t, &f.info)) {
            tasks.push(task(t, &role));
        }
    }
    json!({ "tasks": tasks })
}

/// The whole `/master/state` document.
pub fn state(master: &Master) -> Value {
    state_seen(master, &Viewer::everything())
}

/// `/master/state` as `viewer` may see it: its frameworks and tasks
/// (view_frameworks, view_tasks), and the flags only with view_flags.
pub fn state_seen(master: &Master, viewer: &Viewer) -> Value {
    let info = &master.info;
    let hostname = info.hostname.clone().unwrap_or_default();
    let active = master.agents.values().filter(|a| a.link.is_some()).count();
    let frameworks = frameworks_seen(master, viewer);
    let slaves = slaves_doc(master);
    let pid = info.pid.clone().unwrap_or_default();
    let mut doc = json!({
        "version": MESOS_VERSION,
        "build_user": "tepui",
        "start_time": master.start_time,
        "elected_time": master.start_time,
        "id": info.id,
        "pid": pid,
        "hostname": hostname,
        "activated_slaves": active,
        "deactivated_slaves": master.agents.len() - active,
        "unreachable_slaves": master.unreachable.len(),
        "leader": pid,
        "leader_info": tepui_proto::json::to_value(info).unwrap_or(Value::Null),
        "flags": {
            "work_dir": master.config.work_dir.display().to_string(),
            "allocation_interval": format!("{}secs", master.config.allocation_interval.as_secs_f64()),
            "agent_ping_timeout": format!("{}secs", master.config.agent_ping_timeout.as_secs_f64()),
            "max_agent_ping_timeouts": master.config.max_agent_ping_timeouts.to_string(),
        },
        "slaves": slaves["slaves"],
        "recovered_slaves": slaves["recovered_slaves"],
        "frameworks": frameworks["frameworks"],
        "completed_frameworks": frameworks["completed_frameworks"],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    });
    if !viewer.flags()
        && let Some(doc) = doc.as_object_mut()
    {
        doc.remove("flags");
    }
    doc
}
