//! Frameworks: SUBSCRIBE (a new framework or a failover), the stream
//! check every other call passes, a stream that ends, TEARDOWN and
//! UPDATE_FRAMEWORK.

use std::time::{Duration, Instant};
use tepui_proto::acls::{Action, denied};

use tepui_proto::internal::{self, master_to_agent};
use tepui_proto::v1::scheduler::call;
use tepui_proto::v1::{FrameworkId, TaskState};

use super::validation::checked_roles;
use super::{Master, Refusal, bad};
use crate::clock;
use crate::events::{self, EventSink};
use crate::state::{COMPLETED_FRAMEWORKS, Framework};

/// Holds a SUBSCRIBE's FrameworkInfo to the principal that authenticated
/// it (none when the scheduler API requires no credential): an absent
/// `principal` becomes the authenticated one, another one is refused
/// with Mesos's message.
pub fn authenticated_as(
    info: &mut tepui_proto::v1::FrameworkInfo,
    principal: Option<&str>,
) -> Result<(), Refusal> {
    let Some(principal) = principal else {
        return Ok(());
    };
    match info.principal.as_deref() {
        None => {
            info.principal = Some(principal.to_owned());
            Ok(())
        }
        Some(claimed) if claimed == principal => Ok(()),
        Some(claimed) => Err(bad(format!(
            "Failed to validate scheduler::Call: Authenticated principal '{principal}' does not match principal '{claimed}' set in `FrameworkInfo`"
        ))),
    }
}

impl Master {
    /// SUBSCRIBE: a new framework, or a known one failing over. Returns
    /// the framework id.
    pub fn subscribe(
        &mut self,
        call_framework_id: Option<&str>,
        subscribe: call::Subscribe,
        sink: EventSink,
        stream_id: &str,
    ) -> Result<String, Refusal> {
        let mut info = subscribe.framework_info;
        let claimed = info.id.as_ref().map(|i| i.value.clone());
        if call_framework_id.is_some() && call_framework_id != claimed.as_deref() {
            return Err(bad(
                "'framework_id' differs from 'subscribe.framework_info.id'",
            ));
        }
        let roles = checked_roles(&info)?;
        let principal = info.principal.as_deref();
        for role in &roles {
            if !self
                .config
                .acls
                .authorized(Action::RegisterFramework, principal, Some(role))
            {
                tracing::warn!(principal = principal.unwrap_or("<none>"), %role, "refusing a SUBSCRIBE the ACLs do not authorize");
                return Err(Refusal::Forbidden(format!(
                    "Not authorized to subscribe with role '{role}': {}",
                    denied(Action::RegisterFramework, principal, Some(role))
                )));
            }
        }
        if info.user.is_empty() {
            return Err(bad("'framework_info.user' must not be empty"));
        }
        if let Some(timeout) = info.failover_timeout
            && (!timeout.is_finite() || timeout < 0.0)
        {
            return Err(bad("'failover_timeout' must be a non-negative number"));
        }
        if let Some(id) = &claimed
            && self.completed_frameworks.iter().any(|f| f.id() == id)
        {
            return Err(Refusal::TornDown(id.clone()));
        }
        if let Some(id) = &claimed
            && let Some(existing) = self.frameworks.get(id)
            && existing.info.principal != info.principal
        {
            // Mesos logs both principals but tells the caller neither.
            tracing::warn!(
                framework = %id,
                principal = existing.info.principal.as_deref().unwrap_or("<none>"),
                new_principal = info.principal.as_deref().unwrap_or("<none>"),
                "refusing a SUBSCRIBE under another principal; the framework is untouched"
            );
            return Err(Refusal::PrincipalChanged(id.clone()));
        }
        let now = clock::now();
        let id = match claimed {
            Some(id) if !id.is_empty() => id,
            _ => self.fresh("F"),
        };
        info.id = Some(FrameworkId { value: id.clone() });
        let heartbeat = self.config.heartbeat_interval.as_secs_f64();
        let subscribed = events::subscribed(&id, heartbeat, &self.info);
        match self.frameworks.get_mut(&id) {
            Some(framework) => {
                // Failover: the old stream is told and closed; its offers
                // are rescinded so that the new scheduler starts clean.
                if let Some(old) = framework.sink.take() {
                    old.send(&events::error("framework failed over"));
                }
                framework.info = info;
                framework.roles = roles.clone();
                framework.recovered = false;
                framework.reregistered_time = Some(now);
                framework.disconnected_at = None;
                framework.sink = Some(sink);
                framework.stream_id = Some(stream_id.to_owned());
                self.rescind_offers_of(&id);
                self.allocator.add_framework(&id, &roles);
                tracing::info!(framework = %id, "framework re-subscribed");
            }
            None => {
                let mut framework = Framework::new(info, now);
                framework.sink = Some(sink);
                framework.stream_id = Some(stream_id.to_owned());
                tracing::info!(framework = %id, name = %framework.info.name, roles = ?roles, "framework subscribed");
                self.frameworks.insert(id.clone(), framework);
                self.allocator.add_framework(&id, &roles);
            }
        }
        if !subscribe.suppressed_roles.is_empty() {
            self.allocator.suppress(&id, &subscribe.suppressed_roles);
        }
        if let Some(framework) = self.frameworks.get(&id) {
            framework.send(&subscribed);
        }
        Ok(id)
    }

    /// Checks that a non-subscribe call comes from the framework's own
    /// principal (none: the API requires no credential); an unknown
    /// framework is [`Master::check_stream`]'s to refuse.
    pub fn check_caller(&self, framework: &str, principal: Option<&str>) -> Result<(), Refusal> {
        let (Some(principal), Some(f)) = (principal, self.frameworks.get(framework)) else {
            return Ok(());
        };
        let own = f.info.principal.as_deref().unwrap_or_default();
        if own == principal {
            return Ok(());
        }
        Err(bad(format!(
            "Authenticated principal '{principal}' does not match principal '{own}' set in `FrameworkInfo`"
        )))
    }

    /// Checks that a non-subscribe call comes from the framework's current
    /// stream.
    pub fn check_stream(&self, framework: &str, stream_id: Option<&str>) -> Result<(), Refusal> {
        // The refusals and their order are Mesos's (master/http.cpp).
        let Some(f) = self.frameworks.get(framework) else {
            return Err(Refusal::UnknownFramework(framework.to_owned()));
        };
        let (Some(current), Some(_)) = (&f.stream_id, &f.sink) else {
            return Err(Refusal::NotSubscribed(framework.to_owned()));
        };
        let Some(given) = stream_id else {
            return Err(Refusal::MissingStreamId);
        };
        if given != current {
            return Err(Refusal::WrongStreamId {
                given: given.to_owned(),
                framework: framework.to_owned(),
            });
        }
        Ok(())
    }

    /// A framework's stream ended.
    pub fn disconnected(&mut self, framework: &str, stream_id: &str) {
        let Some(f) = self.frameworks.get_mut(framework) else {
            return;
        };
        if f.stream_id.as_deref() != Some(stream_id) {
            return;
        }
        f.sink = None;
        f.disconnected_at = Some((Instant::now(), clock::now()));
        tracing::info!(framework = %framework, failover_timeout = f.info.failover_timeout.unwrap_or(0.0), "framework disconnected");
        self.allocator.set_framework_active(framework, false);
        self.rescind_offers_of(framework);
    }

    /// TEARDOWN, or a failover timeout: every task and executor of the
    /// framework is shut down and it is forgotten.
    pub fn teardown(&mut self, framework: &str) {
        self.rescind_offers_of(framework);
        let Some(mut f) = self.frameworks.remove(framework) else {
            return;
        };
        let shutdown = master_to_agent::Message::ShutdownFramework(internal::ShutdownFramework {
            framework_id: FrameworkId {
                value: framework.to_owned(),
            },
        });
        let agents: std::collections::BTreeSet<String> = f
            .tasks
            .values()
            .map(|t| t.task.agent_id.value.clone())
            .chain(f.executors.keys().map(|(a, _)| a.clone()))
            .collect();
        for agent in &agents {
            self.send_agent(agent, shutdown.clone());
        }
        let now = Instant::now();
        let tasks: Vec<String> = f.tasks.keys().cloned().collect();
        for task in tasks {
            if let Some(entry) = f.tasks.get_mut(&task) {
                if !entry.released {
                    entry.released = true;
                    self.allocator.recover(
                        framework,
                        &entry.role,
                        &entry.task.agent_id.value,
                        &entry.resources,
                        Duration::ZERO,
                        now,
                    );
                }
                if !tepui_proto::model::is_terminal(entry.task.state) {
                    entry.task.state = TaskState::TaskKilled as i32;
                }
            }
            f.complete(&task);
        }
        for ((agent, _), executor) in std::mem::take(&mut f.executors) {
            self.allocator.recover(
                framework,
                &executor.role,
                &agent,
                &executor.resources,
                Duration::ZERO,
                now,
            );
        }
        if let Some(sink) = f.sink.take() {
            sink.send(&events::error("framework has been torn down"));
        }
        self.allocator.remove_framework(framework);
        self.counters.frameworks_removed += 1;
        tracing::info!(framework = %framework, "framework torn down");
        if self.completed_frameworks.len() == COMPLETED_FRAMEWORKS {
            self.completed_frameworks.pop_front();
        }
        self.completed_frameworks.push_back(f);
    }

    /// UPDATE_FRAMEWORK.
    pub fn update_framework(
        &mut self,
        framework: &str,
        update: call::UpdateFramework,
    ) -> Result<(), Refusal> {
        let info = update.framework_info;
        if info.id.as_ref().map(|i| i.value.as_str()) != Some(framework) {
            return Err(bad(
                "'update_framework.framework_info.id' must be the caller's framework id",
            ));
        }
        let roles = checked_roles(&info)?;
        let Some(f) = self.frameworks.get_mut(framework) else {
            return Err(Refusal::NotSubscribed(framework.to_owned()));
        };
        if f.info.user != info.user || f.info.principal != info.principal {
            return Err(bad("'user' and 'principal' cannot be changed"));
        }
        f.info = info;
        f.roles = roles.clone();
        self.allocator.update_roles(framework, &roles);
        self.allocator.revive(framework, &[]);
        if !update.suppressed_roles.is_empty() {
            self.allocator.suppress(framework, &update.suppressed_roles);
        }
        Ok(())
    }
}
