//! tepui-agent, the real binary, against a minimal in-test master that
//! speaks tepui's internal protocol: it registers (reporting its
//! resources), runs the task the master sends through tepui-executor in a
//! container, delivers its updates one at a time as the master
//! acknowledges them, answers pings, and after a SIGKILL and restart
//! re-registers under the id it checkpointed.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tepui_proto::internal::agent_to_master;
use tepui_proto::v1::{CommandInfo, TaskId, TaskInfo, TaskState};

#[path = "support/agent.rs"]
mod agent_process;
#[path = "support/master.rs"]
mod master;
use agent_process::{agent_command, containers, scratch};
use master::{Master, free_port, master_with};

fn agent(master: &str, work: &std::path::Path, cgroup: &std::path::Path) -> tokio::process::Child {
    agent_on(master, work, cgroup, 0)
}

fn agent_on(
    master: &str,
    work: &std::path::Path,
    cgroup: &std::path::Path,
    port: u16,
) -> tokio::process::Child {
    agent_command(master, work, cgroup, port).spawn().unwrap()
}

async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn registers_runs_a_task_and_reregisters_as_itself_after_a_restart() {
    let (dir, cgroup, _cleanup) = scratch("daemon");
    let (master, address, server) =
        master_with(vec![shell_task("hello-1", "echo hello from the agent")]).await;

    let mut first = agent(&address, dir.path(), &cgroup);
    until("the task to finish", || {
        master
            .state
            .lock()
            .unwrap()
            .updates
            .iter()
            .any(|u| u.status.state == TaskState::TaskFinished as i32)
    })
    .await;
    {
        let state = master.state.lock().unwrap();
        let Some(agent_to_master::Message::RegisterAgent(register)) =
            &state.registrations[0].message
        else {
            panic!("first a RegisterAgent");
        };
        let resources = &register.agent_info.resources;
        assert_eq!(tepui_proto::resources::scalar(resources, "cpus"), 3.0);
        assert!(
            tepui_proto::resources::scalar(resources, "disk") > 0.0,
            "detected"
        );
        assert_eq!(register.agent_info.attributes[0].name, "rack");
        let states: Vec<i32> = state.updates.iter().map(|u| u.status.state).collect();
        assert_eq!(
            states,
            vec![
                TaskState::TaskStarting as i32,
                TaskState::TaskRunning as i32,
                TaskState::TaskFinished as i32
            ]
        );
    }
    until("pongs", || master.state.lock().unwrap().pongs >= 2).await;
    let stdout = std::fs::read_dir(
        dir.path()
            .join("work/slaves/agent-7/frameworks/fw-1/executors/hello-1/runs"),
    )
    .unwrap()
    .flatten()
    .map(|run| std::fs::read_to_string(run.path().join("stdout")).unwrap_or_default())
    .collect::<String>();
    assert!(stdout.contains("hello from the agent"), "{stdout}");

    // SIGKILL, then a new process: it comes back under its checkpointed id.
    stop(&mut first).await;
    let mut second = agent(&address, dir.path(), &cgroup);
    until("a re-registration", || {
        master.state.lock().unwrap().registrations.len() >= 2
    })
    .await;
    {
        let state = master.state.lock().unwrap();
        let Some(agent_to_master::Message::ReregisterAgent(again)) =
            &state.registrations[1].message
        else {
            panic!("then a ReregisterAgent: {:?}", state.registrations[1]);
        };
        assert_eq!(
            again.agent_info.id.as_ref().map(|i| i.value.as_str()),
            Some("agent-7")
        );
    }
    stop(&mut second).await;
    server.abort();
}

/// `tepui-agent ARGS` run in `dir`: its exit code and stderr.
async fn agent_refusal(args: &[&std::ffi::OsStr], dir: &std::path::Path) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tepui-agent"))
        .args(args)
        .current_dir(dir)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_flags_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let (code, err) = agent_refusal(
        &[
            os("--master"),
            os("127.0.0.1:1"),
            os("--resources"),
            os("cpus:lots"),
            os("--work-dir"),
            work.as_os_str(),
        ],
        dir.path(),
    )
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("tepui-agent: resources \"cpus:lots\": \"lots\" is not a number"),
        "{err}"
    );
    let (code, err) = agent_refusal(
        &[
            os("--master"),
            os("x"),
            os("--recovery-timeout"),
            os("soon"),
        ],
        dir.path(),
    )
    .await;
    assert_eq!(code, Some(2));
    assert!(err.contains("not a duration"));

    // A command executor that is not there, or not executable, is refused
    // at start, by its absolute path, not at every launch.
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "").unwrap();
    for (given, said) in [
        (os("no-such-executor"), "no-such-executor: No such file"),
        (plain.as_os_str(), "plain: not an executable file"),
    ] {
        let (code, err) = agent_refusal(
            &[
                os("--master"),
                os("127.0.0.1:1"),
                os("--command-executor"),
                given,
                os("--work-dir"),
                work.as_os_str(),
            ],
            dir.path(),
        )
        .await;
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "tepui-agent: command executor {}",
                dir.path().display()
            )) && err.contains(said),
            "{err}"
        );
    }
}

/// SIGKILL to an agent process, and its reaping.
async fn stop(agent: &mut tokio::process::Child) {
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
}

fn shell_task(id: &str, script: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        command: Some(CommandInfo {
            value: Some(script.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn states(master: &Master) -> Vec<i32> {
    master
        .state
        .lock()
        .unwrap()
        .updates
        .iter()
        .map(|u| u.status.state)
        .collect()
}

#[tokio::test]
async fn a_restarted_agent_recovers_its_running_executor_and_the_task_ends_once() {
    let (dir, cgroup, _cleanup) = scratch("recover");
    let (master, address, server) =
        master_with(vec![shell_task("long-1", "sleep 2; echo finished")]).await;
    let port = free_port();
    let mut first = agent_on(&address, dir.path(), &cgroup, port);
    until("RUNNING", || {
        states(&master).contains(&(TaskState::TaskRunning as i32))
    })
    .await;
    stop(&mut first).await;

    let mut second = agent_on(&address, dir.path(), &cgroup, port);
    until("FINISHED", || {
        states(&master).contains(&(TaskState::TaskFinished as i32))
    })
    .await;
    // Give any duplicate time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        states(&master),
        vec![
            TaskState::TaskStarting as i32,
            TaskState::TaskRunning as i32,
            TaskState::TaskFinished as i32
        ]
    );
    stop(&mut second).await;
    server.abort();
}

#[tokio::test]
async fn an_executor_gone_while_the_agent_was_down_fails_its_task() {
    let (dir, cgroup, _cleanup) = scratch("lost");
    let (master, address, server) = master_with(vec![shell_task("long-2", "sleep 60")]).await;
    let port = free_port();
    let mut first = agent_on(&address, dir.path(), &cgroup, port);
    until("RUNNING", || {
        states(&master).contains(&(TaskState::TaskRunning as i32))
    })
    .await;
    stop(&mut first).await;
    // The executor's container is killed while no agent runs.
    let container = std::fs::read_dir(&cgroup)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .expect("the executor's cgroup")
        .path();
    std::fs::write(container.join("cgroup.kill"), "1").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut second = agent_on(&address, dir.path(), &cgroup, port);
    until("a terminal update", || {
        states(&master).contains(&(TaskState::TaskFailed as i32))
    })
    .await;
    let failed = master
        .state
        .lock()
        .unwrap()
        .updates
        .last()
        .cloned()
        .unwrap();
    assert_eq!(
        failed.status.reason,
        Some(tepui_proto::v1::task_status::Reason::ExecutorTerminated as i32)
    );
    assert_eq!(
        failed.status.source,
        Some(tepui_proto::v1::task_status::Source::Agent as i32)
    );
    until("its cgroup removed", || !container.exists()).await;
    stop(&mut second).await;
    server.abort();
}

fn count(master: &Master, state: TaskState) -> usize {
    states(master)
        .iter()
        .filter(|s| **s == state as i32)
        .count()
}

#[tokio::test]
async fn twenty_executors_reconnect_after_a_kill_9_and_five_lost_ones_fail_their_tasks() {
    let (dir, cgroup, _cleanup) = scratch("twenty");
    let tasks = (0..20)
        .map(|i| shell_task(&format!("t{i}"), "sleep 6"))
        .collect();
    let (master, address, server) = master_with(tasks).await;
    let port = free_port();
    let mut first = agent_on(&address, dir.path(), &cgroup, port);
    until("20 RUNNING", || {
        count(&master, TaskState::TaskRunning) == 20
    })
    .await;
    stop(&mut first).await;
    // Five executors die while no agent runs.
    let running = containers(&cgroup);
    assert_eq!(running.len(), 20);
    for container in &running[..5] {
        std::fs::write(container.join("cgroup.kill"), "1").unwrap();
    }
    let mut second = agent_on(&address, dir.path(), &cgroup, port);
    until("20 terminal updates", || {
        count(&master, TaskState::TaskFinished) + count(&master, TaskState::TaskFailed) == 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&master, TaskState::TaskFinished), 15);
    assert_eq!(count(&master, TaskState::TaskFailed), 5);
    // Exactly one terminal update per task.
    let updates = master.state.lock().unwrap().updates.clone();
    for i in 0..20 {
        let terminal: std::collections::HashSet<_> = updates
            .iter()
            .filter(|u| u.status.task_id.value == format!("t{i}"))
            .filter(|u| tepui_agent::status_update::is_terminal(u.status.state))
            .map(|u| u.status.uuid.clone())
            .collect();
        let terminal = terminal.len();
        assert_eq!(terminal, 1, "task t{i}");
    }
    until("every container removed", || containers(&cgroup).is_empty()).await;
    stop(&mut second).await;
    server.abort();
}

#[tokio::test]
async fn a_corrupt_checkpoint_stops_a_strict_agent_and_is_skipped_by_a_lenient_one() {
    let (dir, cgroup, _cleanup) = scratch("corrupt");
    let (master, address, server) = master_with(vec![shell_task("c1", "sleep 60")]).await;
    let port = free_port();
    let mut first = agent_on(&address, dir.path(), &cgroup, port);
    until("RUNNING", || {
        states(&master).contains(&(TaskState::TaskRunning as i32))
    })
    .await;
    stop(&mut first).await;
    let runs = dir
        .path()
        .join("work/meta/slaves/agent-7/frameworks/fw-1/executors/c1/runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let info = run.join("tasks/c1/task.info");
    std::fs::write(&info, b"not a checkpoint").unwrap();

    let strict = agent_command(&address, dir.path(), &cgroup, port)
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&strict.stderr);
    assert_eq!(strict.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("tepui-agent: recovering {}", info.display())),
        "{err}"
    );
    assert_eq!(
        containers(&cgroup).len(),
        1,
        "a strict agent that stops touches nothing"
    );

    let mut lenient = agent_command(&address, dir.path(), &cgroup, port)
        .env("TEPUI_STRICT", "false")
        .spawn()
        .unwrap();
    until("a re-registration", || {
        master.state.lock().unwrap().registrations.len() >= 2
    })
    .await;
    until("the unknown container destroyed", || {
        containers(&cgroup).is_empty()
    })
    .await;
    stop(&mut lenient).await;
    server.abort();
}

/// GET `path` from the agent on `port`: (status, body).
async fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    agent_process::get(port, path)
        .await
        .expect("an HTTP answer from the agent")
}

async fn get_json(port: u16, path: &str) -> serde_json::Value {
    let (status, body) = get(port, path).await;
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn escape(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn the_endpoints_show_state_metrics_usage_and_sandbox_files() {
    let (dir, cgroup, _cleanup) = scratch("endpoints");
    let mut task = shell_task(
        "files-1",
        "echo hello-files; ln -s /etc/passwd leak; mkfifo fifo; mkdir d; ln -s .. d/up; ln -s stdout inner; sleep 30",
    );
    task.resources = tepui_proto::resources::parse("cpus:0.5;mem:32").unwrap();
    let (master, address, server) = master_with(vec![task]).await;
    let port = free_port();
    let mut agent = agent_on(&address, dir.path(), &cgroup, port);
    until("RUNNING", || {
        states(&master).contains(&(TaskState::TaskRunning as i32))
    })
    .await;

    let state = get_json(port, "/state").await;
    assert_eq!(state["id"], "agent-7");
    assert_eq!(state["resources"]["cpus"], 3.0);
    assert_eq!(state["attributes"]["rack"], "r1");
    let executor = &state["frameworks"][0]["executors"][0];
    assert_eq!(executor["tasks"][0]["id"], "files-1");
    assert_eq!(executor["tasks"][0]["state"], "TASK_RUNNING");
    assert_eq!(executor["tasks"][0]["resources"]["mem"], 32.0);
    let sandbox = executor["directory"].as_str().unwrap().to_owned();
    assert!(sandbox.contains("/slaves/agent-7/frameworks/"), "{sandbox}");

    // The sandbox's files: a listing, a read from an offset, the size
    // alone, a download; nothing outside the sandboxes.
    until("the task's output", || {
        std::fs::read_to_string(format!("{sandbox}/stdout"))
            .is_ok_and(|s| s.contains("hello-files"))
            && std::path::Path::new(&format!("{sandbox}/leak")).is_symlink()
            && std::path::Path::new(&format!("{sandbox}/inner")).is_symlink()
    })
    .await;
    let listing = get_json(port, &format!("/files/browse?path={}", escape(&sandbox))).await;
    let names: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&format!("{sandbox}/stdout").as_str()),
        "{names:?}"
    );
    let stdout = escape(&format!("{sandbox}/stdout"));
    let read = get_json(port, &format!("/files/read?path={stdout}&offset=6")).await;
    assert_eq!(read["data"], "files\n");
    assert_eq!(read["offset"], 6);
    let size = get_json(port, &format!("/files/read?path={stdout}")).await;
    assert_eq!(size["offset"], 12);
    assert_eq!(size["data"], "");
    let (status, bytes) = get(port, &format!("/files/download?path={stdout}")).await;
    assert_eq!(
        (status, bytes.as_slice()),
        (200, b"hello-files\n".as_slice())
    );
    let leak = escape(&format!("{sandbox}/leak"));
    assert_eq!(
        get(port, &format!("/files/read?path={leak}&offset=0"))
            .await
            .0,
        403
    );
    assert_eq!(
        get(port, "/files/read?path=%2Fetc%2Fpasswd&offset=0")
            .await
            .0,
        403
    );
    // A FIFO is refused at once (never waited on for a writer), and no
    // link is followed, not even one that stays in the sandbox; nor is
    // a path that climbs out.
    for (path, why) in [
        (format!("{sandbox}/fifo"), "a FIFO"),
        (format!("{sandbox}/inner"), "a link"),
        (format!("{sandbox}/d/up/stdout"), "a link"),
        (
            format!("{sandbox}/../../../../../../../../etc/passwd"),
            "inside",
        ),
    ] {
        for endpoint in ["read", "download", "browse"] {
            let asked = format!("/files/{endpoint}?path={}&offset=0", escape(&path));
            let answer = tokio::time::timeout(Duration::from_secs(5), get(port, &asked))
                .await
                .unwrap_or_else(|_| panic!("{asked} hung"));
            assert_eq!(
                answer.0,
                403,
                "{asked}: {}",
                String::from_utf8_lossy(&answer.1)
            );
            assert!(
                String::from_utf8_lossy(&answer.1).contains(why),
                "{asked}: {}",
                String::from_utf8_lossy(&answer.1)
            );
        }
    }
    assert_eq!(
        get(port, &format!("/files/read?path={stdout}&offset=x"))
            .await
            .0,
        400
    );
    assert_eq!(get(port, "/files/browse").await.0, 400);

    let metrics = get_json(port, "/metrics/snapshot").await;
    assert_eq!(metrics["slave/tasks_running"], 1.0);
    assert_eq!(metrics["slave/registered"], 1.0);
    assert_eq!(metrics["slave/cpus_used"], 0.5);
    let (status, text) = get(port, "/metrics").await;
    assert_eq!(status, 200);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("\ntepui_slave_tasks_running 1\n"), "{text}");

    let containers = get_json(port, "/containers").await;
    let container = &containers[0];
    assert_eq!(container["executor_id"], "files-1");
    assert!(sandbox.ends_with(container["container_id"].as_str().unwrap()));
    assert!(container["status"]["executor_pid"].as_i64().unwrap() > 1);
    assert!(
        container["statistics"]["processes"].as_u64().unwrap() >= 2,
        "{container}"
    );
    let statistics = get_json(port, "/monitor/statistics").await;
    assert_eq!(statistics[0]["framework_id"], container["framework_id"]);
    assert_eq!(statistics[0]["statistics"]["mem_limit_bytes"], 32u64 << 20);
    assert_eq!(get(port, "/no/such").await.0, 404);

    stop(&mut agent).await;
    server.abort();
}

/// POSTs `body` (JSON) to `/api/v1` on the agent on `port` over HTTP/1.0
/// with the Accept headers given: (status, headers, body read to its end).
async fn api(port: u16, accept: &str, body: &str) -> (u16, String, Vec<u8>) {
    api_at(port, "/api/v1", accept, body).await
}

/// [`api`] at another path.
async fn api_at(port: u16, path: &str, accept: &str, body: &str) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: agent\r\nContent-Type: application/json\r\n{accept}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, response[split + 4..].to_vec())
}

/// The ProcessIO records of a RecordIO body, JSON-encoded.
fn process_io(mut body: &[u8]) -> Vec<tepui_proto::v1::agent::ProcessIo> {
    let mut records = Vec::new();
    while !body.is_empty() {
        let newline = body.iter().position(|b| *b == b'\n').unwrap();
        let len: usize = std::str::from_utf8(&body[..newline])
            .unwrap()
            .parse()
            .unwrap();
        let record = &body[newline + 1..newline + 1 + len];
        records.push(tepui_proto::json::from_slice(record).unwrap());
        body = &body[newline + 1 + len..];
    }
    records
}

#[tokio::test]
async fn the_agent_api_streams_a_containers_output_until_its_run_ends() {
    use tepui_proto::v1::agent::process_io;
    let (dir, cgroup, _cleanup) = scratch("attach");
    let task = shell_task(
        "attach-1",
        "echo first; sleep 1; echo second >&2; sleep 1; echo third",
    );
    let (master, address, server) = master_with(vec![task]).await;
    let port = free_port();
    let mut agent = agent_on(&address, dir.path(), &cgroup, port);
    until("RUNNING", || {
        states(&master).contains(&(TaskState::TaskRunning as i32))
    })
    .await;

    // The executor's updates say which container, its first process and
    // the address it is reached at, as a Mesos agent's do.
    let running = {
        let state = master.state.lock().unwrap();
        let update = state
            .updates
            .iter()
            .find(|u| u.status.state == TaskState::TaskRunning as i32)
            .unwrap();
        update.status.container_status.clone().unwrap()
    };
    let container = running.container_id.unwrap().value;
    assert!(running.executor_pid.unwrap() > 1);
    assert_eq!(
        running.network_infos[0].ip_addresses[0]
            .ip_address
            .as_deref(),
        Some("127.0.0.1")
    );

    // Attached while the task runs: what it wrote before, then what it
    // writes after, to the end of its run.
    let attach = format!(
        r#"{{"type":"ATTACH_CONTAINER_OUTPUT","attach_container_output":{{"container_id":{{"value":"{container}"}}}}}}"#
    );
    let (status, head, body) = api(
        port,
        "Accept: application/recordio\r\nMessage-Accept: application/json\r\n",
        &attach,
    )
    .await;
    assert_eq!(status, 200, "{head}\n{}", String::from_utf8_lossy(&body));
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: application/recordio"),
        "{head}"
    );
    assert!(
        head.contains("message-content-type: application/json"),
        "{head}"
    );
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for record in process_io(&body) {
        assert_eq!(record.r#type, Some(process_io::Type::Data as i32));
        let data = record.data.unwrap();
        let into = match process_io::data::Type::try_from(data.r#type.unwrap()).unwrap() {
            process_io::data::Type::Stdout => &mut stdout,
            process_io::data::Type::Stderr => &mut stderr,
            other => panic!("{other:?}"),
        };
        into.extend(data.data.unwrap());
    }
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(
        stdout.contains("first\n") && stdout.contains("third\n"),
        "{stdout}"
    );
    assert!(String::from_utf8(stderr).unwrap().contains("second\n"));
    assert!(
        states(&master).contains(&(TaskState::TaskFinished as i32)),
        "the stream ended before the task did"
    );

    // The other calls: health in JSON, an unknown container, an unserved call.
    let (status, _, body) = api(port, "", r#"{"type":"GET_HEALTH"}"#).await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["get_health"]["healthy"], true);
    // Where pymesos's operator driver posts: Mesos routes by prefix.
    let (status, _, body) = api_at(port, "/api/v1/operator", "", r#"{"type":"GET_VERSION"}"#).await;
    assert_eq!(status, 200);
    let version: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(version["get_version"]["version_info"]["version"], "1.11.0");
    let unknown = attach.replace(&container, "no-such-container");
    assert_eq!(api(port, "", &unknown).await.0, 404);
    let (status, _, body) = api(port, "", r#"{"type":"GET_STATE"}"#).await;
    assert_eq!(status, 501);
    assert!(String::from_utf8_lossy(&body).contains("GET_STATE"));
    let (status, _, _) = api(
        port,
        "Accept: application/recordio\r\n",
        r#"{"type":"GET_HEALTH"}"#,
    )
    .await;
    assert_eq!(status, 406, "a streaming answer to a plain call");

    stop(&mut agent).await;
    server.abort();
}
