//! The scheduler driver: the Mesos v1 scheduler API from the framework's
//! side. [`run`] subscribes, hands each event to a [`Scheduler`]'s
//! callbacks, and re-subscribes with the framework id (failover) when the
//! stream breaks; the callbacks answer through a [`SchedulerDriver`],
//! whose calls are queued and POSTed in order so that a callback never
//! waits on the network.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use tepui_proto::authentication::Credential;
use tepui_proto::media::Encoding;
use tepui_proto::v1::scheduler::{Call, Event, call, event};
use tepui_proto::v1::{
    AgentId, ExecutorId, Filters, FrameworkId, FrameworkInfo, KillPolicy, MasterInfo, Offer,
    OfferId, TaskId, TaskStatus, offer,
};
use tokio::sync::mpsc;

use crate::http_call::{PostFailure, post};
use crate::record_stream::RecordStream;

/// The largest event accepted.
const MAX_EVENT: usize = 64 << 20;

/// A scheduler driver failure.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The master could not be reached, or the connection broke.
    #[error("master {master}: {why}")]
    Connection {
        /// The master.
        master: String,
        /// What failed.
        why: String,
    },
    /// The master refused a call.
    #[error("master {master} answered {status}: {message}")]
    Refused {
        /// The master.
        master: String,
        /// The status.
        status: StatusCode,
        /// The master's message.
        message: String,
    },
}

/// A framework's callbacks, as Mesos's `Scheduler` has them.
#[allow(unused_variables)]
pub trait Scheduler: Send {
    /// Subscribed for the first time.
    fn registered(&mut self, driver: &SchedulerDriver, framework_id: &str, master: &MasterInfo) {}
    /// Subscribed again after a broken stream, with the same id.
    fn reregistered(&mut self, driver: &SchedulerDriver, master: &MasterInfo) {}
    /// The stream broke; the driver subscribes again.
    fn disconnected(&mut self, driver: &SchedulerDriver) {}
    /// New offers.
    fn resource_offers(&mut self, driver: &SchedulerDriver, offers: Vec<Offer>) {}
    /// An offer is no longer valid.
    fn offer_rescinded(&mut self, driver: &SchedulerDriver, offer_id: &str) {}
    /// A task's status changed.
    fn status_update(&mut self, driver: &SchedulerDriver, status: &TaskStatus) {}
    /// An executor sent data.
    fn framework_message(
        &mut self,
        driver: &SchedulerDriver,
        agent_id: &str,
        executor_id: &str,
        data: &[u8],
    ) {
    }
    /// An agent was lost.
    fn agent_lost(&mut self, driver: &SchedulerDriver, agent_id: &str) {}
    /// An executor ended.
    fn executor_lost(
        &mut self,
        driver: &SchedulerDriver,
        executor_id: &str,
        agent_id: &str,
        status: Option<i32>,
    ) {
    }
    /// The master reported an error; the driver stops.
    fn error(&mut self, driver: &SchedulerDriver, message: &str) {}
}

/// What the driver is to do.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// host:port of the master.
    pub master: String,
    /// The framework (with its id to fail over).
    pub framework: FrameworkInfo,
    /// Acknowledge each update once `status_update` returns.
    pub implicit_acknowledgements: bool,
    /// How long to try (re-)subscribing before giving up.
    pub subscribe_timeout: Duration,
    /// The framework's credential, sent as HTTP Basic on every call (a
    /// master with `--authenticate_http_frameworks` needs it).
    pub credential: Option<Credential>,
    /// Plain HTTP, or TLS with the master verified against the CA
    /// (`tepui_proto::tls::Client::from_env()` reads libprocess's
    /// LIBPROCESS_SSL_* variables).
    pub tls: tepui_proto::tls::Client,
}

enum Command {
    Call(Box<Call>),
    Stop,
}

/// The framework's handle on the master, given to every callback.
#[derive(Clone)]
pub struct SchedulerDriver {
    queue: mpsc::UnboundedSender<Command>,
    framework_id: Arc<std::sync::Mutex<Option<String>>>,
    stopped: Arc<AtomicBool>,
}

fn call_of(kind: call::Type) -> Call {
    Call {
        r#type: Some(kind as i32),
        ..Call::default()
    }
}

impl SchedulerDriver {
    fn send(&self, call: Call) {
        let _ = self.queue.send(Command::Call(Box::new(call)));
    }

    /// The framework id, once subscribed.
    pub fn framework_id(&self) -> Option<String> {
        self.framework_id.lock().ok().and_then(|id| id.clone())
    }

    /// Accepts offers with operations; what is left is filtered.
    pub fn accept(
        &self,
        offer_ids: Vec<String>,
        operations: Vec<offer::Operation>,
        filters: Option<Filters>,
    ) {
        let mut c = call_of(call::Type::Accept);
        c.accept = Some(call::Accept {
            offer_ids: offer_ids
                .into_iter()
                .map(|value| OfferId { value })
                .collect(),
            operations,
            filters,
        });
        self.send(c);
    }

    /// Declines offers for `refuse_seconds` (Mesos's default 5 when None).
    pub fn decline(&self, offer_ids: Vec<String>, refuse_seconds: Option<f64>) {
        let mut c = call_of(call::Type::Decline);
        c.decline = Some(call::Decline {
            offer_ids: offer_ids
                .into_iter()
                .map(|value| OfferId { value })
                .collect(),
            filters: refuse_seconds.map(|s| Filters {
                refuse_seconds: Some(s),
            }),
        });
        self.send(c);
    }

    /// Kills a task.
    pub fn kill(&self, task_id: &str, agent_id: Option<&str>, kill_policy: Option<KillPolicy>) {
        let mut c = call_of(call::Type::Kill);
        c.kill = Some(call::Kill {
            task_id: TaskId {
                value: task_id.to_owned(),
            },
            agent_id: agent_id.map(|a| AgentId {
                value: a.to_owned(),
            }),
            kill_policy,
        });
        self.send(c);
    }

    /// Acknowledges an update (explicit acknowledgements).
    pub fn acknowledge(&self, status: &TaskStatus) {
        let (Some(agent), Some(uuid)) = (&status.agent_id, &status.uuid) else {
            return;
        };
        let mut c = call_of(call::Type::Acknowledge);
        c.acknowledge = Some(call::Acknowledge {
            agent_id: agent.clone(),
            task_id: status.task_id.clone(),
            uuid: uuid.clone(),
        });
        self.send(c);
    }

    /// Asks for the latest state of `tasks` (task, agent), or of all.
    pub fn reconcile(&self, tasks: Vec<(String, Option<String>)>) {
        let mut c = call_of(call::Type::Reconcile);
        c.reconcile = Some(call::Reconcile {
            tasks: tasks
                .into_iter()
                .map(|(task, agent)| call::reconcile::Task {
                    task_id: TaskId { value: task },
                    agent_id: agent.map(|value| AgentId { value }),
                })
                .collect(),
        });
        self.send(c);
    }

    /// Asks for offers again, clearing filters.
    pub fn revive(&self, roles: Vec<String>) {
        let mut c = call_of(call::Type::Revive);
        c.revive = Some(call::Revive { roles });
        self.send(c);
    }

    /// Stops offers.
    pub fn suppress(&self, roles: Vec<String>) {
        let mut c = call_of(call::Type::Suppress);
        c.suppress = Some(call::Suppress { roles });
        self.send(c);
    }

    /// Sends data to an executor.
    pub fn message(&self, agent_id: &str, executor_id: &str, data: Vec<u8>) {
        let mut c = call_of(call::Type::Message);
        c.message = Some(call::Message {
            agent_id: AgentId {
                value: agent_id.to_owned(),
            },
            executor_id: ExecutorId {
                value: executor_id.to_owned(),
            },
            data,
        });
        self.send(c);
    }

    /// Shuts an executor down.
    pub fn shutdown(&self, executor_id: &str, agent_id: &str) {
        let mut c = call_of(call::Type::Shutdown);
        c.shutdown = Some(call::Shutdown {
            executor_id: ExecutorId {
                value: executor_id.to_owned(),
            },
            agent_id: AgentId {
                value: agent_id.to_owned(),
            },
        });
        self.send(c);
    }

    /// Tears the framework down (its tasks are killed) and stops.
    pub fn teardown(&self) {
        self.send(call_of(call::Type::Teardown));
        self.stop();
    }

    /// Stops the driver once the queued calls are sent; the framework
    /// stays registered until its failover timeout passes.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = self.queue.send(Command::Stop);
    }
}

struct Connection {
    client: Client<tepui_proto::tls::Connector, Full<Bytes>>,
    /// `http` or `https`.
    scheme: &'static str,
    master: String,
    encoding: Encoding,
    /// `Authorization`, when the framework has a credential.
    authorization: Option<String>,
}

impl Connection {
    async fn post(
        &self,
        call: &Call,
        stream_id: Option<&str>,
    ) -> Result<hyper::Response<Incoming>, SchedulerError> {
        let uri = format!("{}://{}/api/v1/scheduler", self.scheme, self.master);
        let mut headers = Vec::with_capacity(2);
        if let Some(id) = stream_id {
            headers.push(("Mesos-Stream-Id", id));
        }
        if let Some(value) = &self.authorization {
            headers.push(("Authorization", value.as_str()));
        }
        post(&self.client, &uri, self.encoding, call, &headers)
            .await
            .map_err(|failure| match failure {
                PostFailure::Broken(why) => SchedulerError::Connection {
                    master: self.master.clone(),
                    why,
                },
                PostFailure::Refused(status, message) => SchedulerError::Refused {
                    master: self.master.clone(),
                    status,
                    message,
                },
            })
    }
}

/// Runs `scheduler` until it stops the driver (Ok) or the master refuses
/// the framework or cannot be reached within the subscribe timeout (Err).
pub async fn run<S: Scheduler>(
    config: DriverConfig,
    mut scheduler: S,
) -> Result<(), SchedulerError> {
    let (tx, mut queue) = mpsc::unbounded_channel();
    let driver = SchedulerDriver {
        queue: tx,
        framework_id: Arc::new(std::sync::Mutex::new(
            config.framework.id.as_ref().map(|i| i.value.clone()),
        )),
        stopped: Arc::new(AtomicBool::new(false)),
    };
    let connection = Connection {
        client: Client::builder(hyper_util::rt::TokioExecutor::new()).build(config.tls.connector()),
        scheme: config.tls.scheme(),
        master: config.master.clone(),
        encoding: Encoding::Protobuf,
        authorization: config.credential.as_ref().map(Credential::basic_header),
    };
    let mut subscribed_once = false;
    let mut backoff = Duration::from_millis(100);
    let mut deadline = tokio::time::Instant::now() + config.subscribe_timeout;
    loop {
        if driver.stopped.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut info = config.framework.clone();
        let known = driver.framework_id();
        info.id = known.clone().map(|value| FrameworkId { value });
        let mut subscribe = call_of(call::Type::Subscribe);
        subscribe.framework_id = info.id.clone();
        subscribe.subscribe = Some(call::Subscribe {
            framework_info: info,
            ..call::Subscribe::default()
        });
        let response = match connection.post(&subscribe, None).await {
            Ok(r) => r,
            Err(e @ SchedulerError::Refused { .. }) => return Err(e),
            Err(e) if tokio::time::Instant::now() + backoff > deadline => return Err(e),
            Err(e) => {
                tracing::info!(error = %e, "master not reachable; subscribing again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        let stream_id = response
            .headers()
            .get("Mesos-Stream-Id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_default();
        let mut records = RecordStream::new(response.into_body(), MAX_EVENT);
        backoff = Duration::from_millis(100);
        let outcome = session(
            &connection,
            &driver,
            &mut scheduler,
            &mut records,
            &mut queue,
            &stream_id,
            &config,
            &mut subscribed_once,
        )
        .await;
        match outcome {
            Session::Stopped => return Ok(()),
            Session::Error(e) => return Err(e),
            Session::Broken(why) => {
                tracing::warn!(why, "the scheduler stream broke; subscribing again");
                scheduler.disconnected(&driver);
                deadline = tokio::time::Instant::now() + config.subscribe_timeout;
            }
        }
    }
}

enum Session {
    Stopped,
    Broken(String),
    Error(SchedulerError),
}

#[allow(clippy::too_many_arguments)]
async fn session<S: Scheduler>(
    connection: &Connection,
    driver: &SchedulerDriver,
    scheduler: &mut S,
    records: &mut RecordStream,
    queue: &mut mpsc::UnboundedReceiver<Command>,
    stream_id: &str,
    config: &DriverConfig,
    subscribed_once: &mut bool,
) -> Session {
    loop {
        tokio::select! {
            biased;
            command = queue.recv() => {
                let mut call = match command {
                    Some(Command::Call(call)) => *call,
                    Some(Command::Stop) | None => return Session::Stopped,
                };
                call.framework_id = driver.framework_id().map(|value| FrameworkId { value });
                let teardown = call.r#type == Some(call::Type::Teardown as i32);
                match connection.post(&call, Some(stream_id)).await {
                    Ok(_) => {}
                    Err(e @ SchedulerError::Refused { .. }) => {
                        tracing::warn!(error = %e, "the master refused a call");
                    }
                    Err(e) => return Session::Broken(e.to_string()),
                }
                if teardown {
                    return Session::Stopped;
                }
            }
            record = records.next() => {
                let record = match record {
                    Ok(Some(record)) => record,
                    Ok(None) => return Session::Broken("the master closed the stream".into()),
                    Err(why) => return Session::Broken(why),
                };
                let event: Event = match connection.encoding.decode(&record) {
                    Ok(e) => e,
                    Err(e) => return Session::Broken(format!("a bad event: {e}")),
                };
                if let Some(e) = dispatch(driver, scheduler, event, config, subscribed_once) {
                    return Session::Error(e);
                }
            }
        }
    }
}

/// Hands one event to the scheduler; Some on ERROR.
fn dispatch<S: Scheduler>(
    driver: &SchedulerDriver,
    scheduler: &mut S,
    event: Event,
    config: &DriverConfig,
    subscribed_once: &mut bool,
) -> Option<SchedulerError> {
    use event::Type as T;
    match event.r#type.and_then(|t| T::try_from(t).ok()) {
        Some(T::Subscribed) => {
            let subscribed = event.subscribed?;
            let id = subscribed.framework_id.value;
            if let Ok(mut known) = driver.framework_id.lock() {
                *known = Some(id.clone());
            }
            let master = subscribed.master_info.unwrap_or_default();
            if *subscribed_once {
                scheduler.reregistered(driver, &master);
            } else {
                *subscribed_once = true;
                scheduler.registered(driver, &id, &master);
            }
        }
        Some(T::Offers) => {
            let offers = event.offers.map(|o| o.offers).unwrap_or_default();
            scheduler.resource_offers(driver, offers);
        }
        Some(T::Rescind) => {
            if let Some(r) = event.rescind {
                scheduler.offer_rescinded(driver, &r.offer_id.value);
            }
        }
        Some(T::Update) => {
            if let Some(update) = event.update {
                scheduler.status_update(driver, &update.status);
                if config.implicit_acknowledgements {
                    driver.acknowledge(&update.status);
                }
            }
        }
        Some(T::Message) => {
            if let Some(m) = event.message {
                scheduler.framework_message(
                    driver,
                    &m.agent_id.value,
                    &m.executor_id.value,
                    &m.data,
                );
            }
        }
        Some(T::Failure) => {
            if let Some(f) = event.failure {
                let agent = f.agent_id.map(|a| a.value).unwrap_or_default();
                match f.executor_id {
                    Some(executor) => {
                        scheduler.executor_lost(driver, &executor.value, &agent, f.status)
                    }
                    None => scheduler.agent_lost(driver, &agent),
                }
            }
        }
        Some(T::Error) => {
            let message = event.error.map(|e| e.message).unwrap_or_default();
            scheduler.error(driver, &message);
            return Some(SchedulerError::Refused {
                master: config.master.clone(),
                status: StatusCode::OK,
                message,
            });
        }
        _ => {}
    }
    None
}
