//! The agent's link to its master, over tepui's internal protocol:
//!
//! - the agent POSTs one `AgentToMaster` (protobuf) to the master's
//!   `/tepui/v1/agent`; a RegisterAgent or ReregisterAgent is answered 200
//!   with a RecordIO stream of `MasterToAgent` (protobuf) whose first
//!   message is AgentRegistered or AgentReregistered, and a
//!   `Tepui-Agent-Stream-Id` header;
//! - every later message is its own POST carrying that header (202);
//! - the master pings on the stream; silence for five ping intervals, or
//!   the stream's end, means the master is lost: the agent re-registers
//!   with backoff, reporting what it runs, and forwards again every
//!   status update still awaiting acknowledgement.
//!
//! The agent id the master assigns is checkpointed (meta/slaves/latest and
//! slave.info), so a restarted agent re-registers as itself.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use prost::Message;
use tepui_driver::record_stream::RecordStream;
use tepui_proto::authentication::Credential;
use tepui_proto::internal::{
    AgentToMaster, MasterToAgent, Pong, RegisterAgent, ReregisterAgent, agent_to_master,
    master_to_agent,
};
use tepui_proto::media::PROTOBUF;
use tepui_proto::v1::{AgentId, AgentInfo};
use tokio::sync::mpsc;

use crate::checkpoint;
use crate::paths::Layout;
use crate::runner::Runner;

/// The stream id header.
pub const STREAM_ID: &str = "Tepui-Agent-Stream-Id";
/// The path on the master.
pub const PATH: &str = "/tepui/v1/agent";

/// How the link behaves.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// host:port of the master.
    pub master: String,
    /// This agent, without its id (hostname, port, resources, attributes).
    pub agent_info: AgentInfo,
    /// IP:PORT the agent's HTTP API serves on.
    pub endpoint: String,
    /// The work dir, for the agent id's checkpoint.
    pub layout: Layout,
    /// The longest wait between registration attempts.
    pub backoff_max: Duration,
    /// The agent's credential (`--credential`), presented on every
    /// message.
    pub credential: Option<Credential>,
    /// Plain HTTP, or TLS with the master verified against the CA.
    pub tls: tepui_proto::tls::Client,
}

/// A link failure (the loop logs it and tries again).
#[derive(Debug, thiserror::Error)]
#[error("master {master}: {why}")]
pub struct LinkError {
    /// The master.
    pub master: String,
    /// What failed.
    pub why: String,
}

/// The agent id checkpointed by an earlier run, if any.
pub fn checkpointed_agent_id(
    layout: &Layout,
) -> Result<Option<String>, checkpoint::CheckpointError> {
    let latest = layout.latest_agent();
    let Ok(target) = std::fs::read_link(&latest) else {
        return Ok(None);
    };
    let Some(id) = target
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
    else {
        return Ok(None);
    };
    let info_path = layout
        .agent_info(&id)
        .map_err(|e| checkpoint::CheckpointError {
            path: latest.clone(),
            why: e.to_string(),
        })?;
    match checkpoint::read::<AgentInfo>(&info_path)? {
        Some(info) if info.id.as_ref().is_some_and(|i| i.value == id) => Ok(Some(id)),
        Some(_) => Err(checkpoint::CheckpointError {
            path: info_path,
            why: format!("does not hold agent id {id}"),
        }),
        None => Ok(None),
    }
}

/// Checkpoints the agent's info with its id, and points `latest` at it.
fn checkpoint_agent(layout: &Layout, info: &AgentInfo, id: &str) -> Result<(), LinkError> {
    let fail = |why: String| LinkError {
        master: String::new(),
        why,
    };
    let mut info = info.clone();
    info.id = Some(AgentId {
        value: id.to_owned(),
    });
    let path = layout.agent_info(id).map_err(|e| fail(e.to_string()))?;
    checkpoint::write(&path, &info).map_err(|e| fail(e.to_string()))?;
    let latest = layout.latest_agent();
    let tmp = latest.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(id, &tmp).map_err(|e| fail(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &latest).map_err(|e| fail(format!("{}: {e}", latest.display())))
}

struct Connection {
    client: Client<tepui_proto::tls::Connector, Full<Bytes>>,
    config: LinkConfig,
}

impl Connection {
    fn fail(&self, why: impl Into<String>) -> LinkError {
        LinkError {
            master: self.config.master.clone(),
            why: why.into(),
        }
    }

    async fn post(
        &self,
        message: &AgentToMaster,
        stream_id: Option<&str>,
    ) -> Result<hyper::Response<Incoming>, LinkError> {
        let uri: Uri = format!(
            "{}://{}{PATH}",
            self.config.tls.scheme(),
            self.config.master
        )
        .parse()
        .map_err(|e| self.fail(format!("bad address: {e}")))?;
        let mut request = Request::post(uri)
            .header(CONTENT_TYPE, PROTOBUF)
            .header(ACCEPT, PROTOBUF);
        if let Some(id) = stream_id {
            request = request.header(STREAM_ID, id);
        }
        if let Some(credential) = &self.config.credential {
            request = request.header(AUTHORIZATION, credential.basic_header());
        }
        let request = request
            .body(Full::new(Bytes::from(message.encode_to_vec())))
            .map_err(|e| self.fail(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| self.fail(e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(self.fail(format!("{status}: {}", String::from_utf8_lossy(&body))));
        }
        Ok(response)
    }
}

/// The next `MasterToAgent` of the registration stream; None at its end.
async fn next_message(records: &mut RecordStream) -> Result<Option<MasterToAgent>, String> {
    match records.next().await? {
        Some(record) => MasterToAgent::decode(record)
            .map(Some)
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

/// Keeps the agent registered with its master for as long as it runs:
/// messages from the master go to `runner`; `outgoing` (the runner's
/// updates and messages) goes to the master.
pub async fn run(
    config: LinkConfig,
    runner: Arc<Runner>,
    mut outgoing: mpsc::UnboundedReceiver<AgentToMaster>,
) {
    let connection = Connection {
        client: Client::builder(hyper_util::rt::TokioExecutor::new()).build(config.tls.connector()),
        config,
    };
    let mut backoff = Duration::from_millis(200);
    loop {
        let ended = session(&connection, &runner, &mut outgoing).await;
        runner.set_registered(false);
        match ended {
            Ok(()) => {
                tracing::warn!(master = %connection.config.master, "lost the master; registering again");
                backoff = Duration::from_millis(200);
            }
            Err(e) => tracing::warn!(error = %e, "registering with the master"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(connection.config.backoff_max);
    }
}

/// One registration and the life of its stream.
async fn session(
    connection: &Connection,
    runner: &Arc<Runner>,
    outgoing: &mut mpsc::UnboundedReceiver<AgentToMaster>,
) -> Result<(), LinkError> {
    let config = &connection.config;
    let known =
        checkpointed_agent_id(&config.layout).map_err(|e| connection.fail(e.to_string()))?;
    let version = env!("CARGO_PKG_VERSION").to_owned();
    let hello = match &known {
        Some(id) => {
            let mut info = config.agent_info.clone();
            info.id = Some(AgentId { value: id.clone() });
            let (frameworks, executor_infos, tasks) = runner.report();
            agent_to_master::Message::ReregisterAgent(ReregisterAgent {
                agent_info: info,
                version,
                capabilities: Vec::new(),
                frameworks,
                executor_infos,
                tasks,
                endpoint: Some(config.endpoint.clone()),
            })
        }
        None => agent_to_master::Message::RegisterAgent(RegisterAgent {
            agent_info: config.agent_info.clone(),
            version,
            capabilities: Vec::new(),
            endpoint: Some(config.endpoint.clone()),
        }),
    };
    let response = connection
        .post(
            &AgentToMaster {
                message: Some(hello),
            },
            None,
        )
        .await?;
    let stream_id = response
        .headers()
        .get(STREAM_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| connection.fail(format!("the registration answer has no {STREAM_ID}")))?;
    let mut stream = RecordStream::new(response.into_body(), 64 << 20);
    let first = tokio::time::timeout(Duration::from_secs(30), next_message(&mut stream))
        .await
        .map_err(|_| connection.fail("no registration answer within 30 s"))?
        .map_err(|e| connection.fail(e))?
        .ok_or_else(|| connection.fail("the stream ended before registration"))?;
    let (agent_id, ping_interval) = match first.message {
        Some(master_to_agent::Message::AgentRegistered(r)) => {
            (r.agent_id.value, r.ping_interval_seconds)
        }
        Some(master_to_agent::Message::AgentReregistered(r)) => {
            // Tasks the master does not know must not keep running.
            for task in &r.unknown_tasks {
                tracing::warn!(task = %task.value, "killing a task the master does not know");
                runner.kill_unknown_task(&task.value);
            }
            (r.agent_id.value, r.ping_interval_seconds)
        }
        other => {
            return Err(connection.fail(format!("expected a registration answer, got {other:?}")));
        }
    };
    if known.as_ref().is_some_and(|k| *k != agent_id) {
        return Err(connection.fail(format!(
            "the master gave id {agent_id} to an agent checkpointed as {}",
            known.unwrap_or_default()
        )));
    }
    checkpoint_agent(&config.layout, &config.agent_info, &agent_id)?;
    runner.set_agent_id(&agent_id);
    tracing::info!(master = %config.master, agent_id = %agent_id, reregistered = known.is_some(), "registered with the master");
    runner.set_registered(true);
    runner.forward_pending();
    let silence = Duration::from_secs_f64(ping_interval.unwrap_or(15.0).max(0.1) * 5.0);
    // Reading the stream and sending to the master run side by side, so
    // that a master slow to answer a POST never stops the agent reading
    // (which could be what the master is waiting for).
    let reader = async {
        loop {
            let message = match tokio::time::timeout(silence, next_message(&mut stream)).await {
                Err(_) => {
                    return Err(connection.fail(format!("no ping for {} s", silence.as_secs())));
                }
                Ok(Err(e)) => return Err(connection.fail(e)),
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(m))) => m,
            };
            if let Some(master_to_agent::Message::Ping(_)) = &message.message {
                let pong = AgentToMaster {
                    message: Some(agent_to_master::Message::Pong(Pong {})),
                };
                if let Err(e) = connection.post(&pong, Some(&stream_id)).await {
                    tracing::warn!(error = %e, "answering a ping");
                }
                continue;
            }
            dispatch(runner, message);
        }
    };
    let writer = async {
        while let Some(message) = outgoing.recv().await {
            // A message lost here is not lost: status updates are
            // forwarded again until acknowledged.
            if let Err(e) = connection.post(&message, Some(&stream_id)).await {
                tracing::warn!(error = %e, "sending to the master");
            }
        }
    };
    tokio::select! {
        ended = reader => ended,
        () = writer => Ok(()),
    }
}

/// What a message from the master means to the runner.
fn dispatch(runner: &Arc<Runner>, message: MasterToAgent) {
    use master_to_agent::Message as M;
    match message.message {
        Some(M::RunTask(run)) => {
            let framework = crate::runner::framework_id(&run.framework_info);
            let task = run.task.task_id.value.clone();
            if let Err(e) = runner.run_task(run.framework_info, run.task) {
                tracing::warn!(error = %e, "refusing a task");
                runner.reject_task(&framework, &task, &e);
            }
        }
        Some(M::RunTaskGroup(run)) => {
            let framework = crate::runner::framework_id(&run.framework_info);
            let tasks: Vec<String> = run
                .task_group
                .tasks
                .iter()
                .map(|t| t.task_id.value.clone())
                .collect();
            if let Err(e) = runner.run_task_group(run.framework_info, run.executor, run.task_group)
            {
                tracing::warn!(error = %e, "refusing a task group");
                for task in tasks {
                    runner.reject_task(&framework, &task, &e);
                }
            }
        }
        Some(M::ShutdownExecutor(shutdown)) => {
            runner.shutdown_executor(&shutdown.framework_id.value, &shutdown.executor_id.value)
        }
        Some(M::FrameworkMessage(message)) => runner.message_executor(
            &message.framework_id.value,
            &message.executor_id.value,
            message.data,
        ),
        Some(M::KillTask(kill)) => runner.kill_task(
            &kill.framework_id.value,
            &kill.task_id.value,
            kill.kill_policy,
        ),
        Some(M::StatusUpdateAcknowledgement(ack)) => {
            runner.acknowledge(&ack.framework_id.value, &ack.task_id.value, &ack.uuid)
        }
        Some(M::ShutdownFramework(shutdown)) => {
            runner.shutdown_framework(&shutdown.framework_id.value)
        }
        Some(other) => {
            tracing::warn!(message = ?other, "an unexpected master message")
        }
        None => {}
    }
}
