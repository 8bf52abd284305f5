//! What a task's `ContainerInfo.linux_info` may ask for on this agent, as
//! Mesos's linux/seccomp and linux/capabilities isolators decide it: the
//! seccomp profile (the agent's default, one named from
//! `--seccomp_config_dir`, or none when `unconfined` is allowed) and the
//! capability sets (within `--effective_capabilities` and
//! `--bounding_capabilities`). Checked when the task arrives, so a request
//! that cannot be granted is a TASK_ERROR naming the field.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tepui_containerizer::{Capabilities, SeccompProfile};
use tepui_isolators::capabilities::Bounds;
use tepui_isolators::seccomp::SeccompError;
use tepui_proto::v1::{CapabilityInfo, LinuxInfo, linux_info};

/// Mesos numbers `CapabilityInfo.Capability` from 1000 up (CHOWN = 1000).
const MESOS_CAPABILITY_BASE: i32 = 1000;

/// The agent's seccomp and capability settings.
#[derive(Debug, Clone)]
pub struct LinuxPolicy {
    /// `--seccomp_config_dir`: where named profiles are read from.
    pub seccomp_config_dir: Option<PathBuf>,
    /// The profile of a container whose task names none.
    pub default_seccomp: Arc<SeccompProfile>,
    /// Whether a task may run unconfined.
    pub allow_unconfined: bool,
    /// The capability bounds.
    pub capabilities: Bounds,
    /// Profiles tasks named, parsed and compiled once.
    named: NamedProfiles,
}

/// The profiles tasks named, each kept while its file is unchanged (same
/// modification time and size), so a profile is parsed and compiled once,
/// not for every task that names it.
#[derive(Debug, Clone, Default)]
struct NamedProfiles(Arc<Mutex<HashMap<String, Kept>>>);

/// What tells that a profile's file changed.
type FileStamp = (Option<std::time::SystemTime>, u64);

/// A loaded profile and the stamp of the file it came from.
type Kept = (FileStamp, Arc<SeccompProfile>);

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

impl NamedProfiles {
    fn get(&self, dir: Option<&Path>, name: &str) -> Result<Arc<SeccompProfile>, SeccompError> {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // A name is in the cache only once it has loaded, so it is known
        // to be a plain path inside the directory.
        if let (Some(dir), Some((kept, profile))) = (dir, cache.get(name))
            && stamp(&dir.join(name)).as_ref() == Some(kept)
        {
            return Ok(profile.clone());
        }
        let before = dir.and_then(|d| stamp(&d.join(name)));
        let profile = Arc::new(SeccompProfile::load(dir, name)?);
        if let Some(before) = before {
            cache.insert(name.to_owned(), (before, profile.clone()));
        }
        Ok(profile)
    }
}

impl Default for LinuxPolicy {
    fn default() -> Self {
        Self {
            seccomp_config_dir: None,
            default_seccomp: SeccompProfile::builtin(),
            allow_unconfined: false,
            capabilities: Bounds::default(),
            named: NamedProfiles::default(),
        }
    }
}

/// What a container gets.
#[derive(Debug, Clone)]
pub struct Isolation {
    /// Its seccomp profile; none runs it unconfined.
    pub seccomp: Option<Arc<SeccompProfile>>,
    /// Its capability sets.
    pub capabilities: Capabilities,
}

/// The mask of a CapabilityInfo (Mesos's enum values).
pub fn capability_mask(info: &CapabilityInfo) -> Result<u64, String> {
    info.capabilities.iter().try_fold(0u64, |mask, value| {
        let number = value
            .checked_sub(MESOS_CAPABILITY_BASE)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (*n as usize) < tepui_isolators::capabilities::NAMES.len())
            .ok_or_else(|| format!("unknown capability {value}"))?;
        Ok(mask | 1 << number)
    })
}

/// A CapabilityInfo flag in Mesos's JSON (`{"capabilities": ["NET_RAW"]}`),
/// given inline or as `file:///path` to a file holding it.
pub fn parse_capability_flag(flag: &str, text: &str) -> Result<u64, String> {
    let text = match text.strip_prefix("file://") {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("--{flag}: {path}: {e}"))?
        }
        None => text.to_owned(),
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("--{flag}: not JSON: {e}"))?;
    let list = json
        .get("capabilities")
        .and_then(|c| c.as_array())
        .ok_or_else(|| format!("--{flag}: a CapabilityInfo is {{\"capabilities\": [NAMES]}}"))?;
    let names = list
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| format!("--{flag}: capability {v} is not a name"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    tepui_isolators::capabilities::mask(names.iter().copied())
        .map_err(|name| format!("--{flag}: unknown capability {name:?}"))
}

impl LinuxPolicy {
    /// The policy from the agent's flags; a default profile is loaded (and
    /// compiled) now, so a bad one stops the agent at start.
    pub fn from_flags(
        seccomp_config_dir: Option<PathBuf>,
        seccomp_profile_name: Option<&str>,
        allow_unconfined: bool,
        effective_capabilities: Option<&str>,
        bounding_capabilities: Option<&str>,
    ) -> Result<Self, String> {
        let default_seccomp = match seccomp_profile_name {
            Some(name) => Arc::new(
                SeccompProfile::load(seccomp_config_dir.as_deref(), name)
                    .map_err(|e| format!("--seccomp_profile_name: {e}"))?,
            ),
            None => SeccompProfile::builtin(),
        };
        let effective = effective_capabilities
            .map(|t| parse_capability_flag("effective_capabilities", t))
            .transpose()?;
        let bounding = bounding_capabilities
            .map(|t| parse_capability_flag("bounding_capabilities", t))
            .transpose()?;
        Ok(Self {
            seccomp_config_dir,
            default_seccomp,
            allow_unconfined,
            capabilities: Bounds::new(effective, bounding).map_err(|e| e.to_string())?,
            named: NamedProfiles::default(),
        })
    }

    /// What a container whose ContainerInfo has `info` gets, or why not.
    pub fn resolve(&self, info: Option<&LinuxInfo>) -> Result<Isolation, String> {
        let Some(info) = info else {
            return Ok(Isolation {
                seccomp: Some(self.default_seccomp.clone()),
                capabilities: self
                    .capabilities
                    .resolve(None, None)
                    .map_err(|e| format!("linux_info.{e}"))?,
            });
        };
        if info.share_pid_namespace == Some(true) {
            return Err(
                "linux_info.share_pid_namespace is not supported: every container gets its own pid namespace"
                    .into(),
            );
        }
        if info.ipc_mode == Some(linux_info::IpcMode::ShareParent as i32) {
            return Err(
                "linux_info.ipc_mode SHARE_PARENT is not supported: every container gets its own IPC namespace"
                    .into(),
            );
        }
        if info.shm_size.is_some() {
            return Err("linux_info.shm_size is not supported".into());
        }
        // Mesos still reads the deprecated field as the effective set.
        #[allow(deprecated)]
        let legacy = info.capability_info.as_ref();
        if legacy.is_some() && info.effective_capabilities.is_some() {
            return Err(
                "linux_info: only one of 'capability_info' or 'effective_capabilities' is allowed"
                    .into(),
            );
        }
        let effective = info
            .effective_capabilities
            .as_ref()
            .or(legacy)
            .map(capability_mask)
            .transpose()
            .map_err(|e| format!("linux_info.effective_capabilities: {e}"))?;
        let bounding = info
            .bounding_capabilities
            .as_ref()
            .map(capability_mask)
            .transpose()
            .map_err(|e| format!("linux_info.bounding_capabilities: {e}"))?;
        let capabilities = self
            .capabilities
            .resolve(effective, bounding)
            .map_err(|e| format!("linux_info.{e}"))?;
        Ok(Isolation {
            seccomp: self.seccomp(info)?,
            capabilities,
        })
    }

    fn seccomp(&self, info: &LinuxInfo) -> Result<Option<Arc<SeccompProfile>>, String> {
        let Some(seccomp) = &info.seccomp else {
            return Ok(Some(self.default_seccomp.clone()));
        };
        let unconfined = seccomp.unconfined.unwrap_or(false);
        match (&seccomp.profile_name, unconfined) {
            (Some(_), true) => Err(
                "linux_info.seccomp: 'profile_name' given even though 'unconfined' is set".into(),
            ),
            (None, true) if self.allow_unconfined => Ok(None),
            (None, true) => Err(
                "linux_info.seccomp.unconfined is not allowed on this agent (--seccomp_allow_unconfined)"
                    .into(),
            ),
            (Some(name), false) if name == self.default_seccomp.name() => {
                Ok(Some(self.default_seccomp.clone()))
            }
            (Some(name), false) => self
                .named
                .get(self.seccomp_config_dir.as_deref(), name)
                .map(Some)
                .map_err(|e| format!("linux_info.seccomp.profile_name: {e}")),
            (None, false) => Err("linux_info.seccomp: missing 'profile_name'".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tepui_proto::v1::SeccompInfo;

    fn caps(names: &[&str]) -> CapabilityInfo {
        CapabilityInfo {
            capabilities: names
                .iter()
                .map(|n| {
                    MESOS_CAPABILITY_BASE
                        + tepui_isolators::capabilities::mask([*n])
                            .unwrap()
                            .trailing_zeros() as i32
                })
                .collect(),
        }
    }

    #[test]
    fn a_task_without_linux_info_gets_the_default_profile_and_set() {
        let got = LinuxPolicy::default().resolve(None).unwrap();
        assert_eq!(
            got.seccomp.unwrap().name(),
            tepui_isolators::seccomp::DEFAULT_PROFILE_NAME
        );
        let default = tepui_isolators::capabilities::default_mask();
        assert_eq!(
            got.capabilities,
            Capabilities {
                effective: default,
                bounding: default
            }
        );
    }

    #[test]
    fn unconfined_needs_the_agents_permission_and_names_the_field() {
        let info = LinuxInfo {
            seccomp: Some(SeccompInfo {
                profile_name: None,
                unconfined: Some(true),
            }),
            ..Default::default()
        };
        let e = LinuxPolicy::default().resolve(Some(&info)).unwrap_err();
        assert!(e.contains("linux_info.seccomp.unconfined"), "{e}");
        let allowed = LinuxPolicy {
            allow_unconfined: true,
            ..LinuxPolicy::default()
        };
        assert!(allowed.resolve(Some(&info)).unwrap().seccomp.is_none());
        let e = LinuxPolicy::default()
            .resolve(Some(&LinuxInfo {
                seccomp: Some(SeccompInfo {
                    profile_name: Some("../x.json".into()),
                    unconfined: None,
                }),
                ..Default::default()
            }))
            .unwrap_err();
        assert!(e.contains("linux_info.seccomp.profile_name"), "{e}");
    }

    #[test]
    fn a_named_profile_is_loaded_once_until_its_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.json");
        std::fs::write(&file, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
        let policy = LinuxPolicy {
            seccomp_config_dir: Some(dir.path().to_owned()),
            ..LinuxPolicy::default()
        };
        let info = LinuxInfo {
            seccomp: Some(SeccompInfo {
                profile_name: Some("p.json".into()),
                unconfined: None,
            }),
            ..Default::default()
        };
        let first = policy.resolve(Some(&info)).unwrap().seccomp.unwrap();
        let again = policy.resolve(Some(&info)).unwrap().seccomp.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        std::fs::write(
            &file,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}"#,
        )
        .unwrap();
        let changed = policy.resolve(Some(&info)).unwrap().seccomp.unwrap();
        assert!(!Arc::ptr_eq(&first, &changed));
        std::fs::remove_file(&file).unwrap();
        assert!(policy.resolve(Some(&info)).is_err());
    }

    #[test]
    fn capabilities_outside_the_bound_are_refused_by_name() {
        let info = LinuxInfo {
            effective_capabilities: Some(caps(&["NET_ADMIN"])),
            ..Default::default()
        };
        let e = LinuxPolicy::default().resolve(Some(&info)).unwrap_err();
        assert!(
            e.contains("linux_info.effective_capabilities") && e.contains("NET_ADMIN"),
            "{e}"
        );
        let policy = LinuxPolicy::from_flags(
            None,
            None,
            false,
            None,
            Some(r#"{"capabilities": ["NET_ADMIN", "KILL"]}"#),
        )
        .unwrap();
        let got = policy.resolve(Some(&info)).unwrap();
        assert_eq!(got.capabilities.effective, 1 << 12);
        let e = policy
            .resolve(Some(&LinuxInfo {
                bounding_capabilities: Some(caps(&["SYS_ADMIN"])),
                ..Default::default()
            }))
            .unwrap_err();
        assert!(
            e.contains("linux_info.bounding_capabilities") && e.contains("SYS_ADMIN"),
            "{e}"
        );
    }

    #[test]
    fn capability_flags_are_mesos_json() {
        assert_eq!(
            parse_capability_flag("x", r#"{"capabilities": ["CHOWN", "KILL"]}"#),
            Ok(1 | 1 << 5)
        );
        assert!(
            parse_capability_flag("x", r#"{"capabilities": ["FLY"]}"#)
                .unwrap_err()
                .contains("FLY")
        );
        assert!(parse_capability_flag("x", "[]").is_err());
        assert!(
            LinuxPolicy::from_flags(
                None,
                None,
                false,
                Some(r#"{"capabilities": ["SYS_ADMIN"]}"#),
                Some(r#"{"capabilities": ["KILL"]}"#)
            )
            .unwrap_err()
            .contains("SYS_ADMIN")
        );
    }
}
