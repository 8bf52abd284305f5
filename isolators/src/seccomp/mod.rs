//! Seccomp: which system calls a container's processes may make. A
//! profile (Docker's JSON format, or the built-in default equivalent to
//! Docker's) is compiled once per capability bounding set into BPF
//! programs that the launcher installs as the last step before exec.
//!
//! - `profile`: the JSON format and the parsed form.
//! - `default`: the built-in default profile.
//! - `compile`: a profile made into BPF with libseccomp (binary trees).
//! - `disk_cache`: compiled filters kept on disk between processes.
//! - `oci`: a profile as an OCI runtime config's `linux.seccomp`.

mod compile;
mod default;
pub mod disk_cache;
pub mod oci;
pub mod profile;

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

pub use compile::CompileError;
pub use disk_cache::DiskCache;
pub use profile::{Profile, ProfileError};
use tepui_launcher::SeccompProgram;

/// The name the built-in default profile goes by.
pub const DEFAULT_PROFILE_NAME: &str = "tepui-default";

/// A seccomp profile could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A profile name that is not a plain relative path under the
    /// config directory.
    #[error(
        "seccomp profile name {0:?}: give a relative path inside the seccomp config directory, without '..'"
    )]
    BadName(String),
    /// A profile named with no config directory to find it in.
    #[error("seccomp profile {0:?} is named, but the agent has no --seccomp_config_dir")]
    NoConfigDir(String),
    /// The profile file could not be read.
    #[error("reading seccomp profile {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        error: std::io::Error,
    },
    /// The profile file is not a usable profile.
    #[error("seccomp profile {path}: {error}")]
    Profile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: ProfileError,
    },
    /// The profile could not be compiled.
    #[error("seccomp profile {name}: {error}")]
    Compile {
        /// The profile's name.
        name: String,
        /// What failed.
        error: CompileError,
    },
}

/// A profile by name, with its compiled filters cached per bounding set
/// (a container's capabilities decide which conditional rules apply).
#[derive(Debug)]
pub struct SeccompProfile {
    name: String,
    profile: Profile,
    compiled: Mutex<HashMap<u64, Arc<[SeccompProgram]>>>,
}

impl SeccompProfile {
    /// A named profile.
    pub fn new(name: impl Into<String>, profile: Profile) -> Self {
        Self {
            name: name.into(),
            profile,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// The built-in default, shared by every container that uses it.
    pub fn builtin() -> Arc<Self> {
        static DEFAULT: OnceLock<Arc<SeccompProfile>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| Arc::new(Self::new(DEFAULT_PROFILE_NAME, default::profile())))
            .clone()
    }

    /// Loads `name` (a relative path) from the config directory `dir`.
    pub fn load(dir: Option<&Path>, name: &str) -> Result<Self, SeccompError> {
        let relative = Path::new(name);
        if name.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(SeccompError::BadName(name.to_owned()));
        }
        let dir = dir.ok_or_else(|| SeccompError::NoConfigDir(name.to_owned()))?;
        let path = dir.join(relative);
        let text = std::fs::read(&path).map_err(|error| SeccompError::Read {
            path: path.clone(),
            error,
        })?;
        let profile =
            Profile::from_json(&text).map_err(|error| SeccompError::Profile { path, error })?;
        let loaded = Self::new(name, profile);
        // Compiled once now, so a profile that cannot compile is refused
        // when it is loaded, not at a launch.
        loaded.programs(tepui_launcher::caps::mask(["CAP_SYS_ADMIN"]).unwrap_or(0))?;
        Ok(loaded)
    }

    /// The profile's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The profile as an OCI config's `linux.seccomp` for this bounding
    /// set on this kernel.
    pub fn linux_seccomp(&self, bounding: u64) -> serde_json::Value {
        oci::linux_seccomp(&self.profile, bounding, kernel_version())
    }

    /// The filters for a container with this bounding set, in order;
    /// compiled on first use and kept.
    pub fn programs(&self, bounding: u64) -> Result<Arc<[SeccompProgram]>, SeccompError> {
        self.programs_cached(bounding, None)
    }

    /// As [`Self::programs`], but with a `cache`, a filter compiled by an
    /// earlier process is read from it instead of compiled again, and one
    /// compiled here is kept there for the next. A cache that cannot be
    /// used is logged and passed over: the filter is then compiled.
    pub fn programs_cached(
        &self,
        bounding: u64,
        cache: Option<&DiskCache>,
    ) -> Result<Arc<[SeccompProgram]>, SeccompError> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(programs) = compiled.get(&bounding) {
            return Ok(programs.clone());
        }
        let cache = cache.map(|cache| {
            let key = disk_cache::Key::new(&self.profile, bounding, kernel_version());
            (cache, key)
        });
        let cached = cache
            .as_ref()
            .and_then(|(cache, key)| match cache.load(key) {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(%error, "compiling the seccomp filter instead");
                    None
                }
            });
        let programs: Arc<[SeccompProgram]> = match cached {
            Some(programs) => programs.into(),
            None => {
                let programs: Arc<[SeccompProgram]> =
                    compile::compile(&self.profile, bounding, kernel_version())
                        .map_err(|error| SeccompError::Compile {
                            name: self.name.clone(),
                            error,
                        })?
                        .into();
                if let Some(Err(error)) = cache.map(|(cache, key)| cache.store(&key, &programs)) {
                    tracing::warn!(%error, "the compiled seccomp filter is not kept");
                }
                programs
            }
        };
        compiled.insert(bounding, programs.clone());
        Ok(programs)
    }
}

/// The running kernel's (major, minor), read once; (0, 0) if unreadable,
/// which leaves out the rules that need a minimum kernel.
fn kernel_version() -> (u32, u32) {
    static VERSION: OnceLock<(u32, u32)> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release.trim().split(['.', '-']);
        let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (next(), next())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities;

    #[test]
    fn the_default_compiles_to_an_allow_list_and_an_enosys_clone3() {
        let programs = SeccompProfile::builtin()
            .programs(capabilities::default_mask())
            .unwrap();
        // The allow-list with its EPERM default, then clone3's ENOSYS.
        assert_eq!(programs.len(), 2);
        assert!(programs[0].instructions().len() > 300);
        let returns = |p: &SeccompProgram| -> Vec<u32> {
            p.instructions()
                .iter()
                .filter(|i| i.code == 0x06)
                .map(|i| i.k)
                .collect()
        };
        assert!(returns(&programs[0]).contains(&(libc::SECCOMP_RET_ERRNO | 1)));
        assert!(returns(&programs[1]).contains(&(libc::SECCOMP_RET_ERRNO | 38)));
        // With CAP_SYS_ADMIN, clone3 is allowed outright: one filter.
        let admin = capabilities::default_mask() | 1 << 21;
        assert_eq!(SeccompProfile::builtin().programs(admin).unwrap().len(), 1);
    }

    #[test]
    fn compiled_filters_are_cached_per_bounding_set() {
        let profile = SeccompProfile::builtin();
        let a = profile.programs(capabilities::default_mask()).unwrap();
        let b = profile.programs(capabilities::default_mask()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn profile_names_stay_inside_the_config_dir() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", ""] {
            assert!(
                matches!(
                    SeccompProfile::load(Some(dir.path()), bad),
                    Err(SeccompError::BadName(_))
                ),
                "{bad}"
            );
        }
        std::fs::write(
            dir.path().join("mine.json"),
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let mine = SeccompProfile::load(Some(dir.path()), "mine.json").unwrap();
        assert_eq!(mine.programs(0).unwrap().len(), 1);
        assert!(matches!(
            SeccompProfile::load(None, "mine.json"),
            Err(SeccompError::NoConfigDir(_))
        ));
    }
}
