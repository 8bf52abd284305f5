//! The agent's `--allowed_devices`: Mesos's DeviceWhitelist JSON, the
//! devices every container may use besides the default ones, resolved to
//! device rules by their node's major:minor when the agent starts.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;
use tepui_isolators::cgroups::devices::{Access, DeviceRule};

/// Parses the flag's value: the JSON itself, or `file:///path` to it,
/// as Mesos's JSON flags are given.
pub fn parse(value: &str) -> anyhow::Result<Vec<DeviceRule>> {
    let text = match value.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => value.to_owned(),
    };
    let json: Value = serde_json::from_str(&text).context("not JSON")?;
    let Some(entries) = json.get("allowed_devices").and_then(Value::as_array) else {
        bail!("expected {{\"allowed_devices\": [...]}}");
    };
    entries.iter().map(entry).collect()
}

fn entry(entry: &Value) -> anyhow::Result<DeviceRule> {
    let device = entry.get("device").context("an entry has no \"device\"")?;
    if device.get("number").is_some() {
        bail!("device.number is not supported (Mesos neither): give device.path");
    }
    let Some(path) = device.get("path").and_then(Value::as_str) else {
        bail!("whitelisted device has no device path provided");
    };
    let access = entry.get("access").context("an entry has no \"access\"")?;
    let flag = |name: &str| -> anyhow::Result<bool> {
        match access.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => bail!("access.{name} of {path} is {other}, not a boolean"),
        }
    };
    let access = Access {
        read: flag("read")?,
        write: flag("write")?,
        mknod: flag("mknod")?,
    };
    if access == Access::default() {
        bail!("could not whitelist device '{path}' without any access privileges");
    }
    Ok(DeviceRule::for_path(Path::new(path), access)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tepui_isolators::cgroups::devices::DeviceType;

    #[test]
    fn a_path_becomes_its_major_and_minor_with_the_access_given() {
        let rules = parse(
            r#"{"allowed_devices": [{"device": {"path": "/dev/null"},
                "access": {"read": true, "write": false}}]}"#,
        )
        .unwrap();
        assert_eq!(
            rules,
            [DeviceRule {
                kind: DeviceType::Char,
                major: Some(1),
                minor: Some(3),
                access: Access {
                    read: true,
                    ..Access::default()
                },
            }]
        );
    }

    #[test]
    fn what_mesos_refuses_is_refused() {
        for (json, says) in [
            (
                r#"{"allowed_devices": [{"device": {}, "access": {"read": true}}]}"#,
                "no device path",
            ),
            (
                r#"{"allowed_devices": [{"device": {"path": "/dev/null"}, "access": {}}]}"#,
                "without any access",
            ),
            (
                r#"{"allowed_devices": [{"device": {"path": "/etc/passwd"}, "access": {"read": true}}]}"#,
                "not a device node",
            ),
            (
                r#"{"allowed_devices": [{"device": {"number": {"major_number": 8, "minor_number": 0}}, "access": {"read": true}}]}"#,
                "device.number",
            ),
            (r#"[]"#, "allowed_devices"),
        ] {
            let e = format!("{:#}", parse(json).unwrap_err());
            assert!(e.contains(says), "{json}: {e}");
        }
    }
}
