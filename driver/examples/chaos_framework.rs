//! The chaos tier's framework on the Rust scheduler driver (tests/vm/chaos/):
//! launches a fixed mix of tasks (busybox image or plain command, short or
//! long, some fetching a URI), acknowledges every update explicitly, and
//! logs each update as one line for tests/vm/chaos/check.py. It reconciles
//! its open tasks every 20 s while the agent and master are being killed,
//! and once all are terminal (or at the deadline) it reconciles them all a
//! last time and stops as a failover, so the master keeps its tasks for the
//! check. The pymesos framework (chaos_pymesos.py) launches the same mix.
//!
//!   usage: chaos_framework MASTER PREFIX TASKS IMAGE DEADLINE_SECS LOG

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tepui_driver::scheduler::{self, DriverConfig, Scheduler, SchedulerDriver};
use tepui_proto::v1::{
    AgentId, CommandInfo, ContainerInfo, FrameworkInfo, Image, MasterInfo, Offer, TaskId, TaskInfo,
    TaskState, TaskStatus, command_info, container_info, framework_info, image, offer, task_status,
};

/// What both frameworks of the chaos tier launch as task `index`.
struct Spec {
    image: bool,
    sleep: u64,
    uri: bool,
}

fn spec(index: usize) -> Spec {
    Spec {
        image: index.is_multiple_of(2),
        sleep: if index.is_multiple_of(7) {
            20 + (index % 15) as u64
        } else {
            (index % 4) as u64
        },
        uri: index % 5 == 1,
    }
}

/// The shared bookkeeping of the callbacks and the reconcile ticker.
#[derive(Default)]
struct Book {
    next: usize,
    /// Launched tasks and the agent each went to.
    launched: BTreeMap<String, String>,
    terminal: BTreeSet<String>,
    driver: Option<SchedulerDriver>,
}

struct Chaos {
    prefix: String,
    total: usize,
    image: String,
    book: Arc<Mutex<Book>>,
    log: Arc<Mutex<File>>,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn write_line(log: &Mutex<File>, line: &str) {
    if let Ok(mut file) = log.lock() {
        let _ = writeln!(file, "{} {line}", now_ms());
        let _ = file.flush();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Chaos {
    fn task(&self, index: usize, agent: &AgentId) -> TaskInfo {
        let id = format!("{}-{index}", self.prefix);
        let s = spec(index);
        let fetch = if s.uri {
            "test -s \"${MESOS_SANDBOX:-.}/payload.txt\" && "
        } else {
            ""
        };
        let command = CommandInfo {
            shell: Some(true),
            value: Some(format!("{fetch}echo out-{id}; sleep {}", s.sleep)),
            uris: if s.uri {
                vec![command_info::Uri {
                    value: "/var/tmp/chaos/payload.txt".to_owned(),
                    ..Default::default()
                }]
            } else {
                Vec::new()
            },
            user: Some("root".to_owned()),
            ..Default::default()
        };
        let container = s.image.then(|| ContainerInfo {
            r#type: container_info::Type::Mesos as i32,
            mesos: Some(container_info::MesosInfo {
                image: Some(Image {
                    r#type: image::Type::Docker as i32,
                    docker: Some(image::Docker {
                        name: self.image.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        });
        let mut resources = tepui_proto::resources::parse("cpus:0.1;mem:32").unwrap_or_default();
        for r in &mut resources {
            r.allocation_info = Some(tepui_proto::v1::resource::AllocationInfo {
                role: Some("*".to_owned()),
            });
        }
        TaskInfo {
            name: id.clone(),
            task_id: TaskId { value: id },
            agent_id: agent.clone(),
            resources,
            command: Some(command),
            container,
            ..Default::default()
        }
    }
}

impl Scheduler for Chaos {
    fn registered(&mut self, driver: &SchedulerDriver, framework_id: &str, _: &MasterInfo) {
        write_line(&self.log, &format!("registered {framework_id}"));
        if let Ok(mut book) = self.book.lock() {
            book.driver = Some(driver.clone());
        }
    }

    fn reregistered(&mut self, _: &SchedulerDriver, _: &MasterInfo) {
        write_line(&self.log, "reregistered");
    }

    fn disconnected(&mut self, _: &SchedulerDriver) {
        write_line(&self.log, "disconnected");
    }

    fn resource_offers(&mut self, driver: &SchedulerDriver, offers: Vec<Offer>) {
        let Ok(mut book) = self.book.lock() else {
            return;
        };
        for offer in offers {
            let mut cpus = tepui_proto::resources::scalar(&offer.resources, "cpus");
            let mut mem = tepui_proto::resources::scalar(&offer.resources, "mem");
            let mut tasks = Vec::new();
            while book.next < self.total && cpus >= 0.1 - 1e-9 && mem >= 32.0 {
                let task = self.task(book.next, &offer.agent_id);
                book.launched
                    .insert(task.task_id.value.clone(), offer.agent_id.value.clone());
                write_line(&self.log, &format!("launch {}", task.task_id.value));
                tasks.push(task);
                book.next += 1;
                cpus -= 0.1;
                mem -= 32.0;
            }
            if tasks.is_empty() {
                driver.decline(vec![offer.id.value], Some(2.0));
            } else {
                driver.accept(
                    vec![offer.id.value],
                    vec![offer::Operation {
                        r#type: Some(offer::operation::Type::Launch as i32),
                        launch: Some(offer::operation::Launch { task_infos: tasks }),
                        ..Default::default()
                    }],
                    None,
                );
            }
        }
    }

    fn status_update(&mut self, driver: &SchedulerDriver, status: &TaskStatus) {
        let state = TaskState::try_from(status.state).map_or("UNKNOWN", |s| s.as_str_name());
        let reason = status
            .reason
            .and_then(|r| task_status::Reason::try_from(r).ok())
            .map_or("-", |r| r.as_str_name());
        let source = status
            .source
            .and_then(|s| task_status::Source::try_from(s).ok())
            .map_or("-", |s| s.as_str_name());
        let uuid = status.uuid.as_deref().map_or("-".to_owned(), hex);
        write_line(
            &self.log,
            &format!(
                "update {} {state} {reason} {uuid} {source} {}",
                status.task_id.value,
                status
                    .message
                    .as_deref()
                    .unwrap_or("")
                    .replace(['\n', ' '], "_")
            ),
        );
        driver.acknowledge(status);
        if tepui_proto::model::is_terminal(status.state)
            && let Ok(mut book) = self.book.lock()
        {
            book.terminal.insert(status.task_id.value.clone());
        }
    }

    fn error(&mut self, _: &SchedulerDriver, message: &str) {
        write_line(&self.log, &format!("error {}", message.replace('\n', " ")));
    }
}

/// Reconciles the open tasks every 20 s; at the end (all terminal or the
/// deadline) reconciles every task and stops the driver as a failover.
async fn tick(book: Arc<Mutex<Book>>, log: Arc<Mutex<File>>, total: usize, deadline: Instant) {
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (done, open, all, driver) = {
            let Ok(book) = book.lock() else { return };
            let open: Vec<(String, Option<String>)> = book
                .launched
                .iter()
                .filter(|(task, _)| !book.terminal.contains(*task))
                .map(|(t, a)| (t.clone(), Some(a.clone())))
                .collect();
            let all: Vec<(String, Option<String>)> = book
                .launched
                .iter()
                .map(|(t, a)| (t.clone(), Some(a.clone())))
                .collect();
            let done = book.terminal.len() >= total;
            (done, open, all, book.driver.clone())
        };
        let Some(driver) = driver else { continue };
        if done || Instant::now() >= deadline {
            write_line(&log, &format!("final-reconcile {}", all.len()));
            driver.reconcile(all);
            tokio::time::sleep(Duration::from_secs(10)).await;
            write_line(&log, "done");
            driver.stop();
            return;
        }
        if last.elapsed() >= Duration::from_secs(20) && !open.is_empty() {
            last = Instant::now();
            write_line(&log, &format!("reconcile {}", open.len()));
            driver.reconcile(open);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, master, prefix, total, image, deadline, log] = args.as_slice() else {
        return Err("usage: chaos_framework MASTER PREFIX TASKS IMAGE DEADLINE_SECS LOG".into());
    };
    let total: usize = total.parse()?;
    let deadline = Instant::now() + Duration::from_secs(deadline.parse()?);
    let log = Arc::new(Mutex::new(File::create(log)?));
    let book = Arc::new(Mutex::new(Book::default()));
    let framework = FrameworkInfo {
        user: "root".to_owned(),
        name: format!("chaos-{prefix}"),
        roles: vec!["*".to_owned()],
        capabilities: vec![framework_info::Capability {
            r#type: Some(framework_info::capability::Type::MultiRole as i32),
        }],
        checkpoint: Some(true),
        failover_timeout: Some(3600.0),
        ..Default::default()
    };
    let config = DriverConfig {
        master: master.clone(),
        framework,
        implicit_acknowledgements: false,
        // The master is killed and restarted during the run.
        subscribe_timeout: Duration::from_secs(600),
        credential: None,
        tls: tepui_proto::tls::Client::plain(),
    };
    let chaos = Chaos {
        prefix: prefix.clone(),
        total,
        image: image.clone(),
        book: book.clone(),
        log: log.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let ticker = tokio::spawn(tick(book, log.clone(), total, deadline));
        let driven = scheduler::run(config, chaos).await;
        ticker.abort();
        if let Err(e) = &driven {
            write_line(&log, &format!("error {e}"));
        }
        driven
    })?;
    Ok(())
}
