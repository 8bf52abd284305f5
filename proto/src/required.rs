//! The proto2 `required` check Mesos applies after every parse: a call
//! missing a required field is refused, naming the field.
//!
//! The check reads the encoded bytes against a table build.rs derives from
//! the .proto files, so a process that only speaks protobuf (the executor,
//! the agent's master link) never builds the reflection pool the JSON codec
//! needs: that costs milliseconds and megabytes per process.

use std::fmt::Write as _;

/// A required field is absent; `path` names it from the top message
/// (`subscribe.framework_info.user`, `tasks[2].task_id`, `limits[cpus].value`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{type_name}: missing required field '{path}'")]
pub struct MissingRequired {
    /// Full proto name of the top-level message.
    pub type_name: String,
    /// Dotted path of the missing field.
    pub path: String,
}

/// A message type with a required field somewhere inside it.
pub(crate) struct Schema {
    /// Full proto name, the table's sort key.
    name: &'static str,
    /// A map's synthetic entry type: its elements are named by key.
    map_entry: bool,
    /// The fields that are required or lead to a required field, in
    /// declaration order (the order a missing field is reported in).
    fields: &'static [Field],
}

/// A field the check looks at.
pub(crate) struct Field {
    number: u32,
    name: &'static str,
    required: bool,
    repeated: bool,
    /// Index in `SCHEMAS` of a message-typed field's type.
    message: Option<usize>,
}

include!(concat!(env!("OUT_DIR"), "/required_schema.rs"));

/// Messages nest at most this deep; prost refuses deeper input first.
const MAX_DEPTH: usize = 100;

/// Checks the encoding of a `type_name` message, and every message nested
/// in it, for absent required fields. The bytes must already have decoded
/// as that type; a malformed tail ends the reading of its message.
pub fn check(type_name: &str, bytes: &[u8]) -> Result<(), MissingRequired> {
    let Ok(top) = SCHEMAS.binary_search_by(|s| s.name.cmp(type_name)) else {
        return Ok(());
    };
    let mut path = String::new();
    walk(&SCHEMAS[top], &[bytes], &mut path, 0).map_err(|path| MissingRequired {
        type_name: type_name.to_owned(),
        path,
    })
}

/// The occurrences of one schema field in a message's bytes.
#[derive(Default)]
struct Seen<'a> {
    present: bool,
    /// Each occurrence's bytes, for a message-typed field.
    parts: Vec<&'a [u8]>,
}

/// Returns the path of the first missing required field. `chunks` are
/// read as one message: protobuf merges the occurrences of a singular
/// message field, so its required fields may be spread over them.
fn walk(schema: &Schema, chunks: &[&[u8]], path: &mut String, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut seen: Vec<Seen> = schema.fields.iter().map(|_| Seen::default()).collect();
    for chunk in chunks {
        let mut wire = Wire(chunk);
        while let Some((number, bytes)) = wire.next_field() {
            if let Some(i) = schema.fields.iter().position(|f| f.number == number) {
                seen[i].present = true;
                if let (Some(bytes), Some(_)) = (bytes, schema.fields[i].message) {
                    seen[i].parts.push(bytes);
                }
            }
        }
    }
    for (field, seen) in schema.fields.iter().zip(&seen) {
        let mark = path.len();
        if mark > 0 {
            path.push('.');
        }
        path.push_str(field.name);
        if !seen.present && field.required {
            return Err(std::mem::take(path));
        }
        if let (true, Some(inner)) = (seen.present, field.message) {
            let inner = &SCHEMAS[inner];
            if field.repeated {
                for (i, part) in seen.parts.iter().enumerate() {
                    element(inner, part, i, path, depth + 1)?;
                }
            } else {
                walk(inner, &seen.parts, path, depth + 1)?;
            }
        }
        path.truncate(mark);
    }
    Ok(())
}

/// Walks one element of a repeated field as `path[index]`, or of a map
/// field as `path[key]` (its value, as Mesos's JSON shows a map).
fn element(
    schema: &Schema,
    bytes: &[u8],
    index: usize,
    path: &mut String,
    depth: usize,
) -> Result<(), String> {
    let mark = path.len();
    path.push('[');
    if !schema.map_entry {
        let _ = write!(path, "{index}");
        path.push(']');
        walk(schema, &[bytes], path, depth)?;
        path.truncate(mark);
        return Ok(());
    }
    // A map entry: key = 1 (a string, build.rs makes sure), value = 2.
    let mut key: &[u8] = &[];
    let mut values = Vec::new();
    let mut wire = Wire(bytes);
    while let Some((number, field)) = wire.next_field() {
        match (number, field) {
            (1, Some(k)) => key = k,
            (2, Some(v)) => values.push(v),
            _ => {}
        }
    }
    path.push_str(&String::from_utf8_lossy(key));
    path.push(']');
    let value = schema.fields.iter().find(|f| f.number == 2);
    if let Some(inner) = value.and_then(|f| f.message) {
        walk(&SCHEMAS[inner], &values, path, depth)?;
    }
    path.truncate(mark);
    Ok(())
}

/// A reader of protobuf's wire format that skips what it does not need.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    /// The next field's number, with its bytes when length-delimited;
    /// `None` at the end or at a malformed field.
    fn next_field(&mut self) -> Option<(u32, Option<&'a [u8]>)> {
        if self.0.is_empty() {
            return None;
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).ok()?;
        let bytes = match key & 7 {
            0 => self.varint().map(|_| None)?,
            1 => self.take(8).map(|_| None)?,
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                Some(self.take(len)?)
            }
            3 => self.skip_group().map(|()| None)?,
            5 => self.take(4).map(|_| None)?,
            _ => return None,
        };
        Some((number, bytes))
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first()?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.0.len() {
            return None;
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(taken)
    }

    /// Skips a (deprecated) group up to its matching end, nested ones too.
    fn skip_group(&mut self) -> Option<()> {
        let mut open = 1usize;
        while open > 0 {
            let key = self.varint()?;
            match key & 7 {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.take(8)?;
                }
                2 => {
                    let len = usize::try_from(self.varint()?).ok()?;
                    self.take(len)?;
                }
                3 => open += 1,
                4 => open -= 1,
                5 => {
                    self.take(4)?;
                }
                _ => return None,
            }
        }
        Some(())
    }
}
