//! `tepui cgroup-holder`: the main process of `tepui-containers.service`,
//! which holds the delegated cgroup the agent's containers live in (see
//! tepui_isolators::cgroups::delegation for why a unit of its own). It
//! moves itself into a leaf, enables the controllers, reports ready and
//! waits; when it is stopped, systemd kills what is left in the unit:
//! every container. `systemctl stop tepui-containers` is that, on purpose.

use anyhow::{Context, Result};
use tepui_isolators::cgroups::delegation;

/// Holds this process's own (delegated) cgroup until SIGTERM or SIGINT.
pub fn run() -> Result<i32> {
    let delegated = delegation::own_cgroup().context("finding this process's cgroup")?;
    let controllers =
        delegation::hold(&delegated).with_context(|| format!("holding {}", delegated.display()))?;
    let containers = delegated.join("containers");
    tracing::info!(cgroup = %delegated.display(), %controllers, "holding the containers' cgroup");
    tepui_systemd::ready(&format!(
        "containers under {} with {controllers}",
        containers.display()
    ))
    .context("telling systemd the holder is ready")?;
    let signal = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(tepui_systemd::stop_requested())
        .context("watching SIGTERM and SIGINT")?;
    let _ = tepui_systemd::stopping(&format!(
        "stopping on {signal}: systemd kills the containers"
    ));
    Ok(0)
}
