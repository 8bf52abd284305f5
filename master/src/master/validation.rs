//! Validation of what an ACCEPT asks, before anything changes: the
//! offers it names and the operations it carries, as Mesos's
//! master/validation.cpp does it. Pure functions of what they are given
//! (no master), testable alone; also the checks of a framework's roles
//! and of decline filters that other calls share.

use std::collections::HashMap;
use std::time::Duration;

use tepui_proto::acls::{Acls, Action, denied};
use tepui_proto::v1::{ExecutorInfo, FrameworkId, OfferId, TaskInfo, offer, task_status};

use super::{Refusal, bad, describe};
use crate::allocator::filters::DEFAULT_REFUSE;
use crate::resources::Bundle;
use crate::state::{Framework, OfferEntry, roles_of, valid_role};

/// What the offers of one ACCEPT hold together, once checked.
pub(super) struct Accepted {
    /// The one agent they are of.
    pub(super) agent: String,
    /// The one role they are for.
    pub(super) role: String,
    /// Their resources, summed.
    pub(super) offered: Bundle,
}

/// Checks the offers an ACCEPT by `framework` names: at least one, none
/// twice, each outstanding and made to it, all of one agent and one role.
pub(super) fn accepted_offers(
    offers: &HashMap<String, OfferEntry>,
    framework: &str,
    offer_ids: &[OfferId],
) -> Result<Accepted, Refusal> {
    if offer_ids.is_empty() {
        return Err(bad("'accept.offer_ids' must not be empty"));
    }
    let mut agent: Option<String> = None;
    let mut role: Option<String> = None;
    let mut offered = Bundle::default();
    for (i, id) in offer_ids.iter().enumerate() {
        if offer_ids[..i].contains(id) {
            return Err(bad(format!("offer {} is given twice", id.value)));
        }
        let Some(entry) = offers.get(&id.value) else {
            return Err(bad(format!(
                "offer {} is unknown or no longer valid",
                id.value
            )));
        };
        if *entry.framework != *framework {
            return Err(bad(format!(
                "offer {} was not made to framework {framework}",
                id.value
            )));
        }
        if agent.as_ref().is_some_and(|a| **a != *entry.agent) {
            return Err(bad("the offers accepted together must be of one agent"));
        }
        if role.as_ref().is_some_and(|r| **r != *entry.role) {
            return Err(bad("the offers accepted together must be of one role"));
        }
        agent = Some(entry.agent.to_string());
        role = Some(entry.role.to_string());
        offered.add(&entry.resources);
    }
    let (Some(agent), Some(role)) = (agent, role) else {
        return Err(bad("'accept.offer_ids' must not be empty"));
    };
    Ok(Accepted {
        agent,
        role,
        offered,
    })
}

/// Refuses an ACCEPT holding an operation tepui cannot carry out (only
/// LAUNCH and LAUNCH_GROUP are), before its offers are looked at, so that
/// such a call is refused whatever its offers.
pub(super) fn supported(operations: &[offer::Operation]) -> Result<(), Refusal> {
    use offer::operation::Type as Op;
    for operation in operations {
        match operation.r#type.and_then(|t| Op::try_from(t).ok()) {
            Some(Op::Launch | Op::LaunchGroup) => {}
            Some(other) => {
                return Err(Refusal::Unsupported(format!(
                    "operation {}",
                    other.as_str_name()
                )));
            }
            None => return Err(bad("an operation without a known 'type'")),
        }
    }
    Ok(())
}

/// What an ACCEPT's operations come to: the launches that passed, and
/// the tasks that did not, each with why (TASK_ERROR, as Mesos's master
/// answers an invalid task; the call itself is accepted).
pub(super) struct Planned {
    /// The launches to carry out.
    pub(super) launches: Vec<Launch>,
    /// The tasks refused: (task id, reason, message).
    pub(super) invalid: Vec<(String, task_status::Reason, String)>,
}

/// Mesos's least cpus of a task group's executor (master/constants.hpp).
const MIN_CPUS: f64 = 0.01;
/// Mesos's least mem of a task group's executor, in MiB.
const MIN_MEM_MIB: f64 = 32.0;

/// Validates the operations of an accept by framework `framework` (`f`)
/// against what its offers of `agent` hold; nothing changes yet. An
/// operation tepui cannot carry out refuses the whole call; a task that
/// is invalid (a task group: all of it) is refused alone, and the rest go.
pub(super) fn plan(
    framework: &str,
    f: &Framework,
    agent: &str,
    operations: &[offer::Operation],
    offered: &Bundle,
    acls: &Acls,
) -> Result<Planned, Refusal> {
    use offer::operation::Type as Op;
    let mut units = Vec::new();
    for operation in operations {
        let kind = operation.r#type.and_then(|t| Op::try_from(t).ok());
        match kind {
            Some(Op::Launch) => {
                let launch = operation
                    .launch
                    .as_ref()
                    .ok_or_else(|| bad("a LAUNCH operation needs 'launch'"))?;
                for task in &launch.task_infos {
                    units.push((vec![task.clone()], None));
                }
            }
            Some(Op::LaunchGroup) => {
                let group = operation
                    .launch_group
                    .as_ref()
                    .ok_or_else(|| bad("a LAUNCH_GROUP operation needs 'launch_group'"))?;
                if group.task_group.tasks.is_empty() {
                    return Err(bad("a task group must hold at least one task"));
                }
                units.push((group.task_group.tasks.clone(), Some(group.executor.clone())));
            }
            Some(other) => {
                return Err(Refusal::Unsupported(format!(
                    "operation {}",
                    other.as_str_name()
                )));
            }
            None => return Err(bad("an operation without a known 'type'")),
        }
    }
    let mut unit_plan = UnitPlan {
        framework,
        f,
        agent,
        acls,
        remaining: offered.clone(),
        seen_tasks: Vec::new(),
        planned_executors: Vec::new(),
    };
    let mut planned = Planned {
        launches: Vec::new(),
        invalid: Vec::new(),
    };
    for (tasks, executor) in units {
        let group = executor.is_some();
        let ids: Vec<String> = tasks.iter().map(|t| t.task_id.value.clone()).collect();
        match unit_plan.unit(tasks, executor) {
            Ok(launch) => planned.launches.push(launch),
            Err(refusal) => {
                let reason = if matches!(refusal, Refusal::Forbidden(_)) {
                    task_status::Reason::TaskUnauthorized
                } else if group {
                    task_status::Reason::TaskGroupInvalid
                } else {
                    task_status::Reason::TaskInvalid
                };
                for id in ids {
                    planned.invalid.push((id, reason, refusal.to_string()));
                }
            }
        }
    }
    Ok(planned)
}

/// The state of validating an ACCEPT's launches one after another.
struct UnitPlan<'a> {
    framework: &'a str,
    f: &'a Framework,
    agent: &'a str,
    /// Which users the framework's principal may run tasks as.
    acls: &'a Acls,
    /// What the offers still hold.
    remaining: Bundle,
    /// Task ids seen so far in this call.
    seen_tasks: Vec<String>,
    /// Executors started by the launches planned so far.
    planned_executors: Vec<String>,
}

impl UnitPlan<'_> {
    fn executor_known(&self, id: &str, new: &HashMap<String, ExecutorInfo>) -> bool {
        self.f
            .executors
            .contains_key(&(self.agent.to_owned(), id.to_owned()))
            || self.planned_executors.iter().any(|e| e == id)
            || new.contains_key(id)
    }

    /// Refuses a task whose user (its command's, else its executor's,
    /// else the framework's, as Mesos's RUN_TASK object) the framework's
    /// principal may not run as under `run_tasks`.
    fn may_run(&self, task: &TaskInfo, executor: Option<&ExecutorInfo>) -> Result<(), Refusal> {
        let executor = task.executor.as_ref().or(executor);
        let user = task
            .command
            .as_ref()
            .and_then(|c| c.user.as_deref())
            .or_else(|| executor.and_then(|e| e.command.as_ref()?.user.as_deref()))
            .unwrap_or(&self.f.info.user);
        let principal = self.f.info.principal.as_deref();
        if self.acls.authorized(Action::RunTask, principal, Some(user)) {
            return Ok(());
        }
        Err(Refusal::Forbidden(format!(
            "Task {} is not authorized to launch as user '{user}': {}",
            task.task_id.value,
            denied(Action::RunTask, principal, Some(user))
        )))
    }

    /// Validates one launch: one task, or one task group with its
    /// executor; on success its resources are taken from what remains.
    fn unit(
        &mut self,
        tasks: Vec<TaskInfo>,
        executor: Option<ExecutorInfo>,
    ) -> Result<Launch, Refusal> {
        let (framework, agent) = (self.framework, self.agent);
        let mut new_executors: HashMap<String, ExecutorInfo> = HashMap::new();
        let mut launch_tasks = Vec::new();
        let mut launch_resources = Bundle::default();
        let mut group_executor = None;
        if let Some(mut executor) = executor {
            let id = executor.executor_id.value.clone();
            if id.is_empty() {
                return Err(bad("a task group's executor needs an 'executor_id'"));
            }
            let er = Bundle::from_proto(&executor.resources)
                .map_err(|e| bad(format!("executor {id}: {e}")))?;
            let cpus = er.scalar("cpus");
            if cpus < MIN_CPUS {
                return Err(bad(format!(
                    "Executor '{id}' uses less CPUs ({}) than the minimum required ({MIN_CPUS})",
                    if cpus > 0.0 {
                        cpus.to_string()
                    } else {
                        "None".into()
                    }
                )));
            }
            let mem = er.scalar("mem");
            if mem < MIN_MEM_MIB {
                return Err(bad(format!(
                    "Executor '{id}' uses less memory ({}) than the minimum required ({MIN_MEM_MIB}MB)",
                    if mem > 0.0 {
                        format!("{mem}MB")
                    } else {
                        "None".into()
                    }
                )));
            }
            executor.framework_id = Some(FrameworkId {
                value: framework.to_owned(),
            });
            group_executor = Some(executor);
        }
        let mut seen = Vec::new();
        for mut task in tasks {
            let id = task.task_id.value.clone();
            if id.is_empty() {
                return Err(bad("a task needs a non-empty 'task_id'"));
            }
            if self.f.tasks.contains_key(&id) || self.seen_tasks.contains(&id) || seen.contains(&id)
            {
                return Err(bad(format!(
                    "task {id} is a duplicate of a task of this framework"
                )));
            }
            seen.push(id.clone());
            self.may_run(&task, group_executor.as_ref())?;
            if task.agent_id.value.is_empty() {
                task.agent_id.value = agent.to_owned();
            }
            if task.agent_id.value != agent {
                return Err(bad(format!(
                    "task {id} names agent {} but the offers are of agent {agent}",
                    task.agent_id.value
                )));
            }
            if task.resources.is_empty() {
                return Err(bad(format!("Task uses no resources: task {id} names none")));
            }
            let resources =
                Bundle::from_proto(&task.resources).map_err(|e| bad(format!("task {id}: {e}")))?;
            // Every container gets a cpu weight and a memory limit: a
            // command task asks for both, a task with its own executor
            // together with it (a task group's executor has Mesos's
            // minimums, checked above).
            if group_executor.is_none() {
                let mut container = resources.clone();
                if let Some(executor) = &task.executor {
                    container.add(&Bundle::from_proto(&executor.resources).unwrap_or_default());
                }
                for needed in ["cpus", "mem"] {
                    if container.scalar(needed) <= 0.0 {
                        return Err(bad(format!(
                            "Task uses no resources of '{needed}': task {id} and its executor must ask for cpus and mem"
                        )));
                    }
                }
            }
            if let Some(why) = limits_refusal(&task, &resources, group_executor.is_some()) {
                return Err(bad(format!("task {id}: {why}")));
            }
            if let Some(field) = not_carried_out(&task) {
                return Err(bad(format!(
                    "task {id}: TaskInfo.{field} is not supported: tepui would not carry it out"
                )));
            }
            let mut needs = resources.clone();
            if group_executor.is_some() {
                if task.executor.is_some() {
                    return Err(bad(format!(
                        "task {id} of a task group must not name an executor"
                    )));
                }
                if task.command.is_none() && task.container.is_none() {
                    return Err(bad(format!("task {id} needs a 'command'")));
                }
            } else {
                match (&task.command, &mut task.executor) {
                    (Some(_), Some(_)) => {
                        return Err(bad(format!(
                            "task {id} must have either an executor or a command, not both"
                        )));
                    }
                    (None, None) => {
                        return Err(bad(format!(
                            "task {id} must have either an executor or a command"
                        )));
                    }
                    (Some(command), None) => {
                        if command.shell != Some(false)
                            && command.value.as_deref().is_none_or(str::is_empty)
                            && task.container.is_none()
                        {
                            return Err(bad(format!("task {id}: a shell command needs a 'value'")));
                        }
                    }
                    (None, Some(executor)) => {
                        let exec_id = executor.executor_id.value.clone();
                        if exec_id.is_empty() {
                            return Err(bad(format!(
                                "task {id}: the executor needs an 'executor_id'"
                            )));
                        }
                        if executor.command.is_none() {
                            return Err(bad(format!(
                                "task {id}: executor {exec_id} needs a 'command'"
                            )));
                        }
                        executor.framework_id = Some(FrameworkId {
                            value: framework.to_owned(),
                        });
                        if !self.executor_known(&exec_id, &new_executors) {
                            let er = Bundle::from_proto(&executor.resources)
                                .map_err(|e| bad(format!("executor {exec_id}: {e}")))?;
                            needs.add(&er);
                            new_executors.insert(exec_id, executor.clone());
                        }
                    }
                }
            }
            launch_tasks.push((task, resources));
            launch_resources.add(&needs);
        }
        if let Some(executor) = &group_executor {
            let exec_id = executor.executor_id.value.clone();
            if !self.executor_known(&exec_id, &new_executors) {
                let er = Bundle::from_proto(&executor.resources)
                    .map_err(|e| bad(format!("executor {exec_id}: {e}")))?;
                launch_resources.add(&er);
                new_executors.insert(exec_id, executor.clone());
            }
        }
        if !self.remaining.contains(&launch_resources) {
            return Err(bad(format!(
                "the tasks' resources ({}) exceed what the offers leave ({})",
                describe(&launch_resources),
                describe(&self.remaining)
            )));
        }
        self.remaining.subtract(&launch_resources);
        self.seen_tasks.extend(seen);
        self.planned_executors.extend(new_executors.keys().cloned());
        Ok(Launch {
            tasks: launch_tasks,
            group_executor,
            resources: launch_resources,
            new_executors,
        })
    }
}

/// One LAUNCH or LAUNCH_GROUP, validated: what carrying it out needs.
pub(super) struct Launch {
    /// The tasks, each with its resources.
    pub(super) tasks: Vec<(TaskInfo, Bundle)>,
    /// The executor of a LAUNCH_GROUP.
    pub(super) group_executor: Option<ExecutorInfo>,
    /// All it takes from the offers, new executors included.
    pub(super) resources: Bundle,
    /// The executors it starts, by id.
    pub(super) new_executors: HashMap<String, ExecutorInfo>,
}

/// A framework's roles, refused when there are none or one is invalid.
pub(super) fn checked_roles(info: &tepui_proto::v1::FrameworkInfo) -> Result<Vec<String>, Refusal> {
    let roles = roles_of(info);
    if roles.is_empty() {
        return Err(bad("a framework must be subscribed to at least one role"));
    }
    for role in &roles {
        valid_role(role).map_err(bad)?;
    }
    Ok(roles)
}

/// The refuse duration of decline filters (Mesos's default when none is
/// given), refused when it is not a non-negative number.
pub(super) fn refuse_of(filters: Option<&tepui_proto::v1::Filters>) -> Result<Duration, Refusal> {
    match filters.and_then(|f| f.refuse_seconds) {
        None => Ok(DEFAULT_REFUSE),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s.min(365.0 * 86400.0))),
        Some(_) => Err(bad(
            "'filters.refuse_seconds' must be a non-negative number",
        )),
    }
}

/// The first field of `task` that tepui does not carry out yet: refused,
/// never ignored, or a framework would believe its task health-checked,
/// checked or time-limited when it is not.
fn not_carried_out(task: &TaskInfo) -> Option<&'static str> {
    if task.health_check.is_some() {
        Some("health_check")
    } else if task.check.is_some() {
        Some("check")
    } else if task.max_completion_time.is_some() {
        Some("max_completion_time")
    } else {
        None
    }
}

/// Why a task's `limits` cannot be honoured, as Mesos's
/// `validateResourceLimits` says it: only cpus, each limit at least its
/// request. A memory limit is refused (tepui sets memory.max from the
/// request), and so is any limit in a task group, whose tasks share their
/// executor's cgroup.
fn limits_refusal(task: &TaskInfo, resources: &Bundle, in_group: bool) -> Option<String> {
    if task.limits.is_empty() {
        return None;
    }
    if in_group {
        return Some(
            "Resource limits may only be set for tasks within a task group when \
             the 'share_cgroups' field is set to 'false', which tepui does not support"
                .into(),
        );
    }
    let mut names: Vec<&String> = task.limits.keys().collect();
    names.sort();
    if let Some(other) = names
        .iter()
        .find(|n| n.as_str() != "cpus" && n.as_str() != "mem")
    {
        return Some(format!(
            "Only cpus and mem may be included in a task's resource limits, not '{other}'"
        ));
    }
    if task.limits.contains_key("mem") {
        return Some(
            "a memory limit ('limits' mem) is not supported: memory.max is the mem request".into(),
        );
    }
    let cpus = task.limits.get("cpus")?.value;
    let request = resources.scalar("cpus");
    if request <= 0.0 {
        return Some("When a CPU limit is specified, a CPU request must also be specified".into());
    }
    if cpus.is_nan() || cpus < request {
        return Some(format!(
            "The cpu limit must be greater than or equal to the cpu request ({cpus} < {request})"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tepui_proto::v1::{CommandInfo, FrameworkInfo, TaskId};

    use super::*;

    fn bundle(text: &str) -> Bundle {
        Bundle::from_proto(&tepui_proto::resources::parse(text).unwrap()).unwrap()
    }

    fn offer(framework: &str, agent: &str) -> OfferEntry {
        OfferEntry {
            framework: framework.into(),
            role: "*".into(),
            agent: agent.into(),
            resources: bundle("cpus:1;mem:128"),
            made: Instant::now(),
        }
    }

    fn ids(ids: &[&str]) -> Vec<OfferId> {
        ids.iter()
            .map(|id| OfferId {
                value: (*id).to_owned(),
            })
            .collect()
    }

    #[test]
    fn offers_of_one_agent_are_summed_and_others_refused() {
        let offers = HashMap::from([
            ("o1".to_owned(), offer("f1", "a1")),
            ("o2".to_owned(), offer("f1", "a1")),
            ("o3".to_owned(), offer("f1", "a2")),
            ("o4".to_owned(), offer("f2", "a1")),
        ]);
        let accepted = accepted_offers(&offers, "f1", &ids(&["o1", "o2"])).unwrap();
        assert_eq!(accepted.agent, "a1");
        assert_eq!(accepted.offered, bundle("cpus:2;mem:256"));
        for (given, why) in [
            (&[][..], "must not be empty"),
            (&["o1", "o1"][..], "given twice"),
            (&["o9"][..], "unknown or no longer valid"),
            (&["o4"][..], "not made to framework f1"),
            (&["o1", "o3"][..], "of one agent"),
        ] {
            let refusal = accepted_offers(&offers, "f1", &ids(given)).err().unwrap();
            assert!(refusal.to_string().contains(why), "{why}: {refusal}");
        }
    }

    fn task(id: &str, resources: &str) -> TaskInfo {
        TaskInfo {
            task_id: TaskId { value: id.into() },
            resources: if resources.is_empty() {
                Vec::new()
            } else {
                tepui_proto::resources::parse(resources).unwrap()
            },
            command: Some(CommandInfo {
                value: Some("true".into()),
                ..CommandInfo::default()
            }),
            ..TaskInfo::default()
        }
    }

    fn launch(tasks: Vec<TaskInfo>) -> offer::Operation {
        offer::Operation {
            r#type: Some(offer::operation::Type::Launch as i32),
            launch: Some(offer::operation::Launch { task_infos: tasks }),
            ..offer::Operation::default()
        }
    }

    #[test]
    fn what_tepui_would_not_carry_out_is_refused_by_name() {
        let framework = Framework::new(
            FrameworkInfo {
                user: "root".into(),
                ..FrameworkInfo::default()
            },
            0.0,
        );
        let offered = bundle("cpus:1;mem:128");
        let mut health = task("health", "cpus:0.1;mem:32");
        health.health_check = Some(tepui_proto::v1::HealthCheck::default());
        let mut check = task("check", "cpus:0.1;mem:32");
        check.check = Some(tepui_proto::v1::CheckInfo::default());
        let mut timed = task("timed", "cpus:0.1;mem:32");
        timed.max_completion_time = Some(tepui_proto::v1::DurationInfo { nanoseconds: 1 });
        let planned = plan(
            "f1",
            &framework,
            "a1",
            &[launch(vec![
                health,
                check,
                timed,
                task("plain", "cpus:0.1;mem:32"),
            ])],
            &offered,
            &Acls::default(),
        )
        .unwrap();
        let launched: Vec<&str> = planned
            .launches
            .iter()
            .flat_map(|l| l.tasks.iter())
            .map(|(t, _)| t.task_id.value.as_str())
            .collect();
        assert_eq!(launched, ["plain"]);
        let refused: Vec<(&str, &str)> = planned
            .invalid
            .iter()
            .map(|(id, _, why)| (id.as_str(), why.as_str()))
            .collect();
        for (id, field) in [
            ("health", "TaskInfo.health_check"),
            ("check", "TaskInfo.check"),
            ("timed", "TaskInfo.max_completion_time"),
        ] {
            assert!(
                refused.iter().any(|(i, why)| *i == id
                    && why.contains(field)
                    && why.contains("not supported")),
                "{id}: {refused:?}"
            );
        }
        assert!(
            planned
                .invalid
                .iter()
                .all(|(_, reason, _)| *reason == task_status::Reason::TaskInvalid)
        );
    }

    #[test]
    fn a_launch_beyond_the_offers_is_refused() {
        let framework = Framework::new(
            FrameworkInfo {
                user: "root".into(),
                ..FrameworkInfo::default()
            },
            0.0,
        );
        let offered = bundle("cpus:1;mem:128");
        let planned = plan(
            "f1",
            &framework,
            "a1",
            &[launch(vec![task("t1", "cpus:1;mem:32")])],
            &offered,
            &Acls::default(),
        )
        .unwrap();
        assert_eq!((planned.launches.len(), planned.invalid.len()), (1, 0));
        assert_eq!(
            planned.launches[0].tasks[0].0.agent_id.value, "a1",
            "the agent is filled in"
        );
        // Each task of a LAUNCH stands alone: the one beyond the offers
        // gets TASK_ERROR, the one that fits still goes.
        let planned = plan(
            "f1",
            &framework,
            "a1",
            &[launch(vec![
                task("t1", "cpus:2;mem:32"),
                task("t2", "cpus:1;mem:32"),
            ])],
            &offered,
            &Acls::default(),
        )
        .unwrap();
        assert_eq!(planned.launches.len(), 1);
        assert_eq!(planned.launches[0].tasks[0].0.task_id.value, "t2");
        let (id, reason, why) = &planned.invalid[0];
        assert_eq!(
            (id.as_str(), *reason),
            ("t1", task_status::Reason::TaskInvalid)
        );
        assert!(why.contains("exceed"), "{why}");
    }

    #[test]
    fn task_limits_are_cpus_at_least_the_request_outside_task_groups() {
        let scalar = |value: f64| tepui_proto::v1::value::Scalar { value };
        let with = |limits: &[(&str, f64)]| {
            let mut t = task("t1", "cpus:0.5;mem:32");
            t.limits = limits
                .iter()
                .map(|(k, v)| ((*k).to_owned(), scalar(*v)))
                .collect();
            t
        };
        let resources = bundle("cpus:0.5;mem:32");
        for fine in [
            &[][..],
            &[("cpus", 0.5)],
            &[("cpus", 2.0)],
            &[("cpus", f64::INFINITY)],
        ] {
            assert_eq!(
                limits_refusal(&with(fine), &resources, false),
                None,
                "{fine:?}"
            );
        }
        for (limits, why) in [
            (
                &[("cpus", 0.25)][..],
                "greater than or equal to the cpu request",
            ),
            (
                &[("cpus", f64::NAN)],
                "greater than or equal to the cpu request",
            ),
            (&[("disk", 1.0)], "not 'disk'"),
            (&[("mem", 64.0)], "memory limit"),
        ] {
            let got = limits_refusal(&with(limits), &resources, false).unwrap_or_default();
            assert!(got.contains(why), "{limits:?}: {got:?}");
        }
        let no_cpus = limits_refusal(&with(&[("cpus", 1.0)]), &bundle("mem:32"), false);
        assert!(no_cpus.is_some_and(|w| w.contains("a CPU request must also")));
        let grouped = limits_refusal(&with(&[("cpus", 1.0)]), &resources, true);
        assert!(grouped.is_some_and(|w| w.contains("task group")));
    }

    #[test]
    fn a_task_without_cpus_or_mem_uses_no_resources() {
        let framework = Framework::new(
            FrameworkInfo {
                user: "root".into(),
                ..FrameworkInfo::default()
            },
            0.0,
        );
        let offered = bundle("cpus:1;mem:128");
        for (resources, missing) in [
            ("", "no resources"),
            ("cpus:1", "'mem'"),
            ("mem:32", "'cpus'"),
        ] {
            let planned = plan(
                "f1",
                &framework,
                "a1",
                &[launch(vec![task("t1", resources)])],
                &offered,
                &Acls::default(),
            )
            .unwrap();
            assert!(planned.launches.is_empty(), "{resources:?} launched");
            let (_, reason, why) = &planned.invalid[0];
            assert_eq!(*reason, task_status::Reason::TaskInvalid);
            assert!(
                why.starts_with("Task uses no resources") && why.contains(missing),
                "{resources:?}: {why}"
            );
        }
    }

    #[test]
    fn refuse_seconds_must_be_a_non_negative_number() {
        let filters = |s| tepui_proto::v1::Filters {
            refuse_seconds: Some(s),
        };
        assert_eq!(refuse_of(None).unwrap(), DEFAULT_REFUSE);
        assert_eq!(
            refuse_of(Some(&filters(2.0))).unwrap(),
            Duration::from_secs(2)
        );
        assert!(refuse_of(Some(&filters(-1.0))).is_err());
        assert!(refuse_of(Some(&filters(f64::NAN))).is_err());
    }
}
