//! A cluster on 127.0.0.1: tepui's master in this process, three real
//! tepui-agent processes, and a framework on the Rust scheduler driver.
//! It launches 100 tasks across the agents, kills some, reconciles,
//! fails over within its failover timeout and keeps its tasks; an agent
//! that vanishes has its tasks reported LOST; a framework that does not
//! come back in time has its tasks killed; a restarted master gets its
//! agents back and knows their tasks again.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tepui_driver::scheduler::{self, DriverConfig, Scheduler, SchedulerDriver};
use tepui_master::master::Config;
use tepui_master::server::Server;
use tepui_proto::v1::{
    CommandInfo, FrameworkInfo, MasterInfo, Offer, TaskId, TaskInfo, TaskState, TaskStatus, offer,
    task_status,
};
use tokio::sync::mpsc;

#[path = "support/agent.rs"]
mod agent_process;
use agent_process::{Cleanup, agent_command};

enum Ev {
    Registered(String, SchedulerDriver),
    Reregistered,
    Offers(Vec<Offer>),
    Update(Box<TaskStatus>),
    AgentLost(String),
}

/// Forwards events to the test; offers only while `wants_offers`, others
/// are declined for an hour (Mesos frameworks that hoard offers starve
/// the others).
struct Forward(mpsc::UnboundedSender<Ev>, Arc<AtomicBool>);

impl Scheduler for Forward {
    fn registered(&mut self, driver: &SchedulerDriver, id: &str, _: &MasterInfo) {
        let _ = self.0.send(Ev::Registered(id.to_owned(), driver.clone()));
    }
    fn reregistered(&mut self, _: &SchedulerDriver, _: &MasterInfo) {
        let _ = self.0.send(Ev::Reregistered);
    }
    fn resource_offers(&mut self, driver: &SchedulerDriver, offers: Vec<Offer>) {
        if self.1.load(Ordering::SeqCst) {
            let _ = self.0.send(Ev::Offers(offers));
        } else {
            driver.decline(
                offers.into_iter().map(|o| o.id.value).collect(),
                Some(3600.0),
            );
        }
    }
    fn status_update(&mut self, driver: &SchedulerDriver, status: &TaskStatus) {
        driver.acknowledge(status);
        let _ = self.0.send(Ev::Update(Box::new(status.clone())));
    }
    fn agent_lost(&mut self, _: &SchedulerDriver, agent: &str) {
        let _ = self.0.send(Ev::AgentLost(agent.to_owned()));
    }
}

fn config(work_dir: &std::path::Path, address: &str) -> Config {
    Config {
        agent_ping_timeout: Duration::from_millis(300),
        max_agent_ping_timeouts: 3,
        agent_reregister_timeout: Duration::from_secs(10),
        allocation_interval: Duration::from_millis(50),
        ..Config::defaults(work_dir.to_owned(), address)
    }
}

async fn start_master(
    work_dir: &std::path::Path,
    port: u16,
) -> (Arc<Server>, String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = Server::new(config(work_dir, &address)).unwrap();
    let handle = tokio::spawn(server.clone().serve(listener));
    (server, address, handle)
}

fn framework(name: &str, failover_timeout: f64, id: Option<&str>) -> FrameworkInfo {
    FrameworkInfo {
        user: "root".into(),
        name: name.into(),
        failover_timeout: Some(failover_timeout),
        checkpoint: Some(true),
        id: id.map(|v| tepui_proto::v1::FrameworkId { value: v.into() }),
        ..Default::default()
    }
}

fn subscribe(
    master: &str,
    info: FrameworkInfo,
    wants_offers: &Arc<AtomicBool>,
) -> mpsc::UnboundedReceiver<Ev> {
    let (tx, rx) = mpsc::unbounded_channel();
    let config = DriverConfig {
        master: master.to_owned(),
        framework: info,
        implicit_acknowledgements: false,
        subscribe_timeout: Duration::from_secs(30),
        credential: None,
        tls: tepui_proto::tls::Client::plain(),
    };
    tokio::spawn(scheduler::run(config, Forward(tx, wants_offers.clone())));
    rx
}

/// The next event `pick` takes, within `secs`; others are dropped.
async fn next<T>(
    rx: &mut mpsc::UnboundedReceiver<Ev>,
    secs: u64,
    what: &str,
    mut pick: impl FnMut(Ev) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {secs} s"))
            .unwrap_or_else(|| panic!("the driver ended waiting for {what}"));
        if let Some(t) = pick(ev) {
            return t;
        }
    }
}

fn sleep_task(id: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        resources: tepui_proto::resources::parse("cpus:0.05;mem:8").unwrap(),
        command: Some(CommandInfo {
            value: Some("sleep 600".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Launches `tasks` on offers as they come, as many per offer as fit.
async fn launch_all(
    rx: &mut mpsc::UnboundedReceiver<Ev>,
    driver: &SchedulerDriver,
    mut tasks: Vec<TaskInfo>,
    states: &mut BTreeMap<String, (TaskState, String)>,
) {
    while !tasks.is_empty() {
        let offers = next(rx, 30, "offers", |e| match e {
            Ev::Offers(o) => Some(o),
            Ev::Update(s) => {
                record(states, &s);
                None
            }
            _ => None,
        })
        .await;
        for offer in offers {
            let cpus = tepui_proto::resources::scalar(&offer.resources, "cpus");
            // At most 34 a agent, so that the 100 spread over all three.
            let fit = (((cpus + 1e-9) / 0.05) as usize).min(34);
            let take: Vec<TaskInfo> = tasks
                .drain(..fit.min(tasks.len()))
                .map(|mut t| {
                    t.agent_id = offer.agent_id.clone();
                    t
                })
                .collect();
            driver.accept(
                vec![offer.id.value.clone()],
                vec![offer::Operation {
                    r#type: Some(offer::operation::Type::Launch as i32),
                    launch: Some(offer::operation::Launch { task_infos: take }),
                    ..Default::default()
                }],
                None,
            );
        }
    }
}

fn record(states: &mut BTreeMap<String, (TaskState, String)>, s: &TaskStatus) {
    let state = TaskState::try_from(s.state).unwrap();
    let agent = s
        .agent_id
        .as_ref()
        .map(|a| a.value.clone())
        .unwrap_or_default();
    states.insert(s.task_id.value.clone(), (state, agent));
}

async fn until_state(
    rx: &mut mpsc::UnboundedReceiver<Ev>,
    states: &mut BTreeMap<String, (TaskState, String)>,
    what: &str,
    done: impl Fn(&BTreeMap<String, (TaskState, String)>) -> bool,
) {
    while !done(states) {
        let s = next(rx, 60, what, |e| match e {
            Ev::Update(s) => Some(s),
            _ => None,
        })
        .await;
        record(states, &s);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framework_runs_100_tasks_across_3_agents_through_failures() {
    let dir = tempfile::tempdir().unwrap();
    let master_dir = dir.path().join("master");
    let (server, address, master_task) = start_master(&master_dir, 0).await;
    let port: u16 = address.rsplit_once(':').unwrap().1.parse().unwrap();
    let mut agents = Vec::new();
    let mut cleanups = Vec::new();
    let mut ports = Vec::new();
    for i in 0..3 {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ports.push(free.local_addr().unwrap().port());
        drop(free);
        let cgroup = std::path::PathBuf::from(format!(
            "/sys/fs/cgroup/unified/tepui-test-cluster-{}-{i}",
            std::process::id()
        ));
        cleanups.push(Cleanup(cgroup.clone()));
        let work = dir.path().join(format!("agent{i}"));
        agents.push(
            agent_command(&address, &work, &cgroup, ports[i])
                .spawn()
                .unwrap(),
        );
    }
    for _ in 0..200 {
        if server.lock().agents.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.lock().agents.len(), 3, "three agents registered");

    // 100 tasks, spread by DRF over the three agents.
    let wants_offers = Arc::new(AtomicBool::new(true));
    let mut rx = subscribe(
        &address,
        framework("cluster-test", 3600.0, None),
        &wants_offers,
    );
    let (id, driver) = next(&mut rx, 30, "SUBSCRIBED", |e| match e {
        Ev::Registered(id, d) => Some((id, d)),
        _ => None,
    })
    .await;
    let tasks: Vec<TaskInfo> = (0..100).map(|i| sleep_task(&format!("t{i:03}"))).collect();
    let mut states = BTreeMap::new();
    launch_all(&mut rx, &driver, tasks, &mut states).await;
    wants_offers.store(false, Ordering::SeqCst);
    until_state(&mut rx, &mut states, "100 RUNNING", |s| {
        s.values()
            .filter(|(st, _)| *st == TaskState::TaskRunning)
            .count()
            == 100
    })
    .await;
    let used: BTreeSet<&String> = states.values().map(|(_, a)| a).collect();
    assert_eq!(used.len(), 3, "tasks on every agent: {used:?}");
    assert_eq!(
        server.lock().frameworks[&id].tasks.len(),
        100,
        "the master tracks every task"
    );

    // Kill ten.
    for i in 0..10 {
        driver.kill(&format!("t{i:03}"), None, None);
    }
    until_state(&mut rx, &mut states, "10 KILLED", |s| {
        s.values()
            .filter(|(st, _)| *st == TaskState::TaskKilled)
            .count()
            == 10
    })
    .await;
    for i in 0..10 {
        assert_eq!(states[&format!("t{i:03}")].0, TaskState::TaskKilled);
    }

    // Explicit reconciliation of one running and one unknown task.
    driver.reconcile(vec![("t050".into(), None), ("nope".into(), None)]);
    let mut answers = BTreeMap::new();
    while answers.len() < 2 {
        let s = next(&mut rx, 10, "reconciliation", |e| match e {
            Ev::Update(s) if s.reason == Some(task_status::Reason::Reconciliation as i32) => {
                Some(s)
            }
            _ => None,
        })
        .await;
        answers.insert(s.task_id.value.clone(), s.state);
    }
    assert_eq!(answers["t050"], TaskState::TaskRunning as i32);
    assert_eq!(answers["nope"], TaskState::TaskLost as i32);

    // Fail over: the scheduler goes, a new one comes with the id in time.
    driver.stop();
    drop(rx);
    for _ in 0..100 {
        if !server.lock().frameworks[&id].connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!server.lock().frameworks[&id].connected());
    let mut rx = subscribe(
        &address,
        framework("cluster-test", 3600.0, Some(&id)),
        &wants_offers,
    );
    let (again, driver) = next(&mut rx, 30, "SUBSCRIBED after failover", |e| match e {
        Ev::Registered(id, d) => Some((id, d)),
        _ => None,
    })
    .await;
    assert_eq!(again, id, "the framework keeps its id");
    driver.reconcile(Vec::new());
    let mut running = BTreeSet::new();
    while running.len() < 90 {
        let s = next(&mut rx, 10, "implicit reconciliation", |e| match e {
            Ev::Update(s) => Some(s),
            _ => None,
        })
        .await;
        if s.state == TaskState::TaskRunning as i32 {
            running.insert(s.task_id.value.clone());
        }
    }
    assert_eq!(running.len(), 90, "its 90 tasks survived the failover");

    // An agent vanishes: its tasks are LOST, the framework told.
    let victim = states["t050"].1.clone();
    let on_victim: BTreeSet<String> = states
        .iter()
        .filter(|(_, (st, a))| *a == victim && *st == TaskState::TaskRunning)
        .map(|(t, _)| t.clone())
        .collect();
    let victim_port = server.lock().agents[&victim].info.port.unwrap();
    let victim_index = ports
        .iter()
        .position(|p| i32::from(*p) == victim_port)
        .expect("the victim agent's port");
    agents[victim_index].start_kill().unwrap();
    let mut lost = BTreeSet::new();
    let mut agent_lost = false;
    while lost.len() < on_victim.len() || !agent_lost {
        let ev = next(&mut rx, 30, "LOST updates", Some).await;
        match ev {
            Ev::Update(s) if s.state == TaskState::TaskLost as i32 => {
                assert_eq!(s.reason, Some(task_status::Reason::AgentRemoved as i32));
                lost.insert(s.task_id.value.clone());
            }
            Ev::AgentLost(a) => {
                assert_eq!(a, victim);
                agent_lost = true;
            }
            _ => {}
        }
    }
    assert_eq!(lost, on_victim);

    // A framework that does not fail over in time has its tasks killed.
    let short_wants = Arc::new(AtomicBool::new(true));
    let mut short = subscribe(&address, framework("short-lived", 0.5, None), &short_wants);
    let (short_id, short_driver) = next(&mut short, 30, "SUBSCRIBED", |e| match e {
        Ev::Registered(id, d) => Some((id, d)),
        _ => None,
    })
    .await;
    let mut short_states = BTreeMap::new();
    launch_all(
        &mut short,
        &short_driver,
        vec![sleep_task("s1")],
        &mut short_states,
    )
    .await;
    until_state(&mut short, &mut short_states, "s1 RUNNING", |s| {
        s.get("s1")
            .is_some_and(|(st, _)| *st == TaskState::TaskRunning)
    })
    .await;
    short_driver.stop();
    drop(short);
    for _ in 0..200 {
        if server
            .lock()
            .completed_frameworks
            .iter()
            .any(|f| f.id() == short_id)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ended_tasks = server
        .lock()
        .completed_frameworks
        .iter()
        .find(|f| f.id() == short_id)
        .map(|f| f.completed_tasks.len());
    assert_eq!(ended_tasks, Some(1), "torn down after its failover timeout");

    // The master restarts on the same port: the live agents re-register
    // and it knows their tasks again; the framework re-subscribes.
    master_task.abort();
    let _ = master_task.await;
    drop(server);
    let (server, _, _master_task) = start_master(&master_dir, port).await;
    let remembered = {
        let master = server.lock();
        master.expected.len() + master.agents.len()
    };
    assert_eq!(remembered, 2, "the registry names the two live agents");
    next(&mut rx, 30, "re-subscription", |e| match e {
        Ev::Reregistered => Some(()),
        _ => None,
    })
    .await;
    for _ in 0..400 {
        if server.lock().agents.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (agents_back, known) = {
        let master = server.lock();
        let known = master.frameworks.get(&id).map_or(0, |f| {
            f.tasks
                .values()
                .filter(|t| t.task.state == TaskState::TaskRunning as i32)
                .count()
        });
        (master.agents.len(), known)
    };
    assert_eq!(agents_back, 2, "both live agents re-registered");
    assert_eq!(
        known,
        90 - on_victim.len(),
        "the agents' tasks are known again"
    );
    driver.teardown();
    for mut a in agents {
        let _ = a.start_kill();
        let _ = a.wait().await;
    }
}
