//! The proto2 `required` check Mesos applies after every parse: a call
//! missing a required field is refused, naming the field.

use prost_reflect::{Cardinality, DynamicMessage, MapKey, ReflectMessage, Value};

/// A required field is absent; `path` names it from the top message
/// (`subscribe.framework_info.user`, `tasks[2].task_id`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{type_name}: missing required field '{path}'")]
pub struct MissingRequired {
    /// Full proto name of the top-level message.
    pub type_name: String,
    /// Dotted path of the missing field.
    pub path: String,
}

/// Checks `message` and every message nested in it.
pub fn check(message: &DynamicMessage) -> Result<(), MissingRequired> {
    let mut path = String::new();
    walk(message, &mut path).map_err(|path| MissingRequired {
        type_name: message.descriptor().full_name().to_owned(),
        path,
    })
}

/// Returns the path of the first missing required field.
fn walk(message: &DynamicMessage, path: &mut String) -> Result<(), String> {
    for field in message.descriptor().fields() {
        let present = message.has_field(&field);
        if !present && field.cardinality() != Cardinality::Required {
            continue;
        }
        let mark = path.len();
        if mark > 0 {
            path.push('.');
        }
        path.push_str(field.name());
        if !present {
            return Err(std::mem::take(path));
        }
        match &*message.get_field(&field) {
            Value::Message(inner) => walk(inner, path)?,
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Message(inner) = item {
                        nested(inner, path, &i.to_string())?;
                    }
                }
            }
            Value::Map(entries) => {
                for (key, value) in entries {
                    if let Value::Message(inner) = value {
                        nested(inner, path, &map_key_text(key))?;
                    }
                }
            }
            _ => {}
        }
        path.truncate(mark);
    }
    Ok(())
}

/// Walks one element of a repeated or map field, as `path[index]`.
fn nested(inner: &DynamicMessage, path: &mut String, index: &str) -> Result<(), String> {
    let mark = path.len();
    path.push('[');
    path.push_str(index);
    path.push(']');
    walk(inner, path)?;
    path.truncate(mark);
    Ok(())
}

/// A map key as it appears in a JSON object key.
pub(crate) fn map_key_text(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}
