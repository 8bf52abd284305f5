//! The scheduler API's events as the master sends them, and the event
//! stream of one subscribed framework.

use bytes::Bytes;
use tepui_proto::media::Encoding;
use tepui_proto::v1::scheduler::{Event, event};
use tepui_proto::v1::{
    AgentId, ExecutorId, MasterInfo, Offer, OfferId, TaskId, TaskState, TaskStatus, task_status,
};
use tokio::sync::mpsc;

use crate::clock;

/// A framework's event stream: RecordIO frames in the encoding the
/// framework accepts, on a channel the master never waits on.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<Bytes>,
    encoding: Encoding,
}

impl EventSink {
    /// A sink writing `encoding` to `tx`.
    pub fn new(tx: mpsc::UnboundedSender<Bytes>, encoding: Encoding) -> Self {
        Self { tx, encoding }
    }

    /// Sends `event`; false once the framework's connection is gone.
    pub fn send(&self, event: &Event) -> bool {
        let Ok(frame) = self.encoding.frame(event) else {
            return false;
        };
        self.tx.send(frame).is_ok()
    }
}

fn of(kind: event::Type) -> Event {
    Event {
        r#type: Some(kind as i32),
        ..Event::default()
    }
}

/// SUBSCRIBED.
pub fn subscribed(framework: &str, heartbeat_seconds: f64, master: &MasterInfo) -> Event {
    Event {
        subscribed: Some(event::Subscribed {
            framework_id: tepui_proto::v1::FrameworkId {
                value: framework.to_owned(),
            },
            heartbeat_interval_seconds: Some(heartbeat_seconds),
            master_info: Some(master.clone()),
        }),
        ..of(event::Type::Subscribed)
    }
}

/// OFFERS.
pub fn offers(offers: Vec<Offer>) -> Event {
    Event {
        offers: Some(event::Offers { offers }),
        ..of(event::Type::Offers)
    }
}

/// RESCIND.
pub fn rescind(offer: &str) -> Event {
    Event {
        rescind: Some(event::Rescind {
            offer_id: OfferId {
                value: offer.to_owned(),
            },
        }),
        ..of(event::Type::Rescind)
    }
}

/// UPDATE.
pub fn update(status: TaskStatus) -> Event {
    Event {
        update: Some(event::Update { status }),
        ..of(event::Type::Update)
    }
}

/// MESSAGE from an executor.
pub fn message(agent: &str, executor: &str, data: Vec<u8>) -> Event {
    Event {
        message: Some(event::Message {
            agent_id: AgentId {
                value: agent.to_owned(),
            },
            executor_id: ExecutorId {
                value: executor.to_owned(),
            },
            data,
        }),
        ..of(event::Type::Message)
    }
}

/// FAILURE: an agent (without executor) or an executor was lost.
pub fn failure(agent: &str, executor: Option<&str>, status: Option<i32>) -> Event {
    Event {
        failure: Some(event::Failure {
            agent_id: Some(AgentId {
                value: agent.to_owned(),
            }),
            executor_id: executor.map(|e| ExecutorId {
                value: e.to_owned(),
            }),
            status,
        }),
        ..of(event::Type::Failure)
    }
}

/// ERROR; the master closes the stream after it.
pub fn error(message: impl Into<String>) -> Event {
    Event {
        error: Some(event::Error {
            message: message.into(),
        }),
        ..of(event::Type::Error)
    }
}

/// HEARTBEAT.
pub fn heartbeat() -> Event {
    of(event::Type::Heartbeat)
}

/// A status update the master makes itself (no uuid: it is not
/// acknowledged), as for a lost agent or a reconciliation.
pub fn master_status(
    task: &str,
    agent: Option<&str>,
    state: TaskState,
    reason: task_status::Reason,
    message: impl Into<String>,
) -> TaskStatus {
    TaskStatus {
        task_id: TaskId {
            value: task.to_owned(),
        },
        state: state as i32,
        message: Some(message.into()),
        source: Some(task_status::Source::Master as i32),
        reason: Some(reason as i32),
        agent_id: agent.map(|a| AgentId {
            value: a.to_owned(),
        }),
        timestamp: Some(clock::now()),
        ..TaskStatus::default()
    }
}
