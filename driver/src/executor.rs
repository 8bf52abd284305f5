//! The executor driver: the Mesos v1 executor API from the executor's
//! side. It reads the environment the agent gives an executor, subscribes
//! (re-sending what the agent has not acknowledged), streams events, and
//! sends updates and messages; an update is kept until the agent
//! acknowledges it, so a reconnect after an agent restart re-sends it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use tepui_proto::media::Encoding;

use crate::http_call::{PostFailure, post};
use crate::record_stream::RecordStream;
use tepui_proto::v1::executor::{Call, Event, call, event};
use tepui_proto::v1::{ExecutorId, FrameworkId, TaskInfo, TaskStatus, task_status};

/// The largest event accepted.
const MAX_EVENT: usize = 64 << 20;

/// A driver failure.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// An environment variable the agent sets is missing or bad.
    #[error("environment variable {name}: {why}")]
    Environment {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The agent could not be reached, or the connection broke.
    #[error("agent {endpoint}: {why}")]
    Connection {
        /// The agent's endpoint.
        endpoint: String,
        /// What failed.
        why: String,
    },
    /// The agent refused a call.
    #[error("agent {endpoint} answered {status}: {message}")]
    Refused {
        /// The agent's endpoint.
        endpoint: String,
        /// The status.
        status: StatusCode,
        /// The agent's message.
        message: String,
    },
    /// An event did not decode.
    #[error("agent {endpoint}: a bad event: {why}")]
    Event {
        /// The agent's endpoint.
        endpoint: String,
        /// What was wrong.
        why: String,
    },
}

/// The first wait between subscription attempts.
const RETRY_MIN: Duration = Duration::from_millis(100);

/// The longest wait between subscription attempts: a quarter of
/// MESOS_SUBSCRIPTION_BACKOFF_MAX, which the agent sets to its executor
/// re-registration timeout, so that an executor tries at least four times
/// inside the window a restarted agent gives it, even on a loaded machine.
fn retry_max(backoff_max: Duration) -> Duration {
    (backoff_max / 4).max(RETRY_MIN)
}

/// What the agent tells an executor through its environment.
#[derive(Debug, Clone)]
pub struct ExecutorEnv {
    /// host:port of the agent's HTTP API (MESOS_AGENT_ENDPOINT).
    pub agent_endpoint: String,
    /// MESOS_FRAMEWORK_ID.
    pub framework_id: String,
    /// MESOS_EXECUTOR_ID.
    pub executor_id: String,
    /// MESOS_CHECKPOINT: whether to wait for a restarted agent.
    pub checkpoint: bool,
    /// MESOS_RECOVERY_TIMEOUT: how long to wait for it.
    pub recovery_timeout: Duration,
    /// MESOS_SUBSCRIPTION_BACKOFF_MAX: the longest wait between attempts.
    pub subscription_backoff_max: Duration,
    /// MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD: the time to end on SHUTDOWN.
    pub shutdown_grace_period: Duration,
    /// MESOS_SANDBOX: the sandbox as the executor sees it.
    pub sandbox: String,
    /// MESOS_EXECUTOR_AUTHENTICATION_TOKEN: sent as `Authorization:
    /// Bearer` on every call, when the agent gave one.
    pub authentication_token: Option<String>,
    /// LIBPROCESS_SSL_*: plain HTTP, or TLS with the agent verified
    /// against LIBPROCESS_SSL_CA_FILE.
    pub tls: tepui_proto::tls::Client,
}

pub use tepui_proto::duration::parse as parse_duration;

impl ExecutorEnv {
    /// Reads the environment.
    pub fn from_env() -> Result<Self, DriverError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `get` (the environment, or a test's map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, DriverError> {
        let required = |name: &'static str| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or(DriverError::Environment {
                    name,
                    why: "not set".into(),
                })
        };
        let duration = |name: &'static str, default: Duration| match get(name) {
            None => Ok(default),
            Some(v) => parse_duration(&v).ok_or(DriverError::Environment {
                name,
                why: format!("{v:?} is not a duration like 15mins"),
            }),
        };
        Ok(Self {
            agent_endpoint: required("MESOS_AGENT_ENDPOINT")?,
            framework_id: required("MESOS_FRAMEWORK_ID")?,
            executor_id: required("MESOS_EXECUTOR_ID")?,
            checkpoint: get("MESOS_CHECKPOINT").is_some_and(|v| v == "1" || v == "true"),
            recovery_timeout: duration("MESOS_RECOVERY_TIMEOUT", Duration::from_secs(15 * 60))?,
            subscription_backoff_max: duration(
                "MESOS_SUBSCRIPTION_BACKOFF_MAX",
                Duration::from_secs(2),
            )?,
            shutdown_grace_period: duration(
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
                Duration::from_secs(5),
            )?,
            sandbox: get("MESOS_SANDBOX")
                .or_else(|| get("MESOS_DIRECTORY"))
                .unwrap_or_else(|| ".".into()),
            authentication_token: get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN")
                .filter(|t| !t.is_empty()),
            tls: tepui_proto::tls::Settings::from_lookup(&get)
                .and_then(|settings| settings.client())
                .map_err(|e| DriverError::Environment {
                    name: "LIBPROCESS_SSL_*",
                    why: e.to_string(),
                })?,
        })
    }
}

/// Now, in seconds since the epoch, as TaskStatus.timestamp carries it.
pub fn timestamp() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// 16 random bytes, for update uuids.
pub fn random_uuid() -> Vec<u8> {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom(2) into a buffer of the length given.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != 16 {
        // Never expected on Linux >= 3.17; fall back to time and pid.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    // Version 4, variant 1, as a UUID.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes.to_vec()
}

/// The executor's connection to its agent.
pub struct ExecutorDriver {
    env: ExecutorEnv,
    client: Client<tepui_proto::tls::Connector, Full<Bytes>>,
    encoding: Encoding,
    /// Updates sent but not acknowledged, in the order they were sent.
    unacknowledged: Mutex<Vec<TaskStatus>>,
    /// Tasks launched that have had no update acknowledged yet.
    unacknowledged_tasks: Mutex<BTreeMap<String, TaskInfo>>,
    /// Updates the agent could not take yet (it answered 503), in the
    /// order they were made, to send again with
    /// [`ExecutorDriver::resend_deferred`]. Held across each send, so that
    /// a task's updates reach the agent in order: one made while an older
    /// update of its task waits here waits behind it.
    deferred: tokio::sync::Mutex<Vec<TaskStatus>>,
}

/// The event stream of one subscription.
pub struct EventStream {
    records: RecordStream,
    encoding: Encoding,
    endpoint: String,
}

impl EventStream {
    /// The next event; None when the agent closed the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, DriverError> {
        let Some(record) = self
            .records
            .next()
            .await
            .map_err(|why| DriverError::Connection {
                endpoint: self.endpoint.clone(),
                why,
            })?
        else {
            return Ok(None);
        };
        self.encoding
            .decode::<Event>(&record)
            .map(Some)
            .map_err(|e| DriverError::Event {
                endpoint: self.endpoint.clone(),
                why: e.to_string(),
            })
    }
}

impl ExecutorDriver {
    /// A driver for the executor `env` describes.
    pub fn new(env: ExecutorEnv) -> Self {
        let client =
            Client::builder(hyper_util::rt::TokioExecutor::new()).build(env.tls.connector());
        Self {
            env,
            client,
            encoding: Encoding::Protobuf,
            unacknowledged: Mutex::new(Vec::new()),
            unacknowledged_tasks: Mutex::new(BTreeMap::new()),
            deferred: tokio::sync::Mutex::new(Vec::new()),
        }
    }

    /// The environment it was made from.
    pub fn env(&self) -> &ExecutorEnv {
        &self.env
    }

    fn call(&self, kind: call::Type) -> Call {
        Call {
            executor_id: ExecutorId {
                value: self.env.executor_id.clone(),
            },
            framework_id: FrameworkId {
                value: self.env.framework_id.clone(),
            },
            r#type: Some(kind as i32),
            ..Default::default()
        }
    }

    async fn post(&self, call: &Call) -> Result<hyper::Response<Incoming>, DriverError> {
        let endpoint = &self.env.agent_endpoint;
        let uri = format!("{}://{endpoint}/api/v1/executor", self.env.tls.scheme());
        let bearer = self
            .env
            .authentication_token
            .as_ref()
            .map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .as_deref()
            .map(|b| ("Authorization", b))
            .into_iter()
            .collect();
        post(&self.client, &uri, self.encoding, call, &headers)
            .await
            .map_err(|failure| match failure {
                PostFailure::Broken(why) => DriverError::Connection {
                    endpoint: endpoint.clone(),
                    why,
                },
                PostFailure::Refused(status, message) => DriverError::Refused {
                    endpoint: endpoint.clone(),
                    status,
                    message,
                },
            })
    }

    /// Subscribes, re-sending every unacknowledged update and task.
    pub async fn subscribe(&self) -> Result<EventStream, DriverError> {
        let mut call = self.call(call::Type::Subscribe);
        call.subscribe = Some(call::Subscribe {
            unacknowledged_tasks: self
                .unacknowledged_tasks
                .lock()
                .map(|t| t.values().cloned().collect())
                .unwrap_or_default(),
            unacknowledged_updates: self
                .unacknowledged
                .lock()
                .map(|u| {
                    u.iter()
                        .map(|s| call::Update { status: s.clone() })
                        .collect()
                })
                .unwrap_or_default(),
        });
        let response = self.post(&call).await?;
        Ok(EventStream {
            records: RecordStream::new(response.into_body(), MAX_EVENT),
            encoding: self.encoding,
            endpoint: self.env.agent_endpoint.clone(),
        })
    }

    /// Subscribes, retrying with backoff for as long as the executor may
    /// wait for its agent (the recovery timeout when checkpointing). A 503
    /// (the agent has not finished recovery) is retried like an agent
    /// that does not answer; any other refusal ends the attempts.
    pub async fn subscribe_with_retry(&self) -> Result<EventStream, DriverError> {
        let deadline = tokio::time::Instant::now()
            + if self.env.checkpoint {
                self.env.recovery_timeout
            } else {
                Duration::ZERO
            };
        let mut backoff = RETRY_MIN;
        loop {
            match self.subscribe().await {
                Ok(stream) => return Ok(stream),
                Err(e @ DriverError::Refused { status, .. })
                    if status != StatusCode::SERVICE_UNAVAILABLE =>
                {
                    return Err(e);
                }
                Err(e) if tokio::time::Instant::now() + backoff > deadline => return Err(e),
                Err(e) => {
                    tracing::info!(error = %e, "agent not ready; subscribing again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(retry_max(self.env.subscription_backoff_max));
                }
            }
        }
    }

    /// Records that a task was launched (it is re-sent on resubscribing
    /// until an update of it is acknowledged).
    pub fn launched(&self, task: &TaskInfo) {
        if let Ok(mut tasks) = self.unacknowledged_tasks.lock() {
            tasks.insert(task.task_id.value.clone(), task.clone());
        }
    }

    /// Sends a status update (a uuid, timestamp and source are filled in);
    /// it is kept until acknowledged. A broken connection is not an error:
    /// the update goes again on the next subscription.
    pub async fn update(&self, mut status: TaskStatus) -> Result<(), DriverError> {
        status.uuid = Some(random_uuid());
        status.source = Some(task_status::Source::Executor as i32);
        status.executor_id = Some(ExecutorId {
            value: self.env.executor_id.clone(),
        });
        status.timestamp = Some(timestamp());
        if let Ok(mut pending) = self.unacknowledged.lock() {
            pending.push(status.clone());
        }
        let mut deferred = self.deferred.lock().await;
        if deferred.iter().any(|d| d.task_id == status.task_id) {
            // Sent now, it would overtake its task's older update.
            deferred.push(status);
            return Ok(());
        }
        if !self.send_update(&status).await? {
            deferred.push(status);
        }
        Ok(())
    }

    /// POSTs an update. Returns false when the agent answered 503 (it
    /// could not checkpoint it, or is recovering): the caller defers it. A
    /// broken connection leaves it to the next subscription: neither is
    /// an error.
    async fn send_update(&self, status: &TaskStatus) -> Result<bool, DriverError> {
        let mut call = self.call(call::Type::Update);
        call.update = Some(call::Update {
            status: status.clone(),
        });
        match self.post(&call).await {
            Ok(_) | Err(DriverError::Connection { .. }) => Ok(true),
            Err(DriverError::Refused { status: code, .. })
                if code == StatusCode::SERVICE_UNAVAILABLE =>
            {
                tracing::warn!(task = %status.task_id.value, "the agent could not take an update yet; it goes again");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends again the updates the agent answered 503 (call it now and
    /// then, e.g. on each HEARTBEAT), oldest first; those it takes are
    /// acknowledged as usual. One refused again stays deferred, and so do
    /// the newer updates of its task, unsent, to keep their order.
    pub async fn resend_deferred(&self) -> Result<(), DriverError> {
        let mut deferred = self.deferred.lock().await;
        let mut waiting: Vec<TaskStatus> = Vec::new();
        let mut queue = std::mem::take(&mut *deferred).into_iter();
        while let Some(status) = queue.next() {
            if waiting.iter().any(|w| w.task_id == status.task_id) {
                waiting.push(status);
                continue;
            }
            match self.send_update(&status).await {
                Ok(true) => {}
                Ok(false) => waiting.push(status),
                Err(e) => {
                    waiting.push(status);
                    waiting.extend(queue);
                    *deferred = waiting;
                    return Err(e);
                }
            }
        }
        *deferred = waiting;
        Ok(())
    }

    /// Takes an ACKNOWLEDGED event: the update is no longer re-sent.
    pub fn acknowledge(&self, acknowledged: &event::Acknowledged) {
        if let Ok(mut pending) = self.unacknowledged.lock() {
            pending.retain(|s| s.uuid.as_deref() != Some(acknowledged.uuid.as_slice()));
        }
        if let Ok(mut tasks) = self.unacknowledged_tasks.lock() {
            tasks.remove(&acknowledged.task_id.value);
        }
    }

    /// Whether every update sent has been acknowledged.
    pub fn all_acknowledged(&self) -> bool {
        self.unacknowledged
            .lock()
            .map(|p| p.is_empty())
            .unwrap_or(false)
    }

    /// Sends a message to the framework.
    pub async fn message(&self, data: Vec<u8>) -> Result<(), DriverError> {
        let mut call = self.call(call::Type::Message);
        call.message = Some(call::Message { data });
        self.post(&call).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_durations_and_the_environment_as_mesos_writes_them() {
        let vars = [
            ("MESOS_AGENT_ENDPOINT", "127.0.0.1:5051"),
            ("MESOS_FRAMEWORK_ID", "fw"),
            ("MESOS_EXECUTOR_ID", "ex"),
            ("MESOS_CHECKPOINT", "1"),
            ("MESOS_RECOVERY_TIMEOUT", "1mins"),
        ];
        let env = ExecutorEnv::from_lookup(|n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        assert!(env.checkpoint);
        assert_eq!(env.recovery_timeout, Duration::from_secs(60));
        let missing = ExecutorEnv::from_lookup(|_| None).unwrap_err().to_string();
        assert!(missing.contains("MESOS_AGENT_ENDPOINT"), "{missing}");
        let uuid = random_uuid();
        assert_eq!(uuid.len(), 16);
        assert_ne!(uuid, random_uuid());
    }
}
