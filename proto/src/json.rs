//! JSON exactly as Mesos writes and reads it.
//!
//! Mesos maps protobuf to JSON with its own rules (stout's `jsonify` and
//! `protobuf::parse`), not proto3's canonical mapping. Existing clients
//! depend on them, so this module follows them:
//!
//! Writing: proto field names; every set field, plus each unset singular
//! field that declares a `[default]` and is not deprecated; repeated and map
//! fields only when non-empty; enums by name; 64-bit integers as JSON
//! numbers; bytes as padded standard base64; maps as objects. A non-finite
//! double is written as the string `"Infinity"`, `"-Infinity"` or `"NaN"`,
//! the first two of which the reader accepts back.
//!
//! Reading: unknown fields are ignored; `null` leaves a field unset; a
//! number may come as a numeric string, a bool as `"true"`/`"false"`, a
//! double as `"Infinity"`/`"-Infinity"`; a single value where a repeated
//! field is expected is one element; an unknown enum name leaves an
//! optional field unset and fails a required one; base64 may omit padding
//! and contain whitespace; then every required field must be present.
//! Unlike Mesos, an integer field refuses a fractional or out-of-range
//! number instead of truncating it.

use base64::Engine as _;
use prost_reflect::{
    DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value as Field,
};
use serde_json::{Map, Number, Value as Json};

use crate::descriptor::{self, DescriptorError};
use crate::required::{self, MissingRequired};

/// Why a JSON document could not become (or be made from) a message.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The bytes are not JSON at all.
    #[error("malformed JSON: {0}")]
    Syntax(serde_json::Error),
    /// A value has the wrong JSON type for its field.
    #[error("{type_name}: field '{path}': expected {expected}, found {found}")]
    Type {
        /// Full proto name of the top-level message.
        type_name: String,
        /// Dotted path of the field, or `(top level)`.
        path: String,
        /// What the field takes.
        expected: &'static str,
        /// What the document held.
        found: &'static str,
    },
    /// A value has the right JSON type but cannot be the field's value.
    #[error("{type_name}: field '{path}': {reason}")]
    Value {
        /// Full proto name of the top-level message.
        type_name: String,
        /// Dotted path of the field.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A required field is absent.
    #[error(transparent)]
    MissingRequired(#[from] MissingRequired),
    /// The message type has no descriptor (a build defect).
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
    /// A message did not survive the trip through reflection (a defect).
    #[error("re-encoding {type_name}: {error}")]
    Reflect {
        /// Full proto name of the message.
        type_name: String,
        /// The decoder's complaint.
        error: prost::DecodeError,
    },
}

/// Parses a JSON document into a message by Mesos's rules.
pub fn from_slice<M>(bytes: &[u8]) -> Result<M, JsonError>
where
    M: prost::Message + prost::Name + Default,
{
    let json: Json = serde_json::from_slice(bytes).map_err(JsonError::Syntax)?;
    from_value(&json)
}

/// Parses an already-decoded JSON value into a message by Mesos's rules.
pub fn from_value<M>(json: &Json) -> Result<M, JsonError>
where
    M: prost::Message + prost::Name + Default,
{
    let descriptor = descriptor::of::<M>()?;
    let bytes = prost::Message::encode_to_vec(&read(&descriptor, json)?);
    required::check(descriptor.full_name(), &bytes)?;
    M::decode(bytes.as_slice()).map_err(|source| JsonError::Reflect {
        type_name: M::full_name(),
        error: source,
    })
}

/// Parses a JSON value into a dynamic message of the given type.
pub fn dynamic_from_value(
    descriptor: MessageDescriptor,
    json: &Json,
) -> Result<DynamicMessage, JsonError> {
    let message = read(&descriptor, json)?;
    required::check(
        descriptor.full_name(),
        &prost::Message::encode_to_vec(&message),
    )?;
    Ok(message)
}

/// The JSON as a dynamic message, before the required-field check (which
/// reads the encoding, so each caller encodes once).
fn read(descriptor: &MessageDescriptor, json: &Json) -> Result<DynamicMessage, JsonError> {
    let mut reader = Reader {
        type_name: descriptor.full_name().to_owned(),
        path: String::new(),
    };
    reader.message(descriptor, json)
}

/// Writes a message as Mesos would.
pub fn to_value<M>(message: &M) -> Result<Json, JsonError>
where
    M: prost::Message + prost::Name,
{
    let descriptor = descriptor::of::<M>()?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()).map_err(
        |source| JsonError::Reflect {
            type_name: M::full_name(),
            error: source,
        },
    )?;
    Ok(dynamic_to_value(&dynamic))
}

/// Writes a message as compact JSON bytes, as Mesos would.
pub fn to_vec<M>(message: &M) -> Result<Vec<u8>, JsonError>
where
    M: prost::Message + prost::Name,
{
    // Serialising a `serde_json::Value` to memory cannot fail.
    Ok(to_value(message)?.to_string().into_bytes())
}

/// Writes a dynamic message as Mesos would.
pub fn dynamic_to_value(message: &DynamicMessage) -> Json {
    let mut object = Map::new();
    for field in message.descriptor().fields() {
        let value = if field.is_map() || field.is_list() || message.has_field(&field) {
            write_field(&field, &message.get_field(&field))
        } else if writes_default(&field) {
            write_field(&field, &field.default_value())
        } else {
            None
        };
        if let Some(value) = value {
            object.insert(field.name().to_owned(), value);
        }
    }
    Json::Object(object)
}

/// Whether an unset field is still written: stout writes declared defaults
/// unless the field is deprecated.
fn writes_default(field: &FieldDescriptor) -> bool {
    let proto = field.field_descriptor_proto();
    let deprecated = proto
        .options
        .as_ref()
        .and_then(|options| options.deprecated)
        .unwrap_or(false);
    !field.is_list() && proto.default_value.is_some() && !deprecated
}

/// The JSON of one field; `None` for an empty repeated or map field.
fn write_field(field: &FieldDescriptor, value: &Field) -> Option<Json> {
    match value {
        Field::List(items) if items.is_empty() => None,
        Field::List(items) => Some(Json::Array(
            items
                .iter()
                .map(|item| write_value(&field.kind(), item))
                .collect(),
        )),
        Field::Map(entries) if entries.is_empty() => None,
        Field::Map(entries) => {
            let value_kind = match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other,
            };
            let mut object = Map::new();
            for (key, value) in entries {
                object.insert(map_key_text(key), write_value(&value_kind, value));
            }
            Some(Json::Object(object))
        }
        single => Some(write_value(&field.kind(), single)),
    }
}

fn write_value(kind: &Kind, value: &Field) -> Json {
    match value {
        Field::Bool(b) => Json::Bool(*b),
        Field::I32(n) => Json::from(*n),
        Field::I64(n) => Json::from(*n),
        Field::U32(n) => Json::from(*n),
        Field::U64(n) => Json::from(*n),
        Field::F32(x) => write_double(f64::from(*x)),
        Field::F64(x) => write_double(*x),
        Field::String(s) => Json::String(s.clone()),
        Field::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Field::EnumNumber(number) => match kind {
            Kind::Enum(e) => match e.get_value(*number) {
                Some(v) => Json::String(v.name().to_owned()),
                None => Json::from(*number),
            },
            _ => Json::from(*number),
        },
        Field::Message(m) => dynamic_to_value(m),
        // Nested lists and maps do not occur inside singular values.
        Field::List(_) | Field::Map(_) => Json::Null,
    }
}

fn write_double(x: f64) -> Json {
    match Number::from_f64(x) {
        Some(n) => Json::Number(n),
        None if x.is_nan() => Json::String("NaN".to_owned()),
        None if x > 0.0 => Json::String("Infinity".to_owned()),
        None => Json::String("-Infinity".to_owned()),
    }
}

/// Parsing state: the path to the value being read, for error messages.
struct Reader {
    type_name: String,
    path: String,
}

impl Reader {
    fn message(
        &mut self,
        descriptor: &MessageDescriptor,
        json: &Json,
    ) -> Result<DynamicMessage, JsonError> {
        let Json::Object(object) = json else {
            return Err(self.type_error("an object", json));
        };
        let mut message = DynamicMessage::new(descriptor.clone());
        for (name, value) in object {
            // Unknown fields are skipped, as Mesos does; `null` means unset.
            let Some(field) = descriptor.get_field_by_name(name) else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            let mark = self.enter(name);
            if let Some(parsed) = self.field(&field, value)? {
                message.set_field(&field, parsed);
            }
            self.path.truncate(mark);
        }
        Ok(message)
    }

    /// Reads a field's whole value: a list, a map or a single value.
    fn field(&mut self, field: &FieldDescriptor, json: &Json) -> Result<Option<Field>, JsonError> {
        if field.is_map() {
            return self.map(field, json).map(Some);
        }
        if !field.is_list() {
            return self.single(field, &field.kind(), json);
        }
        // Mesos takes a lone value for a repeated field as one element.
        let items = match json {
            Json::Array(items) => items.as_slice(),
            other => std::slice::from_ref(other),
        };
        let mut list = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if item.is_null() {
                continue;
            }
            let mark = self.path.len();
            self.path.push_str(&format!("[{i}]"));
            if let Some(value) = self.single(field, &field.kind(), item)? {
                list.push(value);
            }
            self.path.truncate(mark);
        }
        Ok(Some(Field::List(list)))
    }

    fn map(&mut self, field: &FieldDescriptor, json: &Json) -> Result<Field, JsonError> {
        let Json::Object(object) = json else {
            return Err(self.type_error("an object", json));
        };
        let Kind::Message(entry) = field.kind() else {
            return Err(self.value_error("map field without an entry type".to_owned()));
        };
        let key_field = entry.map_entry_key_field();
        let value_field = entry.map_entry_value_field();
        let mut map = std::collections::HashMap::with_capacity(object.len());
        for (key, value) in object {
            let mark = self.path.len();
            self.path.push_str(&format!("[{key}]"));
            let key = self.map_key(&key_field.kind(), key)?;
            if !value.is_null()
                && let Some(value) = self.single(&value_field, &value_field.kind(), value)?
            {
                map.insert(key, value);
            }
            self.path.truncate(mark);
        }
        Ok(Field::Map(map))
    }

    fn map_key(&self, kind: &Kind, key: &str) -> Result<MapKey, JsonError> {
        let bad = |what: &str| self.value_error(format!("map key '{key}' is not {what}"));
        Ok(match kind {
            Kind::String => MapKey::String(key.to_owned()),
            Kind::Bool => match key {
                "true" => MapKey::Bool(true),
                "false" => MapKey::Bool(false),
                _ => return Err(bad("a boolean")),
            },
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                MapKey::I32(key.parse().map_err(|_| bad("a 32-bit integer"))?)
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                MapKey::I64(key.parse().map_err(|_| bad("a 64-bit integer"))?)
            }
            Kind::Uint32 | Kind::Fixed32 => {
                MapKey::U32(key.parse().map_err(|_| bad("an unsigned 32-bit integer"))?)
            }
            Kind::Uint64 | Kind::Fixed64 => {
                MapKey::U64(key.parse().map_err(|_| bad("an unsigned 64-bit integer"))?)
            }
            _ => return Err(bad("of a valid key type")),
        })
    }

    /// Reads one value of `kind`; `None` when an unknown enum name leaves
    /// an optional field unset.
    fn single(
        &mut self,
        field: &FieldDescriptor,
        kind: &Kind,
        json: &Json,
    ) -> Result<Option<Field>, JsonError> {
        let value = match kind {
            Kind::Message(descriptor) => Field::Message(self.message(descriptor, json)?),
            Kind::String => match json {
                Json::String(s) => Field::String(s.clone()),
                other => return Err(self.type_error("a string", other)),
            },
            Kind::Bytes => match json {
                Json::String(s) => Field::Bytes(self.base64(s)?.into()),
                other => return Err(self.type_error("a base64 string", other)),
            },
            Kind::Enum(e) => return self.enumeration(field, e, json),
            Kind::Bool => match json {
                Json::Bool(b) => Field::Bool(*b),
                Json::String(s) if s == "true" => Field::Bool(true),
                Json::String(s) if s == "false" => Field::Bool(false),
                other => return Err(self.type_error("a boolean", other)),
            },
            Kind::Double => Field::F64(self.double(json)?),
            // Narrowing to f32 is what a float field means.
            Kind::Float => Field::F32(self.double(json)? as f32),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                Field::I32(self.integer(json, i32::MIN.into(), i32::MAX.into(), "int32")? as i32)
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                Field::I64(self.integer(json, i64::MIN.into(), i64::MAX.into(), "int64")? as i64)
            }
            Kind::Uint32 | Kind::Fixed32 => {
                Field::U32(self.integer(json, 0, u32::MAX.into(), "uint32")? as u32)
            }
            Kind::Uint64 | Kind::Fixed64 => {
                Field::U64(self.integer(json, 0, u64::MAX.into(), "uint64")? as u64)
            }
        };
        Ok(Some(value))
    }

    fn enumeration(
        &self,
        field: &FieldDescriptor,
        e: &EnumDescriptor,
        json: &Json,
    ) -> Result<Option<Field>, JsonError> {
        let Json::String(name) = json else {
            return Err(self.type_error("an enum value name", json));
        };
        match e.get_value_by_name(name) {
            Some(v) => Ok(Some(Field::EnumNumber(v.number()))),
            None if field.cardinality() == prost_reflect::Cardinality::Required => {
                Err(self.value_error(format!("'{name}' is not a value of {}", e.full_name())))
            }
            None => Ok(None),
        }
    }

    fn double(&self, json: &Json) -> Result<f64, JsonError> {
        match json {
            Json::Number(n) => n
                .as_f64()
                .ok_or_else(|| self.value_error(format!("{n} is not a double"))),
            Json::String(s) => match s.as_str() {
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                text => match serde_json::from_str::<Json>(text) {
                    Ok(Json::Number(n)) => self.double(&Json::Number(n)),
                    _ => Err(self.value_error(format!("'{text}' is not a number"))),
                },
            },
            other => Err(self.type_error("a number", other)),
        }
    }

    /// Reads an integer within `[min, max]`, from a number or a numeric
    /// string; an integral float such as `15.0` is accepted.
    fn integer(&self, json: &Json, min: i128, max: i128, what: &str) -> Result<i128, JsonError> {
        let number = match json {
            Json::Number(n) => n.clone(),
            Json::String(text) => match serde_json::from_str::<Json>(text) {
                Ok(Json::Number(n)) => n,
                _ => return Err(self.value_error(format!("'{text}' is not a number"))),
            },
            other => return Err(self.type_error("an integer", other)),
        };
        let value = if let Some(i) = number.as_i64() {
            i128::from(i)
        } else if let Some(u) = number.as_u64() {
            i128::from(u)
        } else {
            let x = number.as_f64().unwrap_or(f64::NAN);
            // Exactly representable integers only: 2^64 and beyond fail
            // the range check below.
            if x.fract() != 0.0 || !x.is_finite() || x.abs() > 1.8e19 {
                return Err(self.value_error(format!("{number} is not an integer")));
            }
            x as i128
        };
        if value < min || value > max {
            return Err(self.value_error(format!("{value} is out of range for {what}")));
        }
        Ok(value)
    }

    /// Decodes base64 as leniently as Mesos: whitespace skipped, padding
    /// optional, stray low bits in the last character ignored.
    fn base64(&self, text: &str) -> Result<Vec<u8>, JsonError> {
        let compact: String = text
            .chars()
            .take_while(|c| *c != '=')
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        LENIENT_BASE64
            .decode(compact.as_bytes())
            .map_err(|e| self.value_error(format!("invalid base64: {e}")))
    }

    fn enter(&mut self, name: &str) -> usize {
        let mark = self.path.len();
        if mark > 0 {
            self.path.push('.');
        }
        self.path.push_str(name);
        mark
    }

    fn location(&self) -> String {
        if self.path.is_empty() {
            "(top level)".to_owned()
        } else {
            self.path.clone()
        }
    }

    fn type_error(&self, expected: &'static str, found: &Json) -> JsonError {
        JsonError::Type {
            type_name: self.type_name.clone(),
            path: self.location(),
            expected,
            found: json_kind(found),
        }
    }

    fn value_error(&self, reason: String) -> JsonError {
        JsonError::Value {
            type_name: self.type_name.clone(),
            path: self.location(),
            reason,
        }
    }
}

/// Standard alphabet, padding optional, trailing bits tolerated.
const LENIENT_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A map key as it appears in a JSON object key.
fn map_key_text(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}
