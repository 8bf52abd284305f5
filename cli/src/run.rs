//! `tepui run`: run one task on a cluster, like `mesos-execute`: subscribe
//! as a framework, launch the task on the first offer that fits, stream
//! its state changes, print its stdout and stderr (read through the
//! agent's `/files`), and exit with its exit code.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use tepui_driver::scheduler::{self, DriverConfig, Scheduler, SchedulerDriver};
use tepui_proto::v1::{
    AgentId, CommandInfo, ContainerInfo, Environment, FrameworkInfo, Image, Offer, TaskId,
    TaskInfo, TaskState, TaskStatus, command_info, container_info, environment, image, offer,
    task_status,
};

use crate::master_http;

/// `tepui run [options] -- CMD...`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The master, as HOST:PORT.
    #[arg(long, env = "TEPUI_MASTER", default_value = "127.0.0.1:5050")]
    master: String,
    /// An OCI image to run the task in (a registry reference, or an image
    /// already in the agent's store).
    #[arg(long, env = "TEPUI_RUN_IMAGE")]
    image: Option<String>,
    /// CPUs for the task.
    #[arg(long, env = "TEPUI_RUN_CPUS", default_value_t = 0.1)]
    cpus: f64,
    /// Memory for the task, in MB.
    #[arg(long, env = "TEPUI_RUN_MEM", default_value_t = 32.0)]
    mem: f64,
    /// An environment variable for the task, as NAME=VALUE (repeatable;
    /// in the environment variable, one per line).
    #[arg(
        long = "env",
        value_name = "NAME=VALUE",
        env = "TEPUI_RUN_ENV",
        value_delimiter = '\n'
    )]
    env: Vec<String>,
    /// A URI to fetch into the sandbox first (repeatable; in the
    /// environment variable, one per line).
    #[arg(long = "uri", env = "TEPUI_RUN_URIS", value_delimiter = '\n')]
    uris: Vec<String>,
    /// The task's name [default: the command].
    #[arg(long, env = "TEPUI_RUN_NAME")]
    name: Option<String>,
    /// The role to run in.
    #[arg(long, env = "TEPUI_RUN_ROLE", default_value = "*")]
    role: String,
    /// The user the task runs as (FrameworkInfo.user and
    /// CommandInfo.user) [default: the invoking user's name].
    #[arg(long, env = "TEPUI_RUN_USER")]
    user: Option<String>,
    /// Give up when no offer fits within this many seconds.
    #[arg(long, env = "TEPUI_RUN_TIMEOUT", default_value_t = 60)]
    timeout: u64,
    /// The command; one word with spaces runs under `sh -c`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// The invoking user's name, as the host's /etc/passwd gives it for the
/// real uid (else $USER, else the uid itself), as mesos-execute does.
fn invoking_user() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .unwrap_or("0")
        .to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == uid)
        .map(|f| f[0].to_owned())
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or(uid)
}

/// The task as `args` describe it (agent id filled at launch).
fn task_info(args: &RunArgs, task_id: &str) -> Result<TaskInfo> {
    let mut variables = Vec::new();
    for pair in &args.env {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--env {pair:?}: expected NAME=VALUE");
        };
        variables.push(environment::Variable {
            name: name.to_owned(),
            value: Some(value.to_owned()),
            ..Default::default()
        });
    }
    let shell = args.command.len() == 1;
    let command = CommandInfo {
        shell: Some(shell),
        value: Some(args.command[0].clone()),
        arguments: if shell {
            Vec::new()
        } else {
            args.command.clone()
        },
        uris: args
            .uris
            .iter()
            .map(|u| command_info::Uri {
                value: u.clone(),
                ..Default::default()
            })
            .collect(),
        environment: (!variables.is_empty()).then_some(Environment { variables }),
        user: args.user.clone(),
    };
    let container = args.image.as_ref().map(|name| ContainerInfo {
        r#type: container_info::Type::Mesos as i32,
        mesos: Some(container_info::MesosInfo {
            image: Some(Image {
                r#type: image::Type::Docker as i32,
                docker: Some(image::Docker {
                    name: name.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    });
    Ok(TaskInfo {
        name: args.name.clone().unwrap_or_else(|| args.command.join(" ")),
        task_id: TaskId {
            value: task_id.to_owned(),
        },
        agent_id: AgentId::default(),
        resources: tepui_proto::resources::parse(&format!("cpus:{};mem:{}", args.cpus, args.mem))?,
        command: Some(command),
        container,
        ..Default::default()
    })
}

/// What the run came to.
#[derive(Debug, Default)]
struct Outcome {
    framework: String,
    agent: Option<(String, String)>,
    state: Option<TaskState>,
    message: String,
}

struct RunOne {
    task: TaskInfo,
    role: String,
    launched: bool,
    outcome: std::sync::Arc<std::sync::Mutex<Outcome>>,
}

fn fits(offer: &Offer, task: &TaskInfo) -> bool {
    ["cpus", "mem"].iter().all(|name| {
        tepui_proto::resources::scalar(&offer.resources, name)
            >= tepui_proto::resources::scalar(&task.resources, name) - 1e-9
    })
}

impl Scheduler for RunOne {
    fn registered(
        &mut self,
        _: &SchedulerDriver,
        framework_id: &str,
        _: &tepui_proto::v1::MasterInfo,
    ) {
        eprintln!("framework {framework_id} registered");
        if let Ok(mut o) = self.outcome.lock() {
            o.framework = framework_id.to_owned();
        }
    }

    fn resource_offers(&mut self, driver: &SchedulerDriver, offers: Vec<Offer>) {
        for offer in offers {
            if self.launched || !fits(&offer, &self.task) {
                driver.decline(vec![offer.id.value], None);
                continue;
            }
            self.launched = true;
            let mut task = self.task.clone();
            task.agent_id = offer.agent_id.clone();
            for r in &mut task.resources {
                r.allocation_info = Some(tepui_proto::v1::resource::AllocationInfo {
                    role: Some(self.role.clone()),
                });
            }
            let address = offer
                .url
                .as_ref()
                .map(|u| {
                    let host = u.address.ip.clone().or(u.address.hostname.clone());
                    format!("{}:{}", host.unwrap_or_default(), u.address.port)
                })
                .unwrap_or_default();
            if let Ok(mut o) = self.outcome.lock() {
                o.agent = Some((offer.agent_id.value.clone(), address));
            }
            eprintln!(
                "launching task {} on agent {}",
                task.task_id.value, offer.agent_id.value
            );
            driver.accept(
                vec![offer.id.value],
                vec![offer::Operation {
                    r#type: Some(offer::operation::Type::Launch as i32),
                    launch: Some(offer::operation::Launch {
                        task_infos: vec![task],
                    }),
                    ..Default::default()
                }],
                None,
            );
            driver.suppress(Vec::new());
        }
    }

    fn status_update(&mut self, driver: &SchedulerDriver, status: &TaskStatus) {
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        let message = status.message.clone().unwrap_or_default();
        let reason = status
            .reason
            .and_then(|r| task_status::Reason::try_from(r).ok())
            .map_or(String::new(), |r| format!(" ({})", r.as_str_name()));
        let said = if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        };
        eprintln!(
            "task {} is {}{reason}{said}",
            status.task_id.value,
            state.as_str_name()
        );
        driver.acknowledge(status);
        if tepui_proto::model::is_terminal(status.state) {
            if let Ok(mut o) = self.outcome.lock() {
                o.state = Some(state);
                o.message = message;
            }
            // Queued after the acknowledgement, so that goes out first; the
            // framework (failover timeout 0) ends with its stream.
            driver.stop();
        }
    }

    fn error(&mut self, _: &SchedulerDriver, message: &str) {
        eprintln!("the master reported an error: {message}");
    }
}

/// The exit code for a terminal state: the command's own for FINISHED and
/// FAILED (from the executor's message), 128+9 for KILLED, 1 otherwise.
fn exit_code(state: TaskState, message: &str) -> i32 {
    let status = message
        .strip_prefix("Command exited with status ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<i32>().ok());
    match state {
        TaskState::TaskFinished => 0,
        TaskState::TaskFailed => status.unwrap_or(1),
        TaskState::TaskKilled => 137,
        _ => 1,
    }
}

/// The task's sandbox directory, from the agent's `/state`.
async fn sandbox_of(agent: &str, framework: &str, task: &str) -> Result<String> {
    let state = master_http::get_json(agent, "/state").await?;
    let frameworks = state["frameworks"].as_array().into_iter().flatten().chain(
        state["completed_frameworks"]
            .as_array()
            .into_iter()
            .flatten(),
    );
    for f in frameworks {
        if f["id"] != framework {
            continue;
        }
        for e in f["executors"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(f["completed_executors"].as_array().into_iter().flatten())
        {
            let has = ["tasks", "completed_tasks", "queued_tasks"]
                .iter()
                .any(|k| {
                    e[*k]
                        .as_array()
                        .is_some_and(|ts| ts.iter().any(|t| t["id"] == task))
                });
            if has && let Some(dir) = e["directory"].as_str() {
                return Ok(dir.to_owned());
            }
        }
    }
    bail!("agent {agent} does not list task {task}")
}

/// A whole sandbox file through `/files/read`.
async fn read_file(agent: &str, path: &str) -> Result<String> {
    let mut out = String::new();
    let mut offset = 0u64;
    loop {
        let query = format!(
            "/files/read?path={}&offset={offset}&length=1048576",
            percent_encode(path)
        );
        let doc = master_http::get_json(agent, &query).await?;
        let data = doc["data"].as_str().unwrap_or_default();
        if data.is_empty() {
            return Ok(out);
        }
        out.push_str(data);
        offset += data.len() as u64;
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs the task; the exit code is the task's.
pub fn run(args: RunArgs) -> Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> Result<i32> {
    let task_id = format!("tepui-run-{}", std::process::id() ^ (now_millis() as u32));
    let task = task_info(&args, &task_id)?;
    let outcome = std::sync::Arc::new(std::sync::Mutex::new(Outcome::default()));
    let framework = FrameworkInfo {
        user: args.user.clone().unwrap_or_else(invoking_user),
        name: "tepui-run".to_owned(),
        roles: vec![args.role.clone()],
        capabilities: vec![tepui_proto::v1::framework_info::Capability {
            r#type: Some(tepui_proto::v1::framework_info::capability::Type::MultiRole as i32),
        }],
        checkpoint: Some(true),
        ..Default::default()
    };
    let config = DriverConfig {
        master: args.master.clone(),
        framework,
        implicit_acknowledgements: false,
        subscribe_timeout: Duration::from_secs(args.timeout),
        credential: master_http::credential_for(&args.master).cloned(),
        tls: master_http::tls()?,
    };
    let scheduler = RunOne {
        task,
        role: args.role.clone(),
        launched: false,
        outcome: outcome.clone(),
    };
    let driven = tokio::time::timeout(
        Duration::from_secs(args.timeout.max(1) * 60),
        scheduler::run(config, scheduler),
    )
    .await;
    match driven {
        Err(_) => bail!("the task did not end within {} minutes", args.timeout),
        Ok(Err(e)) => return Err(e).context("running the task"),
        Ok(Ok(())) => {}
    }
    let (framework, agent, state, message) = {
        let o = outcome
            .lock()
            .map_err(|_| anyhow::anyhow!("the scheduler panicked"))?;
        (
            o.framework.clone(),
            o.agent.clone(),
            o.state,
            o.message.clone(),
        )
    };
    let Some(state) = state else {
        bail!("the task never ended");
    };
    if let Some((_, address)) = agent {
        print_output(&address, &framework, &task_id).await;
    }
    Ok(exit_code(state, &message))
}

/// Prints the task's stdout and stderr; a failure to read them is said,
/// not fatal.
async fn print_output(agent: &str, framework: &str, task: &str) {
    match sandbox_of(agent, framework, task).await {
        Ok(dir) => {
            for (name, to_stdout) in [("stdout", true), ("stderr", false)] {
                match read_file(agent, &format!("{dir}/{name}")).await {
                    Ok(text) if to_stdout => print!("{text}"),
                    Ok(text) => eprint!("{text}"),
                    Err(e) => eprintln!("cannot read the task's {name}: {e:#}"),
                }
            }
        }
        Err(e) => eprintln!("cannot find the task's sandbox: {e:#}"),
    }
}

fn now_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_task() {
        assert_eq!(exit_code(TaskState::TaskFinished, ""), 0);
        assert_eq!(
            exit_code(TaskState::TaskFailed, "Command exited with status 3"),
            3
        );
        assert_eq!(exit_code(TaskState::TaskFailed, "no such image"), 1);
        assert_eq!(exit_code(TaskState::TaskKilled, ""), 137);
        assert_eq!(exit_code(TaskState::TaskLost, ""), 1);
    }

    #[test]
    fn paths_are_percent_encoded() {
        assert_eq!(percent_encode("/a b/c&d"), "/a%20b/c%26d");
    }
}
