//! The registry: the agents a master has admitted, kept in its work dir
//! (`registry.json`) so that a restarted master knows which agents to
//! expect back and which it already marked unreachable. Every write is
//! atomic (temporary file, fsync, rename, fsync of the directory).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tepui_proto::v1::AgentInfo;

/// A registry that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("registry {path}: {why}")]
pub struct RegistryError {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    pub why: String,
}

/// What the registry remembers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    /// Admitted agents, by id.
    pub agents: BTreeMap<String, AgentInfo>,
    /// Agents marked unreachable, by id, with the time they were.
    pub unreachable: BTreeMap<String, (AgentInfo, f64)>,
    /// Agents an operator marked gone (they may never come back), by id,
    /// with the time they were.
    pub gone: BTreeMap<String, (AgentInfo, f64)>,
    /// The principal each agent authenticated as, by id: a re-registration
    /// under that id must present the same one.
    pub principals: BTreeMap<String, String>,
}

/// The registry's file in `work_dir`.
pub fn path(work_dir: &Path) -> PathBuf {
    work_dir.join("registry.json")
}

impl Registry {
    /// Reads the registry in `work_dir`; an absent file is an empty one.
    pub fn load(work_dir: &Path) -> Result<Self, RegistryError> {
        let path = path(work_dir);
        let fail = |why: String| RegistryError {
            path: path.clone(),
            why,
        };
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(fail(e.to_string())),
        };
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
        let mut registry = Self::default();
        for item in doc["agents"].as_array().into_iter().flatten() {
            let info: AgentInfo =
                tepui_proto::json::from_value(item).map_err(|e| fail(e.to_string()))?;
            let id = info
                .id
                .as_ref()
                .map(|i| i.value.clone())
                .unwrap_or_default();
            registry.agents.insert(id, info);
        }
        for (key, list) in [
            ("unreachable", &mut registry.unreachable),
            ("gone", &mut registry.gone),
        ] {
            for item in doc[key].as_array().into_iter().flatten() {
                let info: AgentInfo = tepui_proto::json::from_value(&item["info"])
                    .map_err(|e| fail(e.to_string()))?;
                let id = info
                    .id
                    .as_ref()
                    .map(|i| i.value.clone())
                    .unwrap_or_default();
                let time = item["time"].as_f64().unwrap_or(0.0);
                list.insert(id, (info, time));
            }
        }
        if let Some(map) = doc["principals"].as_object() {
            for (id, principal) in map {
                let Some(principal) = principal.as_str() else {
                    return Err(fail(format!("principals.{id}: not a string")));
                };
                registry.principals.insert(id.clone(), principal.to_owned());
            }
        }
        Ok(registry)
    }

    /// Writes the registry to `work_dir`, atomically.
    pub fn save(&self, work_dir: &Path) -> Result<(), RegistryError> {
        let path = path(work_dir);
        let fail = |why: String| RegistryError {
            path: path.clone(),
            why,
        };
        let agents: Vec<Value> = self
            .agents
            .values()
            .map(|info| tepui_proto::json::to_value(info).map_err(|e| fail(e.to_string())))
            .collect::<Result<_, _>>()?;
        let timed = |list: &BTreeMap<String, (AgentInfo, f64)>| {
            list.values()
                .map(|(info, time)| {
                    tepui_proto::json::to_value(info)
                        .map(|info| json!({"info": info, "time": time}))
                        .map_err(|e| fail(e.to_string()))
                })
                .collect::<Result<Vec<Value>, _>>()
        };
        let doc = json!({
            "agents": agents,
            "unreachable": timed(&self.unreachable)?,
            "gone": timed(&self.gone)?,
            "principals": self.principals,
        });
        std::fs::create_dir_all(work_dir).map_err(|e| fail(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(|e| fail(e.to_string()))?;
        file.write_all(doc.to_string().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| fail(e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| fail(e.to_string()))?;
        std::fs::File::open(work_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tepui_proto::v1::AgentId;

    #[test]
    fn round_trips_and_reports_corruption_by_path() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Registry::load(dir.path()).unwrap(), Registry::default());
        let mut r = Registry::default();
        let info = AgentInfo {
            hostname: "h1".into(),
            // The JSON reader fills proto2 defaults; 5051 is port's.
            port: Some(5051),
            id: Some(AgentId { value: "a1".into() }),
            ..AgentInfo::default()
        };
        let gone = AgentInfo {
            id: Some(AgentId { value: "a2".into() }),
            ..info.clone()
        };
        r.agents.insert("a1".into(), info);
        r.unreachable.insert("a2".into(), (gone.clone(), 12.5));
        r.gone.insert("a2".into(), (gone, 13.5));
        r.principals.insert("a1".into(), "agent-1".into());
        r.save(dir.path()).unwrap();
        assert_eq!(Registry::load(dir.path()).unwrap(), r);
        std::fs::write(path(dir.path()), "{not json").unwrap();
        let e = Registry::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("registry.json"), "{e}");
    }
}
