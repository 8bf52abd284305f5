//! What one request's principal may see and do under the master's ACLs:
//! the objects Mesos's local authorizer is asked about for each view
//! (a framework's user, a task's user, an executor's user), so that the
//! state endpoints and the operator API filter alike. The decision
//! itself is `tepui_proto::acls`'s.

use tepui_proto::acls::{Acls, Action, denied};
use tepui_proto::v1::{ExecutorInfo, FrameworkInfo, Task};

use crate::master::Refusal;

/// One request's principal under the ACLs.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    acls: &'a Acls,
    principal: Option<&'a str>,
}

/// ACLs that allow everything, for callers that see the whole state.
static ALL: std::sync::LazyLock<Acls> = std::sync::LazyLock::new(Acls::default);

impl<'a> Viewer<'a> {
    /// `principal` (none: unauthenticated) under `acls`.
    pub fn new(acls: &'a Acls, principal: Option<&'a str>) -> Self {
        Self { acls, principal }
    }

    /// Sees everything (tests, the master's own use).
    pub fn everything() -> Viewer<'static> {
        Viewer {
            acls: &ALL,
            principal: None,
        }
    }

    /// Whether `action` on `object` is allowed, or the 403 refusal.
    pub fn may(&self, action: Action, object: Option<&str>) -> Result<(), Refusal> {
        if self.acls.authorized(action, self.principal, object) {
            Ok(())
        } else {
            tracing::info!(
                principal = self.principal.unwrap_or("<none>"),
                action = action.list(),
                object = object.unwrap_or("ANY"),
                "refused by the ACLs"
            );
            Err(Refusal::Forbidden(denied(action, self.principal, object)))
        }
    }

    /// view_frameworks: by the framework's user.
    pub fn framework(&self, info: &FrameworkInfo) -> bool {
        self.acls
            .authorized(Action::ViewFramework, self.principal, Some(&info.user))
    }

    /// view_tasks: by the task's user, else its framework's.
    pub fn task(&self, task: &Task, framework: &FrameworkInfo) -> bool {
        let user = task.user.as_deref().unwrap_or(&framework.user);
        self.acls
            .authorized(Action::ViewTask, self.principal, Some(user))
    }

    /// view_executors: by the executor's user, else its framework's.
    pub fn executor(&self, executor: &ExecutorInfo, framework: &FrameworkInfo) -> bool {
        let user = executor
            .command
            .as_ref()
            .and_then(|c| c.user.as_deref())
            .unwrap_or(&framework.user);
        self.acls
            .authorized(Action::ViewExecutor, self.principal, Some(user))
    }

    /// view_flags.
    pub fn flags(&self) -> bool {
        self.acls
            .authorized(Action::ViewFlags, self.principal, None)
    }
}
