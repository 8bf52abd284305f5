//! The operator API v1 (`POST /api/v1`): GET_HEALTH, GET_VERSION,
//! GET_STATE, GET_AGENTS, GET_FRAMEWORKS, GET_TASKS, GET_EXECUTORS,
//! GET_MASTER and TEARDOWN, JSON or protobuf.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tepui_proto::http::{self, Body};
use tepui_proto::v1::TimeInfo;
use tepui_proto::v1::master::{Call, Response as Answer, call, response};

use tepui_proto::acls::Action;

use crate::authorization::Viewer;
use crate::master::Master;
use crate::refused;
use crate::server::Server;
use crate::state::Framework;
use crate::v1_call::{negotiate, read_call};

fn time(seconds: f64) -> TimeInfo {
    TimeInfo {
        nanoseconds: (seconds * 1e9) as i64,
    }
}

fn agents(master: &Master) -> response::GetAgents {
    let mut agents: Vec<response::get_agents::Agent> = master
        .agents
        .values()
        .map(|a| {
            let allocated = master
                .allocator
                .allocated_on(a.id())
                .map(|b| b.to_proto(None))
                .unwrap_or_default();
            response::get_agents::Agent {
                agent_info: a.info.clone(),
                active: a.link.is_some(),
                deactivated: Some(false),
                version: a.version.clone(),
                pid: Some(a.pid()),
                registered_time: Some(time(a.registered_time)),
                reregistered_time: a.reregistered_time.map(time),
                total_resources: a.total.to_proto(None),
                allocated_resources: allocated,
                ..Default::default()
            }
        })
        .collect();
    agents.sort_by(|a, b| a.agent_info.hostname.cmp(&b.agent_info.hostname));
    response::GetAgents {
        agents,
        recovered_agents: master.expected.values().cloned().collect(),
    }
}

fn framework(f: &Framework, master: &Master) -> response::get_frameworks::Framework {
    let offers: Vec<_> = f
        .offers
        .iter()
        .filter_map(|id| master.offers.get(id).map(|o| master.offer_message(id, o)))
        .collect();
    response::get_frameworks::Framework {
        framework_info: f.info.clone(),
        active: f.connected(),
        connected: f.connected(),
        recovered: f.recovered,
        registered_time: Some(time(f.registered_time)),
        reregistered_time: f.reregistered_time.map(time),
        unregistered_time: f.disconnected_at.map(|(_, t)| time(t)),
        offered_resources: offers.iter().flat_map(|o| o.resources.clone()).collect(),
        offers,
        ..Default::default()
    }
}

fn frameworks(master: &Master, viewer: &Viewer) -> response::GetFrameworks {
    response::GetFrameworks {
        frameworks: master
            .frameworks
            .values()
            .filter(|f| viewer.framework(&f.info))
            .map(|f| framework(f, master))
            .collect(),
        completed_frameworks: master
            .completed_frameworks
            .iter()
            .filter(|f| viewer.framework(&f.info))
            .map(|f| framework(f, master))
            .collect(),
        ..Default::default()
    }
}

fn tasks(master: &Master, viewer: &Viewer) -> response::GetTasks {
    let mut out = response::GetTasks::default();
    let seen = |f: &Framework, t: &tepui_proto::v1::Task| {
        viewer.framework(&f.info) && viewer.task(t, &f.info)
    };
    for f in master.frameworks.values() {
        for t in f.tasks.values().filter(|t| seen(f, &t.task)) {
            if t.task.state == tepui_proto::v1::TaskState::TaskUnreachable as i32 {
                out.unreachable_tasks.push(t.task.clone());
            } else {
                out.tasks.push(t.task.clone());
            }
        }
        out.completed_tasks
            .extend(f.completed_tasks.iter().filter(|t| seen(f, t)).cloned());
    }
    for f in &master.completed_frameworks {
        out.completed_tasks
            .extend(f.completed_tasks.iter().filter(|t| seen(f, t)).cloned());
    }
    out
}

fn executors(master: &Master, viewer: &Viewer) -> response::GetExecutors {
    response::GetExecutors {
        executors: master
            .frameworks
            .values()
            .filter(|f| viewer.framework(&f.info))
            .flat_map(|f| {
                f.executors
                    .iter()
                    .filter(|(_, e)| viewer.executor(&e.info, &f.info))
                    .map(|((agent, _), e)| response::get_executors::Executor {
                        executor_info: e.info.clone(),
                        agent_id: tepui_proto::v1::AgentId {
                            value: agent.clone(),
                        },
                    })
            })
            .collect(),
        ..Default::default()
    }
}

fn answer(kind: response::Type) -> Answer {
    Answer {
        r#type: Some(kind as i32),
        ..Answer::default()
    }
}

/// Serves one operator call from `principal` (none: unauthenticated),
/// as far as the ACLs allow it.
pub async fn handle(
    server: Arc<Server>,
    request: Request<Incoming>,
    principal: Option<String>,
) -> Response<Body> {
    let (encoding, accept) = match negotiate(&request) {
        Ok(e) => e,
        Err(e) => return e.response(),
    };
    let call: Call = match read_call(request.into_body(), encoding).await {
        Ok(call) => call,
        Err(e) => return e.response(),
    };
    use call::Type as T;
    let Some(kind) = call.r#type.and_then(|t| T::try_from(t).ok()) else {
        return http::text(
            StatusCode::BAD_REQUEST,
            "expecting 'type' to be present and known",
        );
    };
    let out = {
        let mut master = server.lock();
        let acls = master.config.acls.clone();
        let viewer = Viewer::new(&acls, principal.as_deref());
        match kind {
            T::GetHealth => Answer {
                get_health: Some(response::GetHealth { healthy: true }),
                ..answer(response::Type::GetHealth)
            },
            T::GetVersion => Answer {
                get_version: Some(response::GetVersion {
                    version_info: tepui_proto::version::version_info(),
                }),
                ..answer(response::Type::GetVersion)
            },
            T::GetState => Answer {
                get_state: Some(response::GetState {
                    get_tasks: Some(tasks(&master, &viewer)),
                    get_executors: Some(executors(&master, &viewer)),
                    get_frameworks: Some(frameworks(&master, &viewer)),
                    get_agents: Some(agents(&master)),
                }),
                ..answer(response::Type::GetState)
            },
            T::GetAgents => Answer {
                get_agents: Some(agents(&master)),
                ..answer(response::Type::GetAgents)
            },
            T::GetFrameworks => Answer {
                get_frameworks: Some(frameworks(&master, &viewer)),
                ..answer(response::Type::GetFrameworks)
            },
            T::GetTasks => Answer {
                get_tasks: Some(tasks(&master, &viewer)),
                ..answer(response::Type::GetTasks)
            },
            T::GetExecutors => Answer {
                get_executors: Some(executors(&master, &viewer)),
                ..answer(response::Type::GetExecutors)
            },
            T::GetMaster => Answer {
                get_master: Some(response::GetMaster {
                    master_info: Some(master.info.clone()),
                    start_time: Some(master.start_time),
                    elected_time: Some(master.start_time),
                }),
                ..answer(response::Type::GetMaster)
            },
            T::Teardown => {
                let Some(teardown) = call.teardown else {
                    return http::text(
                        StatusCode::BAD_REQUEST,
                        "expecting 'teardown' to be present",
                    );
                };
                let id = teardown.framework_id.value;
                let Some(f) = master.frameworks.get(&id) else {
                    return http::text(
                        StatusCode::BAD_REQUEST,
                        format!("framework {id} is not known"),
                    );
                };
                // Mesos's TEARDOWN_FRAMEWORK object: the framework's principal.
                let owner = f.info.principal.clone().unwrap_or_default();
                if let Err(refusal) = viewer.may(Action::TeardownFramework, Some(&owner)) {
                    return refused::answer(refusal);
                }
                master.teardown(&id);
                return http::text(StatusCode::OK, "");
            }
            T::MarkAgentGone => {
                let Some(mark) = call.mark_agent_gone else {
                    return http::text(
                        StatusCode::BAD_REQUEST,
                        "expecting 'mark_agent_gone' to be present",
                    );
                };
                if let Err(refusal) = viewer.may(Action::MarkAgentGone, None) {
                    return refused::answer(refusal);
                }
                return match master.mark_agent_gone(&mark.agent_id.value) {
                    Ok(()) => http::text(StatusCode::OK, ""),
                    Err(refusal) => refused::answer(refusal),
                };
            }
            other => {
                return http::text(
                    StatusCode::NOT_IMPLEMENTED,
                    format!(
                        "operator call {} is not supported by tepui",
                        other.as_str_name()
                    ),
                );
            }
        }
    };
    http::message(accept, &out)
}
