//! The agent's work dir, laid out as the Mesos agent lays it out, so that
//! operators and tools find sandboxes and checkpoints where they expect:
//!
//! ```text
//! <work_dir>/
//!   images/                                    the image store
//!   slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>/   sandboxes
//!   meta/boot_id
//!   meta/slaves/latest -> <agent>
//!   meta/slaves/<agent>/slave.info
//!   meta/slaves/<agent>/frameworks/<fw>/framework.info
//!   meta/slaves/<agent>/frameworks/<fw>/executors/<ex>/executor.info
//!   meta/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>/executor.sentinel
//!   meta/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>/tasks/<task>/task.info
//!   meta/slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>/tasks/<task>/task.updates
//! ```
//!
//! Ids become path components, so each is checked to be one.

use std::path::{Path, PathBuf};

/// An id that cannot be a single path component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} id {id:?} cannot name a directory (empty, '.', '..', '/' or NUL)")]
pub struct BadId {
    /// Which kind of id.
    pub kind: &'static str,
    /// The id.
    pub id: String,
}

/// Checks that `id` is usable as one path component.
pub fn component<'a>(kind: &'static str, id: &'a str) -> Result<&'a str, BadId> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(BadId {
            kind,
            id: id.to_owned(),
        });
    }
    Ok(id)
}

/// The ids that locate one executor run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunIds<'a> {
    /// The agent.
    pub agent: &'a str,
    /// The framework.
    pub framework: &'a str,
    /// The executor.
    pub executor: &'a str,
    /// The container of this run.
    pub container: &'a str,
}

/// Paths under one work dir.
#[derive(Debug, Clone)]
pub struct Layout {
    work_dir: PathBuf,
}

impl Layout {
    /// The layout of `work_dir`.
    pub fn new(work_dir: &Path) -> Self {
        Self {
            work_dir: work_dir.to_owned(),
        }
    }

    /// The work dir.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// The image store.
    pub fn images(&self) -> PathBuf {
        self.work_dir.join("images")
    }

    /// The checkpointed boot id (a reboot means nothing survived).
    pub fn boot_id(&self) -> PathBuf {
        self.work_dir.join("meta/boot_id")
    }

    /// The symlink naming the latest agent id.
    pub fn latest_agent(&self) -> PathBuf {
        self.work_dir.join("meta/slaves/latest")
    }

    /// Checkpoints of agent `agent`.
    pub fn agent_meta(&self, agent: &str) -> Result<PathBuf, BadId> {
        Ok(self
            .work_dir
            .join("meta/slaves")
            .join(component("agent", agent)?))
    }

    /// The agent's checkpointed AgentInfo.
    pub fn agent_info(&self, agent: &str) -> Result<PathBuf, BadId> {
        Ok(self.agent_meta(agent)?.join("slave.info"))
    }

    /// Checkpoints of a framework.
    pub fn framework_meta(&self, agent: &str, framework: &str) -> Result<PathBuf, BadId> {
        Ok(self
            .agent_meta(agent)?
            .join("frameworks")
            .join(component("framework", framework)?))
    }

    /// Checkpoints of an executor.
    pub fn executor_meta(
        &self,
        agent: &str,
        framework: &str,
        executor: &str,
    ) -> Result<PathBuf, BadId> {
        Ok(self
            .framework_meta(agent, framework)?
            .join("executors")
            .join(component("executor", executor)?))
    }

    /// Checkpoints of one executor run.
    pub fn run_meta(&self, ids: &RunIds<'_>) -> Result<PathBuf, BadId> {
        Ok(self
            .executor_meta(ids.agent, ids.framework, ids.executor)?
            .join("runs")
            .join(component("container", ids.container)?))
    }

    /// Checkpoints of one task of a run.
    pub fn task_meta(&self, ids: &RunIds<'_>, task: &str) -> Result<PathBuf, BadId> {
        Ok(self
            .run_meta(ids)?
            .join("tasks")
            .join(component("task", task)?))
    }

    /// The sandbox of one executor run.
    pub fn sandbox(&self, ids: &RunIds<'_>) -> Result<PathBuf, BadId> {
        Ok(self
            .work_dir
            .join("slaves")
            .join(component("agent", ids.agent)?)
            .join("frameworks")
            .join(component("framework", ids.framework)?)
            .join("executors")
            .join(component("executor", ids.executor)?)
            .join("runs")
            .join(component("container", ids.container)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_paths_as_mesos_does() {
        let layout = Layout::new(Path::new("/var/lib/tepui"));
        let ids = RunIds {
            agent: "a1",
            framework: "f1",
            executor: "e1",
            container: "c1",
        };
        assert_eq!(
            layout.sandbox(&ids).unwrap(),
            Path::new("/var/lib/tepui/slaves/a1/frameworks/f1/executors/e1/runs/c1")
        );
        assert_eq!(
            layout.task_meta(&ids, "t1").unwrap(),
            Path::new("/var/lib/tepui/meta/slaves/a1/frameworks/f1/executors/e1/runs/c1/tasks/t1")
        );
        assert_eq!(
            layout.agent_info("a1").unwrap(),
            Path::new("/var/lib/tepui/meta/slaves/a1/slave.info")
        );
    }

    #[test]
    fn an_id_cannot_leave_its_directory() {
        let layout = Layout::new(Path::new("/w"));
        for bad in ["", ".", "..", "a/b", "x\0"] {
            let ids = RunIds {
                agent: "a",
                framework: bad,
                executor: "e",
                container: "c",
            };
            assert!(layout.sandbox(&ids).is_err(), "{bad:?}");
        }
        assert!(
            layout
                .task_meta(
                    &RunIds {
                        agent: "a",
                        framework: "f",
                        executor: "e",
                        container: "c"
                    },
                    "../x"
                )
                .is_err()
        );
    }
}
