//! A minimal master speaking tepui's internal protocol, for the agent's
//! tests and its scale benchmark: it registers the agent (as agent-7),
//! sends it the tasks it holds, acknowledges every status update (unless
//! told to withhold terminal ones), and
//! pings. Shared by `#[path]` so that both use the same stand-in.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use prost::Message;
use tepui_agent::http::{self, Body};
use tepui_agent::master_link::STREAM_ID;
use tepui_proto::internal::{
    AgentRegistered, AgentReregistered, AgentToMaster, MasterToAgent, Ping, RunTask,
    StatusUpdateAcknowledgement, agent_to_master, master_to_agent,
};
use tepui_proto::v1::{AgentId, FrameworkId, FrameworkInfo, TaskInfo};
use tokio::sync::mpsc;

#[derive(Default)]
pub struct Master {
    pub state: Mutex<State>,
}

#[derive(Default)]
pub struct State {
    pub registrations: Vec<AgentToMaster>,
    pub updates: Vec<tepui_proto::internal::StatusUpdate>,
    pub pongs: usize,
    pub stream: Option<mpsc::Sender<Bytes>>,
    pub pending: Vec<TaskInfo>,
    /// Acknowledge no terminal update (as a framework that has not yet),
    /// until set back to false.
    pub withhold_terminal_acks: bool,
    /// Acknowledge no update at all, until set back to false.
    pub withhold_all_acks: bool,
}

pub fn frame(message: &MasterToAgent) -> Bytes {
    tepui_proto::recordio::encode_message(message)
}

impl Master {
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let body = http::read_body(request.into_body(), 1 << 20).await.unwrap();
        let message = AgentToMaster::decode(body.as_ref()).unwrap();
        match message.message.clone() {
            Some(agent_to_master::Message::RegisterAgent(_))
            | Some(agent_to_master::Message::ReregisterAgent(_)) => {
                let (tx, body) = http::channel(16);
                let answer = match &message.message {
                    Some(agent_to_master::Message::RegisterAgent(_)) => {
                        master_to_agent::Message::AgentRegistered(AgentRegistered {
                            agent_id: AgentId {
                                value: "agent-7".into(),
                            },
                            master_info: None,
                            ping_interval_seconds: Some(0.2),
                        })
                    }
                    _ => master_to_agent::Message::AgentReregistered(AgentReregistered {
                        agent_id: AgentId {
                            value: "agent-7".into(),
                        },
                        ping_interval_seconds: Some(0.2),
                        ..Default::default()
                    }),
                };
                let tasks = {
                    let mut state = self.state.lock().unwrap();
                    state.registrations.push(message);
                    state.stream = Some(tx.clone());
                    std::mem::take(&mut state.pending)
                };
                // Sent once the response (and so the stream) is returned.
                tokio::spawn(async move {
                    let mut messages = vec![answer];
                    for task in tasks {
                        messages.push(master_to_agent::Message::RunTask(RunTask {
                            framework_info: FrameworkInfo {
                                user: "root".into(),
                                name: "fw".into(),
                                id: Some(FrameworkId {
                                    value: "fw-1".into(),
                                }),
                                checkpoint: Some(true),
                                ..Default::default()
                            },
                            task,
                        }));
                    }
                    for message in messages {
                        if tx
                            .send(frame(&MasterToAgent {
                                message: Some(message),
                            }))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    let ping = frame(&MasterToAgent {
                        message: Some(master_to_agent::Message::Ping(Ping {
                            connected: Some(true),
                        })),
                    });
                    while tx.send(ping.clone()).await.is_ok() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                });
                let mut response = Response::new(body);
                response
                    .headers_mut()
                    .insert(STREAM_ID, "stream-1".parse().unwrap());
                response
            }
            Some(agent_to_master::Message::StatusUpdate(update)) => {
                let ack = StatusUpdateAcknowledgement {
                    agent_id: AgentId {
                        value: "agent-7".into(),
                    },
                    framework_id: update.framework_id.clone(),
                    task_id: update.status.task_id.clone(),
                    uuid: update.status.uuid.clone().unwrap_or_default(),
                };
                let stream = {
                    let mut state = self.state.lock().unwrap();
                    let withheld = state.withhold_all_acks
                        || (state.withhold_terminal_acks
                            && tepui_agent::status_update::is_terminal(update.status.state));
                    state.updates.push(update);
                    state.stream.clone().filter(|_| !withheld)
                };
                if let Some(stream) = stream {
                    let _ = stream
                        .send(frame(&MasterToAgent {
                            message: Some(master_to_agent::Message::StatusUpdateAcknowledgement(
                                ack,
                            )),
                        }))
                        .await;
                }
                http::text(StatusCode::ACCEPTED, "")
            }
            Some(agent_to_master::Message::Pong(_)) => {
                self.state.lock().unwrap().pongs += 1;
                http::text(StatusCode::ACCEPTED, "")
            }
            _ => http::text(StatusCode::ACCEPTED, ""),
        }
    }
}

impl Master {
    /// Sends `message` on the agent's stream; false when there is none.
    pub async fn send(&self, message: master_to_agent::Message) -> bool {
        let stream = self.state.lock().unwrap().stream.clone();
        match stream {
            Some(tx) => tx
                .send(frame(&MasterToAgent {
                    message: Some(message),
                }))
                .await
                .is_ok(),
            None => false,
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A master with `task` to send, serving on a fresh port.
pub async fn master_with(
    tasks: Vec<TaskInfo>,
) -> (Arc<Master>, String, tokio::task::JoinHandle<()>) {
    let master = Arc::new(Master::default());
    master.state.lock().unwrap().pending = tasks;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = {
        let master = master.clone();
        tokio::spawn(http::serve(
            listener,
            Arc::new(move |r| master.clone().handle(r)),
        ))
    };
    (master, address, server)
}
