//! The master's calls against a registered agent and a subscribed
//! framework, with their streams read directly: validation of ACCEPT
//! (a refused call changes nothing; an invalid task gets TASK_ERROR and
//! the valid ones go), launch to
//! RunTask, status update to UPDATE, acknowledgement to the agent,
//! decline filters, and an agent that stops answering pings.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message;
use tepui_master::master::{Config, Master};
use tepui_master::refused;
use tepui_master::registry::Registry;
use tepui_proto::internal::{self, MasterToAgent, master_to_agent};
use tepui_proto::media::Encoding;
use tepui_proto::v1::scheduler::{Event, call, event};
use tepui_proto::v1::{
    AgentInfo, CommandInfo, FrameworkInfo, Offer, OfferId, TaskId, TaskInfo, TaskState, TaskStatus,
    offer,
};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

fn master(dir: &std::path::Path) -> Master {
    Master::new(
        Config {
            agent_ping_timeout: Duration::from_secs(1),
            max_agent_ping_timeouts: 2,
            agent_reregister_timeout: Duration::from_secs(60),
            ..Config::defaults(dir.to_owned(), "127.0.0.1:5050")
        },
        Registry::default(),
    )
}

fn records(rx: &mut UnboundedReceiver<Bytes>) -> Vec<Bytes> {
    let mut buf = BytesMut::new();
    while let Ok(chunk) = rx.try_recv() {
        buf.extend_from_slice(&chunk);
    }
    tepui_proto::recordio::decode_all(&buf, 1 << 20).unwrap()
}

fn events(rx: &mut UnboundedReceiver<Bytes>) -> Vec<Event> {
    records(rx)
        .iter()
        .map(|r| Encoding::Json.decode::<Event>(r).unwrap())
        .collect()
}

fn agent_messages(rx: &mut UnboundedReceiver<Bytes>) -> Vec<master_to_agent::Message> {
    records(rx)
        .iter()
        .filter_map(|r| MasterToAgent::decode(r.as_ref()).unwrap().message)
        .collect()
}

struct Setup {
    master: Master,
    framework: String,
    agent: String,
    events: UnboundedReceiver<Bytes>,
    link: UnboundedReceiver<Bytes>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut master = master(dir.path());
    let (tx, mut link) = unbounded_channel();
    let agent = master
        .register_agent(
            internal::RegisterAgent {
                agent_info: AgentInfo {
                    hostname: "h1".into(),
                    port: Some(5051),
                    resources: tepui_proto::resources::parse("cpus:2;mem:1024;ports:[31000-31009]")
                        .unwrap(),
                    ..Default::default()
                },
                version: "test".into(),
                capabilities: Vec::new(),
                endpoint: Some("127.0.0.2:5051".into()),
            },
            tepui_master::state::AgentLink {
                stream_id: "a1".into(),
                tx,
            },
        )
        .unwrap();
    assert!(matches!(
        agent_messages(&mut link)[0],
        master_to_agent::Message::AgentRegistered(_)
    ));
    let (tx, mut events_rx) = unbounded_channel();
    let framework = master
        .subscribe(
            None,
            call::Subscribe {
                framework_info: FrameworkInfo {
                    user: "root".into(),
                    name: "fw".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
            tepui_master::events::EventSink::new(tx, Encoding::Json),
            "s1",
        )
        .unwrap();
    let subscribed = events(&mut events_rx);
    assert_eq!(subscribed[0].r#type, Some(event::Type::Subscribed as i32));
    Setup {
        master,
        framework,
        agent,
        events: events_rx,
        link,
        _dir: dir,
    }
}

/// Launches task t1 (1 cpu) on the first offer.
fn launch_t1(s: &mut Setup) {
    let offer = offers(s).remove(0);
    s.master
        .accept(
            &s.framework.clone(),
            launch(&offer.id.value, vec![task("t1", "cpus:1;mem:32")]),
        )
        .unwrap();
}

fn offers(s: &mut Setup) -> Vec<Offer> {
    s.master.allocate();
    events(&mut s.events)
        .into_iter()
        .filter_map(|e| e.offers)
        .flat_map(|o| o.offers)
        .collect()
}

fn task(id: &str, resources: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        resources: tepui_proto::resources::parse(resources).unwrap(),
        command: Some(CommandInfo {
            value: Some("true".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn launch(offer: &str, tasks: Vec<TaskInfo>) -> call::Accept {
    call::Accept {
        offer_ids: vec![OfferId {
            value: offer.into(),
        }],
        operations: vec![offer::Operation {
            r#type: Some(offer::operation::Type::Launch as i32),
            launch: Some(offer::operation::Launch { task_infos: tasks }),
            ..Default::default()
        }],
        filters: None,
    }
}

#[test]
fn accept_refuses_bad_operations_and_launches_good_ones() {
    let mut s = setup();
    let offer = offers(&mut s).remove(0);
    assert_eq!(offer.agent_id.value, s.agent);
    assert_eq!(offer.hostname, "h1");
    let id = offer.id.value.clone();
    let fw = s.framework.clone();

    // An unknown offer: the call is taken and its task is TASK_LOST with
    // REASON_INVALID_OFFERS, as Mesos answers it.
    s.master
        .accept(&fw, launch("nope", vec![task("t", "cpus:1;mem:32")]))
        .unwrap();
    let lost = updates(&mut s);
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].state, TaskState::TaskLost as i32);
    assert_eq!(
        lost[0].reason,
        Some(tepui_proto::v1::task_status::Reason::InvalidOffers as i32)
    );
    let message = lost[0].message.clone().unwrap_or_default();
    assert!(
        message.starts_with("Task launched with invalid offers: offer nope is unknown"),
        "{message}"
    );

    // What tepui cannot carry out refuses the whole call, and changes
    // nothing.
    let refusals = [(
        call::Accept {
            operations: vec![offer::Operation {
                r#type: Some(offer::operation::Type::Reserve as i32),
                ..Default::default()
            }],
            ..launch(&id, Vec::new())
        },
        "RESERVE is not supported",
    )];
    for (accept, why) in refusals {
        let refusal = s.master.accept(&fw, accept).unwrap_err();
        assert_eq!(refused::status(&refusal), 400);
        assert!(refusal.to_string().contains(why), "{why}: {refusal}");
    }
    assert!(agent_messages(&mut s.link).is_empty(), "nothing launched");
    assert!(s.master.offers.contains_key(&id), "the offer still stands");
    assert!(updates(&mut s).is_empty(), "no update for a refused call");

    // An invalid task gets TASK_ERROR (REASON_TASK_INVALID) and the valid
    // ones of the same call are launched, as Mesos's master does.
    let no_command = {
        let mut t = task("no-command", "cpus:0.1;mem:32");
        t.command = None;
        t
    };
    s.master
        .accept(
            &fw,
            launch(
                &id,
                vec![
                    task("too-big", "cpus:3;mem:32"),
                    task("dup", "cpus:0.1;mem:32"),
                    task("dup", "cpus:0.1;mem:32"),
                    task("no-port", "cpus:0.1;mem:32;ports:[40000-40000]"),
                    no_command,
                    task("no-mem", "cpus:0.1"),
                    task("t1", "cpus:1;mem:128;ports:[31000-31001]"),
                ],
            ),
        )
        .unwrap();
    let errors: Vec<(String, String)> = updates(&mut s)
        .into_iter()
        .map(|u| {
            assert_eq!(u.state, TaskState::TaskError as i32, "{u:?}");
            assert_eq!(
                u.reason,
                Some(tepui_proto::v1::task_status::Reason::TaskInvalid as i32)
            );
            assert_eq!(
                u.uuid, None,
                "the master's TASK_ERROR needs no acknowledgement"
            );
            (u.task_id.value, u.message.unwrap_or_default())
        })
        .collect();
    let expected = [
        ("too-big", "exceed"),
        ("dup", "duplicate"),
        ("no-port", "exceed"),
        ("no-command", "either an executor or a command"),
        ("no-mem", "Task uses no resources of 'mem'"),
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:?}");
    for ((task, message), (want_task, want)) in errors.iter().zip(expected) {
        assert_eq!(task, want_task);
        assert!(message.contains(want), "{task}: {message}");
    }
    let launched: Vec<String> = agent_messages(&mut s.link)
        .into_iter()
        .filter_map(|m| match m {
            master_to_agent::Message::RunTask(run) => Some(run.task.task_id.value),
            _ => None,
        })
        .collect();
    assert_eq!(launched, ["dup", "t1"]);
    let run = s.master.frameworks[&fw].tasks["t1"].task.clone();
    assert_eq!(run.agent_id.value, s.agent);
    assert!(s.master.offers.is_empty());

    // The rest is filtered for 5 s, so no new offer yet.
    assert!(offers(&mut s).is_empty());

    // A status update reaches the framework; its acknowledgement the agent.
    let uuid = vec![7u8; 16];
    s.master.status_update(
        &s.agent.clone(),
        internal::StatusUpdate {
            framework_id: tepui_proto::v1::FrameworkId { value: fw.clone() },
            status: TaskStatus {
                task_id: TaskId { value: "t1".into() },
                state: TaskState::TaskFinished as i32,
                uuid: Some(uuid.clone()),
                ..Default::default()
            },
            latest_state: None,
        },
    );
    let update = events(&mut s.events)
        .into_iter()
        .find_map(|e| e.update)
        .unwrap();
    assert_eq!(update.status.state, TaskState::TaskFinished as i32);
    assert_eq!(update.status.agent_id.unwrap().value, s.agent);
    s.master
        .acknowledge(
            &fw,
            call::Acknowledge {
                agent_id: tepui_proto::v1::AgentId {
                    value: s.agent.clone(),
                },
                task_id: TaskId { value: "t1".into() },
                uuid: uuid.clone(),
            },
        )
        .unwrap();
    let sent = agent_messages(&mut s.link);
    assert!(matches!(
        &sent[0],
        master_to_agent::Message::StatusUpdateAcknowledgement(a) if a.uuid == uuid
    ));
    let f = &s.master.frameworks[&fw];
    assert_eq!(
        f.tasks.keys().collect::<Vec<_>>(),
        ["dup"],
        "t1 is done; the first dup still runs"
    );
    assert_eq!(
        f.completed_tasks.len(),
        1,
        "the acknowledged task is history"
    );
}

#[test]
fn a_zero_second_decline_offers_again_at_once_and_revive_clears_filters() {
    let mut s = setup();
    let fw = s.framework.clone();
    let first = offers(&mut s).remove(0);
    s.master
        .decline(
            &fw,
            call::Decline {
                offer_ids: vec![first.id.clone()],
                filters: Some(tepui_proto::v1::Filters {
                    refuse_seconds: Some(0.0),
                }),
            },
        )
        .unwrap();
    let second = offers(&mut s).remove(0);
    s.master
        .decline(
            &fw,
            call::Decline {
                offer_ids: vec![second.id.clone()],
                filters: None,
            },
        )
        .unwrap();
    assert!(offers(&mut s).is_empty(), "filtered for the default 5 s");
    s.master.revive(&fw, &[]);
    assert_eq!(offers(&mut s).len(), 1);
    let bad = s
        .master
        .decline(
            &fw,
            call::Decline {
                offer_ids: Vec::new(),
                filters: Some(tepui_proto::v1::Filters {
                    refuse_seconds: Some(-1.0),
                }),
            },
        )
        .unwrap_err();
    assert!(bad.to_string().contains("refuse_seconds"), "{bad}");
}

#[test]
fn an_agent_that_stops_answering_pings_is_removed_and_its_tasks_lost() {
    let mut s = setup();
    launch_t1(&mut s);
    // Two pings without a pong remove it (max_agent_ping_timeouts 2).
    s.master.ping_agents();
    s.master.ping_agents();
    assert_eq!(s.master.agents.len(), 1, "one missed ping is tolerated");
    s.master.ping_agents();
    assert!(s.master.agents.is_empty());
    assert!(s.master.unreachable.contains_key(&s.agent));
    let evs = events(&mut s.events);
    let lost = evs.iter().find_map(|e| e.update.clone()).unwrap();
    assert_eq!(lost.status.state, TaskState::TaskLost as i32);
    assert!(
        evs.iter()
            .any(|e| e.failure.as_ref().is_some_and(|f| f.executor_id.is_none())),
        "the framework hears the agent is gone"
    );
}

#[test]
fn calls_need_the_current_stream_id() {
    // As Mesos answers: 400 for an unknown framework, a missing or a wrong
    // stream id; 403 for a framework that is not subscribed now.
    let mut s = setup();
    let fw = s.framework.clone();
    let status = |m: &Master, f: &str, id: Option<&str>| {
        refused::status(&m.check_stream(f, id).unwrap_err())
    };
    assert_eq!(status(&s.master, &fw, None), 400);
    assert_eq!(status(&s.master, &fw, Some("other")), 400);
    assert_eq!(status(&s.master, "nope", Some("s1")), 400);
    assert!(s.master.check_stream(&fw, Some("s1")).is_ok());
    s.master.disconnected(&fw, "s1");
    assert_eq!(status(&s.master, &fw, Some("s1")), 403);
}

/// `setup()` with the framework failed over to a partition-aware one.
fn partition_aware_setup() -> Setup {
    let mut s = setup();
    let (tx, rx) = unbounded_channel();
    s.master
        .subscribe(
            Some(&s.framework),
            call::Subscribe {
                framework_info: FrameworkInfo {
                    user: "root".into(),
                    name: "fw".into(),
                    id: Some(tepui_proto::v1::FrameworkId {
                        value: s.framework.clone(),
                    }),
                    capabilities: vec![tepui_proto::v1::framework_info::Capability {
                        r#type: Some(
                            tepui_proto::v1::framework_info::capability::Type::PartitionAware
                                as i32,
                        ),
                    }],
                    ..Default::default()
                },
                ..Default::default()
            },
            tepui_master::events::EventSink::new(tx, Encoding::Json),
            "s2",
        )
        .unwrap();
    s.events = rx;
    events(&mut s.events);
    s
}

fn updates(s: &mut Setup) -> Vec<TaskStatus> {
    events(&mut s.events)
        .into_iter()
        .filter_map(|e| e.update.map(|u| u.status))
        .collect()
}

#[test]
fn an_unreachable_agent_marked_gone_ends_its_tasks_gone_by_operator() {
    use tepui_proto::v1::task_status::Reason;
    let mut s = partition_aware_setup();
    launch_t1(&mut s);
    for _ in 0..3 {
        s.master.ping_agents();
    }
    let unreachable = updates(&mut s);
    assert_eq!(unreachable[0].state, TaskState::TaskUnreachable as i32);

    let agent = s.agent.clone();
    s.master.mark_agent_gone(&agent).unwrap();
    let gone = updates(&mut s);
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0].state, TaskState::TaskGoneByOperator as i32);
    assert_eq!(gone[0].reason, Some(Reason::AgentRemovedByOperator as i32));
    assert!(!s.master.unreachable.contains_key(&agent));
    assert!(s.master.registry().gone.contains_key(&agent));
    // Marking it again changes nothing; an agent nobody knows is a 404.
    s.master.mark_agent_gone(&agent).unwrap();
    assert!(updates(&mut s).is_empty());
    assert_eq!(
        refused::status(&s.master.mark_agent_gone("nope").unwrap_err()),
        404
    );

    // It may not come back under its id.
    let (tx, _rx) = unbounded_channel();
    let refusal = s
        .master
        .reregister_agent(
            internal::ReregisterAgent {
                agent_info: AgentInfo {
                    hostname: "h1".into(),
                    id: Some(tepui_proto::v1::AgentId { value: agent }),
                    resources: tepui_proto::resources::parse("cpus:2;mem:1024").unwrap(),
                    ..Default::default()
                },
                ..Default::default()
            },
            tepui_master::state::AgentLink {
                stream_id: "a2".into(),
                tx,
            },
        )
        .unwrap_err();
    assert_eq!(refused::status(&refusal), 403);
    assert!(refusal.to_string().contains("marked gone"), "{refusal}");
}

#[test]
fn a_registered_agent_marked_gone_shuts_its_frameworks_down() {
    let mut s = partition_aware_setup();
    launch_t1(&mut s);
    agent_messages(&mut s.link);
    let agent = s.agent.clone();
    s.master.mark_agent_gone(&agent).unwrap();
    let sent = agent_messages(&mut s.link);
    assert!(
        sent.iter().any(|m| matches!(
            m,
            master_to_agent::Message::ShutdownFramework(sd) if sd.framework_id.value == s.framework
        )),
        "{sent:?}"
    );
    assert!(s.master.agents.is_empty());
    let gone = updates(&mut s);
    assert_eq!(gone.len(), 1, "straight to GONE_BY_OPERATOR: {gone:?}");
    assert_eq!(gone[0].state, TaskState::TaskGoneByOperator as i32);
}

#[test]
fn the_endpoints_show_an_agent_by_its_endpoint_and_a_status_with_its_container() {
    use tepui_proto::v1::{ContainerId, ContainerStatus, Label, Labels, NetworkInfo, network_info};
    let mut s = setup();
    let slaves = tepui_master::endpoints::state::slaves_doc(&s.master);
    assert_eq!(slaves["slaves"][0]["pid"], "slave(1)@127.0.0.2:5051");
    assert_eq!(slaves["slaves"][0]["hostname"], "h1");

    launch_t1(&mut s);
    let label = |key: &str| Labels {
        labels: vec![Label {
            key: key.into(),
            value: Some("v".into()),
        }],
    };
    s.master.status_update(
        &s.agent.clone(),
        internal::StatusUpdate {
            framework_id: tepui_proto::v1::FrameworkId {
                value: s.framework.clone(),
            },
            status: TaskStatus {
                task_id: TaskId { value: "t1".into() },
                state: TaskState::TaskRunning as i32,
                uuid: Some(vec![1; 16]),
                labels: Some(label("status")),
                healthy: Some(true),
                container_status: Some(ContainerStatus {
                    container_id: Some(ContainerId {
                        value: "c1".into(),
                        parent: None,
                    }),
                    executor_pid: Some(42),
                    network_infos: vec![NetworkInfo {
                        ip_addresses: vec![network_info::IpAddress {
                            protocol: None,
                            ip_address: Some("127.0.0.2".into()),
                        }],
                        labels: Some(label("net")),
                        ..Default::default()
                    }],
                    cgroup_info: None,
                }),
                ..Default::default()
            },
            latest_state: None,
        },
    );
    let tasks = tepui_master::endpoints::state::tasks_doc(&s.master);
    let status = &tasks["tasks"][0]["statuses"][0];
    assert_eq!(status["state"], "TASK_RUNNING");
    assert_eq!(status["healthy"], true);
    assert_eq!(status["labels"][0]["key"], "status", "{status}");
    // As Mesos's model: the container's id and networks, no pid.
    let container = &status["container_status"];
    assert_eq!(container["container_id"]["value"], "c1");
    assert_eq!(
        container["network_infos"][0]["ip_addresses"][0]["ip_address"],
        "127.0.0.2"
    );
    assert_eq!(container["network_infos"][0]["labels"][0]["key"], "net");
    assert!(container.get("executor_pid").is_none(), "{container}");
}
