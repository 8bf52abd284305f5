//! `tepui ps`, `tepui kill`, `tepui agents`, `tepui frameworks`: a
//! cluster's state as tables, read from the master's endpoints.

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

use crate::master_http;

/// Where the master is.
#[derive(Debug, Args)]
pub struct MasterArgs {
    /// The master, as HOST:PORT.
    #[arg(long, env = "TEPUI_MASTER", default_value = "127.0.0.1:5050")]
    pub master: String,
}

/// `tepui kill TASK`.
#[derive(Debug, Args)]
pub struct KillArgs {
    #[command(flatten)]
    master: MasterArgs,
    /// The task's id.
    task: String,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row);
    }
}

/// `tepui ps`: every task the master knows, running first.
pub fn ps(args: &MasterArgs) -> Result<i32> {
    let doc = runtime()?.block_on(master_http::get_json(&args.master, "/master/tasks"))?;
    let rows = doc["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            vec![
                text(&t["id"]),
                text(&t["state"]),
                text(&t["framework_id"]),
                text(&t["slave_id"]),
                text(&t["name"]),
            ]
        })
        .collect();
    table(&["ID", "STATE", "FRAMEWORK", "AGENT", "NAME"], rows);
    Ok(0)
}

/// `tepui agents`.
pub fn agents(args: &MasterArgs) -> Result<i32> {
    let doc = runtime()?.block_on(master_http::get_json(&args.master, "/master/slaves"))?;
    let rows = doc["slaves"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            vec![
                text(&a["id"]),
                format!("{}:{}", text(&a["hostname"]), text(&a["port"])),
                text(&a["active"]),
                text(&a["resources"]["cpus"]),
                text(&a["resources"]["mem"]),
                text(&a["used_resources"]["cpus"]),
                text(&a["used_resources"]["mem"]),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "ADDRESS",
            "ACTIVE",
            "CPUS",
            "MEM",
            "CPUS USED",
            "MEM USED",
        ],
        rows,
    );
    Ok(0)
}

/// `tepui frameworks`.
pub fn frameworks(args: &MasterArgs) -> Result<i32> {
    let doc = runtime()?.block_on(master_http::get_json(&args.master, "/master/frameworks"))?;
    let rows = doc["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            vec![
                text(&f["id"]),
                text(&f["name"]),
                text(&f["active"]),
                f["tasks"].as_array().map_or(0, Vec::len).to_string(),
                text(&f["roles"]),
            ]
        })
        .collect();
    table(&["ID", "NAME", "ACTIVE", "TASKS", "ROLES"], rows);
    Ok(0)
}

/// `tepui kill TASK`: the master asks the task's agent to kill it.
pub fn kill(args: &KillArgs) -> Result<i32> {
    if args.task.is_empty() {
        bail!("a task id is required");
    }
    let path = format!("/tepui/v1/kill?task={}", args.task);
    runtime()?.block_on(master_http::post(
        &args.master.master,
        &path,
        bytes::Bytes::new(),
    ))?;
    println!("kill of task {} sent", args.task);
    Ok(0)
}
