//! tepui-executor, the real binary, against the agent's executor API
//! served on 127.0.0.1 by the test, with an in-test stand-in for the rest
//! of the agent: tasks run to their exit status, kills honour the grace
//! period, and a restarted agent gets the unacknowledged updates again.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tepui_agent::executor_api::{self, EventSink, ExecutorHost, UpdateRefused};
use tepui_proto::v1::executor::{Event, call, event};
use tepui_proto::v1::{
    CommandInfo, DurationInfo, KillPolicy, TaskId, TaskInfo, TaskState, TaskStatus, task_status,
};
use tokio::net::TcpListener;

/// The agent as the executor sees it: queued launches, the updates
/// received, and (unless withheld) acknowledgements.
#[derive(Default)]
struct Agent {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    launches: Vec<TaskInfo>,
    updates: Vec<TaskStatus>,
    resent: Vec<TaskStatus>,
    sink: Option<EventSink>,
    withhold_acks: bool,
    /// HEARTBEAT interval (default 30 s).
    heartbeat: Option<Duration>,
    /// How many updates to answer 503, as an agent whose disk is full.
    unavailable: usize,
    /// The updates answered 503.
    refused: Vec<TaskStatus>,
}

impl Agent {
    fn with_task(task: TaskInfo) -> Arc<Self> {
        let agent = Arc::new(Self::default());
        agent.state.lock().unwrap().launches.push(task);
        agent
    }

    fn states(&self) -> Vec<TaskState> {
        self.state
            .lock()
            .unwrap()
            .updates
            .iter()
            .map(|u| TaskState::try_from(u.state).unwrap())
            .collect()
    }

    fn last(&self) -> TaskStatus {
        self.state.lock().unwrap().updates.last().cloned().unwrap()
    }

    async fn send(&self, event: Event) {
        let sink = self.state.lock().unwrap().sink.clone().unwrap();
        assert!(sink.send(&event).await);
    }

    /// Drops the event stream, as a dying agent does.
    fn disconnect(&self) {
        self.state.lock().unwrap().sink = None;
    }
}

impl ExecutorHost for Agent {
    fn heartbeat_interval(&self) -> Duration {
        self.state
            .lock()
            .unwrap()
            .heartbeat
            .unwrap_or(Duration::from_secs(30))
    }

    fn subscribe(
        &self,
        framework: &str,
        executor: &str,
        subscribe: call::Subscribe,
        events: EventSink,
    ) -> Result<(), String> {
        if framework != "fw" || executor != "ex" {
            return Err(format!(
                "unknown executor {executor} of framework {framework}"
            ));
        }
        let mut state = self.state.lock().unwrap();
        let resent: Vec<TaskStatus> = subscribe
            .unacknowledged_updates
            .into_iter()
            .map(|u| u.status)
            .collect();
        state.resent.extend(resent.iter().cloned());
        state.sink = Some(events.clone());
        let launches = std::mem::take(&mut state.launches);
        // The agent takes re-sent updates (dropping duplicates) and
        // acknowledges them, as it does any update.
        let acks: Vec<Event> = if state.withhold_acks {
            Vec::new()
        } else {
            resent.iter().map(executor_api::acknowledged).collect()
        };
        tokio::spawn(async move {
            let subscribed = Event {
                r#type: Some(event::Type::Subscribed as i32),
                subscribed: Some(event::Subscribed::default()),
                ..Default::default()
            };
            events.send(&subscribed).await;
            for task in launches {
                events.send(&executor_api::launch(task)).await;
            }
            for ack in acks {
                events.send(&ack).await;
            }
        });
        Ok(())
    }

    fn update(&self, _: &str, _: &str, status: TaskStatus) -> Result<(), UpdateRefused> {
        let mut state = self.state.lock().unwrap();
        assert!(status.uuid.as_ref().is_some_and(|u| u.len() == 16));
        assert_eq!(status.source, Some(task_status::Source::Executor as i32));
        if state.unavailable > 0 {
            state.unavailable -= 1;
            state.refused.push(status);
            return Err(UpdateRefused::Unavailable("no space left".into()));
        }
        state.updates.push(status.clone());
        if !state.withhold_acks
            && let Some(sink) = state.sink.clone()
        {
            tokio::spawn(async move {
                sink.send(&executor_api::acknowledged(&status)).await;
            });
        }
        Ok(())
    }

    fn message(&self, _: &str, _: &str, _: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
}

/// Serves the executor API of `agent` on `listener`.
fn serve(listener: TcpListener, agent: Arc<Agent>) -> tokio::task::JoinHandle<()> {
    let host: Arc<dyn ExecutorHost> = agent;
    tokio::spawn(tepui_agent::http::serve(
        listener,
        Arc::new(move |request| executor_api::handle(host.clone(), request)),
    ))
}

fn task(script: &str, grace: Option<Duration>) -> TaskInfo {
    TaskInfo {
        name: "t".into(),
        task_id: TaskId { value: "t1".into() },
        command: Some(CommandInfo {
            value: Some(script.into()),
            ..Default::default()
        }),
        kill_policy: grace.map(|g| KillPolicy {
            grace_period: Some(DurationInfo {
                nanoseconds: g.as_nanos() as i64,
            }),
        }),
        ..Default::default()
    }
}

fn executor(port: u16, sandbox: &std::path::Path, checkpoint: bool) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tepui-executor"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MESOS_AGENT_ENDPOINT", format!("127.0.0.1:{port}"))
        .env("MESOS_FRAMEWORK_ID", "fw")
        .env("MESOS_EXECUTOR_ID", "ex")
        .env("MESOS_SANDBOX", sandbox)
        .env("MESOS_CHECKPOINT", if checkpoint { "1" } else { "0" })
        .env("MESOS_RECOVERY_TIMEOUT", "20secs")
        .env("MESOS_SUBSCRIPTION_BACKOFF_MAX", "200ms")
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn exits(child: &mut tokio::process::Child) -> i32 {
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the executor exits")
        .unwrap()
        .code()
        .unwrap_or(-1)
}

async fn wait_for(agent: &Agent, state: TaskState) {
    for _ in 0..400 {
        if agent.states().contains(&state) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {state:?}; got {:?}", agent.states());
}

#[tokio::test]
async fn runs_a_task_to_its_exit_status_in_the_sandbox() {
    let sandbox = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let agent = Agent::with_task(task("echo hello > out.txt; exit 3", None));
    let server = serve(listener, agent.clone());
    let mut child = executor(port, sandbox.path(), false);
    assert_eq!(
        exits(&mut child).await,
        0,
        "exits once its terminal update is acknowledged"
    );
    server.abort();
    assert_eq!(
        agent.states(),
        vec![
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskFailed
        ]
    );
    let last = agent.last();
    assert_eq!(
        last.message.as_deref(),
        Some("Command exited with status 3")
    );
    assert_eq!(
        last.reason,
        Some(task_status::Reason::CommandExecutorFailed as i32)
    );
    assert_eq!(
        std::fs::read_to_string(sandbox.path().join("out.txt")).unwrap(),
        "hello\n"
    );
}

#[tokio::test]
async fn updates_the_agent_could_not_take_go_again_on_its_heartbeat() {
    let sandbox = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let agent = Agent::with_task(task("echo hello", None));
    {
        let mut state = agent.state.lock().unwrap();
        state.unavailable = 2;
        state.heartbeat = Some(Duration::from_millis(200));
    }
    let server = serve(listener, agent.clone());
    let mut child = executor(port, sandbox.path(), true);
    assert_eq!(
        exits(&mut child).await,
        0,
        "exits once every update is taken and acknowledged"
    );
    server.abort();
    let refused: Vec<_> = agent.state.lock().unwrap().refused.clone();
    assert_eq!(refused.len(), 2);
    // The first two were refused, and FINISHED was made meanwhile: it
    // waited behind them, so the agent took each once, in order.
    assert_eq!(
        agent.states(),
        vec![
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskFinished
        ],
        "each update taken exactly once, in the order it was made"
    );
    let taken = agent.state.lock().unwrap().updates.clone();
    for status in refused {
        assert!(
            taken.iter().any(|t| t.uuid == status.uuid),
            "a refused update came again with its uuid"
        );
    }
}

#[tokio::test]
async fn a_kill_sends_sigterm_then_sigkill_after_the_grace_period() {
    for (script, grace, message) in [
        // Ignores SIGTERM: SIGKILL after 300 ms.
        (
            "trap '' TERM; sleep 30 & wait; sleep 30",
            Duration::from_millis(300),
            "Command terminated with signal Killed",
        ),
        // Ends on SIGTERM, well within its grace period.
        (
            "trap 'exit 0' TERM; sleep 30 & wait",
            Duration::from_secs(10),
            "Command exited with status 0",
        ),
    ] {
        let sandbox = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let agent = Agent::with_task(task(script, Some(grace)));
        let server = serve(listener, agent.clone());
        let mut child = executor(port, sandbox.path(), false);
        wait_for(&agent, TaskState::TaskRunning).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        agent
            .send(Event {
                r#type: Some(event::Type::Kill as i32),
                kill: Some(event::Kill {
                    task_id: TaskId { value: "t1".into() },
                    kill_policy: None,
                }),
                ..Default::default()
            })
            .await;
        assert_eq!(exits(&mut child).await, 0);
        server.abort();
        let took = started.elapsed();
        let last = agent.last();
        assert_eq!(last.state, TaskState::TaskKilled as i32, "{script}");
        assert_eq!(last.message.as_deref(), Some(message), "{script}");
        if grace < Duration::from_secs(1) {
            assert!(took >= grace && took < Duration::from_secs(3), "{took:?}");
        } else {
            assert!(
                took < Duration::from_secs(3),
                "ended on SIGTERM, not at the grace period: {took:?}"
            );
        }
    }
}

#[tokio::test]
async fn after_an_agent_restart_unacknowledged_updates_are_sent_again() {
    let sandbox = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let agent = Agent::with_task(task("sleep 1; echo done", None));
    agent.state.lock().unwrap().withhold_acks = true;
    let server = serve(listener, agent.clone());
    let mut child = executor(address.port(), sandbox.path(), true);
    wait_for(&agent, TaskState::TaskRunning).await;

    // The agent dies: its listener and the executor's stream go.
    server.abort();
    agent.disconnect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the executor waits for the agent"
    );

    // A new agent on the same address: the executor subscribes again with
    // the updates nobody acknowledged, and the task carries on to its end.
    let restarted = Arc::new(Agent::default());
    let listener = TcpListener::bind(address).await.unwrap();
    let server = serve(listener, restarted.clone());
    assert_eq!(exits(&mut child).await, 0);
    server.abort();
    let resent: Vec<i32> = restarted
        .state
        .lock()
        .unwrap()
        .resent
        .iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(
        resent,
        vec![
            TaskState::TaskStarting as i32,
            TaskState::TaskRunning as i32
        ]
    );
    assert_eq!(restarted.states(), vec![TaskState::TaskFinished]);
    let mut seen: HashMap<Vec<u8>, ()> = HashMap::new();
    for s in restarted
        .state
        .lock()
        .unwrap()
        .resent
        .iter()
        .chain(agent.state.lock().unwrap().updates.iter())
    {
        seen.insert(s.uuid.clone().unwrap(), ());
    }
    assert_eq!(seen.len(), 2, "the re-sent updates keep their uuids");
}

#[tokio::test]
async fn the_api_refuses_bad_calls_with_a_reason() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve(listener, Arc::new(Agent::default()));
    let post = |content_type: &'static str, body: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let request = format!(
            "POST /api/v1/executor HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    let r = post("text/plain", "{}").await;
    assert!(r.starts_with("HTTP/1.1 415"), "{r}");
    let r = post("application/json", "{").await;
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("failed to parse the call"),
        "{r}"
    );
    let r = post("application/json", r#"{"type":"SUBSCRIBE","framework_id":{"value":"fw"},"executor_id":{"value":"nope"},"subscribe":{}}"#).await;
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("unknown executor nope"),
        "{r}"
    );
    let r = post("application/json", r#"{"type":"UPDATE","framework_id":{"value":"fw"},"executor_id":{"value":"ex"},"update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING"}}}"#).await;
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("uuid"), "{r}");
    server.abort();
}

#[tokio::test]
async fn a_subscribed_executor_is_sent_heartbeats() {
    let agent = Arc::new(Agent::default());
    agent.state.lock().unwrap().heartbeat = Some(Duration::from_millis(50));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _server = serve(listener, agent.clone());
    let env = tepui_driver::executor::ExecutorEnv::from_lookup(|name| match name {
        "MESOS_AGENT_ENDPOINT" => Some(format!("127.0.0.1:{port}")),
        "MESOS_FRAMEWORK_ID" => Some("fw".into()),
        "MESOS_EXECUTOR_ID" => Some("ex".into()),
        "MESOS_SANDBOX" => Some("/tmp".into()),
        _ => None,
    })
    .unwrap();
    let driver = tepui_driver::executor::ExecutorDriver::new(env);
    let mut events = driver.subscribe().await.unwrap();
    let mut heartbeats = 0;
    while heartbeats < 3 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("events keep coming")
            .unwrap()
            .expect("the stream stays open");
        if event.r#type == Some(event::Type::Heartbeat as i32) {
            heartbeats += 1;
        }
    }
}
