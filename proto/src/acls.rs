//! Mesos's local authorizer, shared by the master and the agent: the
//! `--acls` JSON (`include/mesos/authorizer/acls.proto`) read once, and
//! the one decision every call site asks, with the matching rules of
//! `src/authorizer/local/authorizer.cpp`: the first entry whose subject
//! and object both match the request decides; when none matches,
//! `permissive` does.

use std::collections::BTreeMap;

use serde_json::Value;

/// What a principal asks to do: the ACL lists tepui enforces, each named
/// as in Mesos's `ACLs` message, with the name of its object field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// `register_frameworks`: principals × roles (every role of a
    /// FrameworkInfo is asked for).
    RegisterFramework,
    /// `run_tasks`: principals × users (the task's user, else the
    /// framework's).
    RunTask,
    /// `teardown_frameworks`: principals × framework_principals.
    TeardownFramework,
    /// `view_frameworks`: principals × users (the framework's user).
    ViewFramework,
    /// `view_tasks`: principals × users (the task's user, else the
    /// framework's).
    ViewTask,
    /// `view_executors`: principals × users (the executor's user, else
    /// the framework's).
    ViewExecutor,
    /// `view_flags`: principals × flags (always ANY).
    ViewFlags,
    /// `access_sandboxes`: principals × users (the executor's user, else
    /// the framework's).
    AccessSandbox,
    /// `mark_agents_gone`: principals × agents (always ANY).
    MarkAgentGone,
    /// `register_agents`: principals × agents (always ANY).
    RegisterAgent,
    /// `get_endpoints`: principals × paths.
    GetEndpoint,
}

impl Action {
    /// Every action, for parsing.
    const ALL: [Action; 11] = [
        Self::RegisterFramework,
        Self::RunTask,
        Self::TeardownFramework,
        Self::ViewFramework,
        Self::ViewTask,
        Self::ViewExecutor,
        Self::ViewFlags,
        Self::AccessSandbox,
        Self::MarkAgentGone,
        Self::RegisterAgent,
        Self::GetEndpoint,
    ];

    /// The field of Mesos's `ACLs` message that lists its entries.
    pub fn list(self) -> &'static str {
        match self {
            Self::RegisterFramework => "register_frameworks",
            Self::RunTask => "run_tasks",
            Self::TeardownFramework => "teardown_frameworks",
            Self::ViewFramework => "view_frameworks",
            Self::ViewTask => "view_tasks",
            Self::ViewExecutor => "view_executors",
            Self::ViewFlags => "view_flags",
            Self::AccessSandbox => "access_sandboxes",
            Self::MarkAgentGone => "mark_agents_gone",
            Self::RegisterAgent => "register_agents",
            Self::GetEndpoint => "get_endpoints",
        }
    }

    /// The field of an entry that names its objects.
    pub fn object(self) -> &'static str {
        match self {
            Self::RegisterFramework => "roles",
            Self::TeardownFramework => "framework_principals",
            Self::ViewFlags => "flags",
            Self::MarkAgentGone | Self::RegisterAgent => "agents",
            Self::GetEndpoint => "paths",
            Self::RunTask
            | Self::ViewFramework
            | Self::ViewTask
            | Self::ViewExecutor
            | Self::AccessSandbox => "users",
        }
    }
}

/// The lists of Mesos's `ACLs` message that tepui does not enforce: a
/// file naming one is refused rather than half obeyed.
const NOT_ENFORCED: &[&str] = &[
    "reserve_resources",
    "unreserve_resources",
    "create_volumes",
    "destroy_volumes",
    "resize_volumes",
    "update_weights",
    "get_quotas",
    "update_quotas",
    "access_mesos_logs",
    "view_roles",
    "launch_nested_containers_as_user",
    "launch_nested_containers_under_parent_with_user",
    "kill_nested_containers",
    "wait_nested_containers",
    "launch_nested_container_sessions_as_user",
    "launch_nested_container_sessions_under_parent_with_user",
    "attach_containers_input",
    "attach_containers_output",
    "view_containers",
    "set_log_level",
    "remove_nested_containers",
    "update_maintenance_schedules",
    "get_maintenance_schedules",
    "start_maintenances",
    "stop_maintenances",
    "get_maintenance_statuses",
    "drain_agents",
    "deactivate_agents",
    "reactivate_agents",
    "launch_standalone_containers",
    "kill_standalone_containers",
    "wait_standalone_containers",
    "remove_standalone_containers",
    "view_standalone_containers",
    "modify_resource_provider_configs",
    "mark_resource_providers_gone",
    "view_resource_providers",
    "prune_images",
    "create_block_disks",
    "destroy_block_disks",
    "create_mount_disks",
    "destroy_mount_disks",
    "destroy_raw_disks",
];

/// Mesos's `ACL.Entity`: some named values, anyone, or no one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    /// `{"values":[..]}` (type SOME, the default).
    Some(Vec<String>),
    /// `{"type":"ANY"}`.
    Any,
    /// `{"type":"NONE"}`.
    None,
}

impl Entity {
    /// Whether every value of `request` is among `values`.
    fn subset(request: &[String], values: &[String]) -> bool {
        request.iter().all(|r| values.contains(r))
    }

    /// Whether an entry with this entity applies to `request`
    /// (authorizer.cpp's `matches`).
    fn matches(&self, request: &Entity) -> bool {
        match (request, self) {
            (Entity::None, acl) => *acl == Entity::None,
            (Entity::Any, acl) => matches!(acl, Entity::Any | Entity::None),
            (Entity::Some(_), Entity::Any | Entity::None) => true,
            (Entity::Some(r), Entity::Some(values)) => Self::subset(r, values),
        }
    }

    /// Whether an applying entry with this entity lets `request` through
    /// (authorizer.cpp's `allows`).
    fn allows(&self, request: &Entity) -> bool {
        match (request, self) {
            (Entity::None, acl) => *acl == Entity::None,
            (Entity::Any, acl) => *acl == Entity::Any,
            (Entity::Some(_), Entity::Any) => true,
            (Entity::Some(_), Entity::None) => false,
            (Entity::Some(r), Entity::Some(values)) => Self::subset(r, values),
        }
    }

    /// The request entity of one value, or ANY when there is none.
    fn of(value: Option<&str>) -> Entity {
        value.map_or(Entity::Any, |v| Entity::Some(vec![v.to_owned()]))
    }
}

/// One entry of an ACL list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    principals: Entity,
    objects: Entity,
}

/// ACLs that cannot be used: the reason names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--acls: {0}")]
pub struct AclsError(pub String);

/// Mesos's `ACLs`, as the local authorizer holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acls {
    permissive: bool,
    lists: BTreeMap<Action, Vec<Entry>>,
}

impl Default for Acls {
    /// No `--acls`: everything is allowed, as Mesos without an authorizer.
    fn default() -> Self {
        Self {
            permissive: true,
            lists: BTreeMap::new(),
        }
    }
}

fn entity(value: &Value, at: &str) -> Result<Entity, AclsError> {
    let fail = |why: &str| AclsError(format!("{at}: {why}"));
    let Some(object) = value.as_object() else {
        return Err(fail(
            "expecting an object like {\"values\":[..]} or {\"type\":\"ANY\"}",
        ));
    };
    for key in object.keys() {
        if key != "type" && key != "values" {
            return Err(fail(&format!("'{key}' is not a field of ACL.Entity")));
        }
    }
    let values = match object.get("values") {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| fail("'values' must hold strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(fail("'values' must be an array of strings")),
    };
    match object.get("type") {
        None => Ok(Entity::Some(values)),
        Some(Value::String(t)) => match t.as_str() {
            "SOME" => Ok(Entity::Some(values)),
            "ANY" => Ok(Entity::Any),
            "NONE" => Ok(Entity::None),
            other => Err(fail(&format!(
                "type {other:?} is not one of SOME, ANY, NONE"
            ))),
        },
        Some(_) => Err(fail("'type' must be \"SOME\", \"ANY\" or \"NONE\"")),
    }
}

impl Acls {
    /// Parses Mesos's ACLs JSON; a list tepui does not enforce, an unknown
    /// field or a malformed entry is refused, naming it.
    pub fn parse(text: &str) -> Result<Self, AclsError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| AclsError(format!("not JSON ({e})")))?;
        let Some(fields) = doc.as_object() else {
            return Err(AclsError(
                "expecting an object like {\"permissive\":true,\"run_tasks\":[..]}".into(),
            ));
        };
        let mut acls = Acls::default();
        for (key, value) in fields {
            if key == "permissive" {
                acls.permissive = value
                    .as_bool()
                    .ok_or_else(|| AclsError("'permissive' must be true or false".into()))?;
                continue;
            }
            let Some(action) = Action::ALL.into_iter().find(|a| a.list() == key) else {
                if NOT_ENFORCED.contains(&key.as_str()) {
                    return Err(AclsError(format!(
                        "'{key}' is a Mesos ACL that tepui does not enforce; remove it"
                    )));
                }
                return Err(AclsError(format!("'{key}' is not a field of Mesos's ACLs")));
            };
            let Some(list) = value.as_array() else {
                return Err(AclsError(format!("'{key}' must be an array of entries")));
            };
            let object = action.object();
            let mut entries = Vec::new();
            for (i, item) in list.iter().enumerate() {
                let at = format!("{key}[{i}]");
                let Some(fields) = item.as_object() else {
                    return Err(AclsError(format!("{at}: expecting an object")));
                };
                for field in fields.keys() {
                    if field != "principals" && field != object {
                        return Err(AclsError(format!(
                            "{at}: '{field}' is not a field of this entry (expecting 'principals' and '{object}')"
                        )));
                    }
                }
                let get = |field: &str| {
                    fields
                        .get(field)
                        .ok_or_else(|| AclsError(format!("{at}: '{field}' is required")))
                        .and_then(|v| entity(v, &format!("{at}.{field}")))
                };
                entries.push(Entry {
                    principals: get("principals")?,
                    objects: get(object)?,
                });
            }
            acls.lists.insert(action, entries);
        }
        Ok(acls)
    }

    /// Reads the `--acls` flag as Mesos does: a path, a `file://` URL, or
    /// the JSON itself.
    pub fn from_flag(flag: &str) -> Result<Self, AclsError> {
        let trimmed = flag.trim_start();
        let path = trimmed
            .strip_prefix("file://")
            .or_else(|| trimmed.starts_with('/').then_some(trimmed));
        match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| AclsError(format!("reading {path}: {e}")))?;
                Self::parse(&text).map_err(|AclsError(why)| AclsError(format!("{path}: {why}")))
            }
            None => Self::parse(trimmed),
        }
    }

    /// Whether no entry restricts anything: every request is allowed.
    pub fn allows_all(&self) -> bool {
        self.permissive && self.lists.is_empty()
    }

    /// The decision: may `principal` (none: an unauthenticated request,
    /// Mesos's ANY subject) do `action` on `object` (none: ANY, for the
    /// actions whose object Mesos does not name)?
    pub fn authorized(
        &self,
        action: Action,
        principal: Option<&str>,
        object: Option<&str>,
    ) -> bool {
        let subject = Entity::of(principal);
        let object = Entity::of(object);
        self.lists
            .get(&action)
            .into_iter()
            .flatten()
            .find(|e| e.principals.matches(&subject) && e.objects.matches(&object))
            .map_or(self.permissive, |e| {
                e.principals.allows(&subject) && e.objects.allows(&object)
            })
    }
}

/// The message of a 403: who was refused what.
pub fn denied(action: Action, principal: Option<&str>, object: Option<&str>) -> String {
    let who = principal.map_or_else(
        || "an unauthenticated request".to_owned(),
        |p| format!("principal '{p}'"),
    );
    match object {
        Some(o) => format!(
            "Forbidden: {who} is not authorized by the ACLs' '{}' for {} '{o}'",
            action.list(),
            action.object()
        ),
        None => format!(
            "Forbidden: {who} is not authorized by the ACLs' '{}'",
            action.list()
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn acls(text: &str) -> Acls {
        Acls::parse(text).unwrap()
    }

    #[test]
    fn no_acls_allow_everything() {
        let a = Acls::default();
        assert!(a.allows_all());
        assert!(a.authorized(Action::RunTask, Some("p"), Some("root")));
        assert!(a.authorized(Action::MarkAgentGone, None, None));
        assert!(acls("{}").allows_all());
    }

    #[test]
    fn the_first_matching_entry_decides() {
        let a = acls(
            r#"{"run_tasks":[
                {"principals":{"values":["ops"]},"users":{"type":"ANY"}},
                {"principals":{"values":["web"]},"users":{"values":["www"]}},
                {"principals":{"type":"ANY"},"users":{"values":["root"]}},
                {"principals":{"values":["web"]},"users":{"type":"NONE"}}
            ]}"#,
        );
        assert!(a.authorized(Action::RunTask, Some("ops"), Some("root")));
        assert!(a.authorized(Action::RunTask, Some("web"), Some("www")));
        // web as root: the third entry matches (ANY principal, root) and
        // allows it, before the NONE entry is reached.
        assert!(a.authorized(Action::RunTask, Some("web"), Some("root")));
        // web as nobody: only the NONE entry matches, and refuses.
        assert!(!a.authorized(Action::RunTask, Some("web"), Some("nobody")));
        // Nothing matches: permissive (the default true) decides.
        assert!(a.authorized(Action::RunTask, Some("dev"), Some("nobody")));
        // Another list is not consulted.
        assert!(a.authorized(Action::ViewTask, Some("web"), Some("nobody")));
    }

    #[test]
    fn permissive_false_refuses_what_no_entry_matches() {
        let a = acls(
            r#"{"permissive":false,
                "teardown_frameworks":[{"principals":{"values":["ops"]},"framework_principals":{"type":"ANY"}}]}"#,
        );
        assert!(a.authorized(Action::TeardownFramework, Some("ops"), Some("x")));
        assert!(!a.authorized(Action::TeardownFramework, Some("dev"), Some("x")));
        assert!(!a.authorized(Action::MarkAgentGone, Some("ops"), None));
        assert!(!a.allows_all());
    }

    #[test]
    fn an_unauthenticated_request_is_mesos_s_any_subject() {
        let a = acls(
            r#"{"permissive":false,
                "view_flags":[{"principals":{"values":["ops"]},"flags":{"type":"ANY"}}],
                "mark_agents_gone":[{"principals":{"type":"ANY"},"agents":{"type":"ANY"}}]}"#,
        );
        // A SOME entry does not match ANY: nothing matches, refused.
        assert!(!a.authorized(Action::ViewFlags, None, None));
        assert!(a.authorized(Action::ViewFlags, Some("ops"), None));
        assert!(a.authorized(Action::MarkAgentGone, None, None));
        // A NONE entry matches ANY but does not allow it.
        let none = acls(
            r#"{"mark_agents_gone":[{"principals":{"type":"NONE"},"agents":{"type":"ANY"}}]}"#,
        );
        assert!(!none.authorized(Action::MarkAgentGone, None, None));
        assert!(!none.authorized(Action::MarkAgentGone, Some("ops"), None));
    }

    #[test]
    fn malformed_or_unenforced_acls_are_refused_by_name() {
        for (text, needle) in [
            ("[]", "expecting an object"),
            (r#"{"permissive":"yes"}"#, "permissive"),
            (r#"{"run_task":[]}"#, "'run_task' is not a field"),
            (
                r#"{"reserve_resources":[]}"#,
                "'reserve_resources' is a Mesos ACL that tepui does not enforce",
            ),
            (
                r#"{"run_tasks":[{"principals":{"type":"ANY"}}]}"#,
                "run_tasks[0]: 'users' is required",
            ),
            (
                r#"{"run_tasks":[{"principals":{"type":"ANY"},"roles":{"type":"ANY"}}]}"#,
                "'roles' is not a field of this entry",
            ),
            (
                r#"{"run_tasks":[{"principals":{"type":"ALL"},"users":{"type":"ANY"}}]}"#,
                "\"ALL\"",
            ),
            (
                r#"{"run_tasks":[{"principals":{"values":"a"},"users":{"type":"ANY"}}]}"#,
                "array of strings",
            ),
        ] {
            let e = Acls::parse(text).unwrap_err();
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn the_flag_is_a_path_a_file_url_or_json() {
        let dir = std::env::temp_dir().join(format!("tepui-acls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("acls.json");
        std::fs::write(&file, r#"{"permissive":false}"#).unwrap();
        let by_path = Acls::from_flag(&file.display().to_string()).unwrap();
        let by_url = Acls::from_flag(&format!("file://{}", file.display())).unwrap();
        let inline = Acls::from_flag(r#"{"permissive":false}"#).unwrap();
        assert_eq!(by_path, inline);
        assert_eq!(by_url, inline);
        assert!(!inline.authorized(Action::ViewFlags, Some("a"), None));
        assert!(
            Acls::from_flag("/no/such/acls")
                .unwrap_err()
                .to_string()
                .contains("/no/such/acls")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_message_names_the_principal_and_the_object() {
        let m = denied(Action::RunTask, Some("web"), Some("root"));
        assert!(
            m.contains("'web'") && m.contains("run_tasks") && m.contains("users 'root'"),
            "{m}"
        );
    }
}
