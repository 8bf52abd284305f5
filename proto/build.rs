//! Compiles the .proto files with protox (pure Rust, no protoc needed) and
//! generates prost types; the descriptor set is kept for the JSON codec,
//! and a table of required fields for the protobuf decoder's check.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

const PROTOS: &[&str] = &[
    "mesos/v1/mesos.proto",
    "mesos/v1/scheduler/scheduler.proto",
    "mesos/v1/executor/executor.proto",
    "mesos/v1/master/master.proto",
    "mesos/v1/agent/agent.proto",
    "tepui/internal/internal.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    let fds = protox::compile(&files, [&root])?;

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    std::fs::write(out.join("required_schema.rs"), required_schema(&fds)?)?;

    prost_build::Config::new()
        .enable_type_names()
        .compile_fds(fds)?;
    Ok(())
}

/// A message field the required check looks at.
struct Field {
    number: i32,
    name: String,
    required: bool,
    repeated: bool,
    string: bool,
    /// Full name of a message-typed field's type.
    message: Option<String>,
}

/// Every message by full name (no leading dot), nested ones included.
fn collect(
    prefix: &str,
    messages: &[DescriptorProto],
    into: &mut BTreeMap<String, (Vec<Field>, bool)>,
) {
    for message in messages {
        let name = format!("{prefix}.{}", message.name());
        let fields = message
            .field
            .iter()
            .map(|f| Field {
                number: f.number(),
                name: f.name().to_owned(),
                required: f.label() == Label::Required,
                repeated: f.label() == Label::Repeated,
                string: f.r#type() == Type::String,
                message: (f.r#type() == Type::Message)
                    .then(|| f.type_name().trim_start_matches('.').to_owned()),
            })
            .collect();
        let map_entry = message
            .options
            .as_ref()
            .is_some_and(|o| o.map_entry.unwrap_or(false));
        collect(&name, &message.nested_type, into);
        into.insert(name, (fields, map_entry));
    }
}

/// Rust source of `SCHEMAS`: the messages that have a required field
/// somewhere inside them, sorted by name, with only the fields that lead to
/// one. Map entries are marked so a path names an element by its key.
fn required_schema(fds: &FileDescriptorSet) -> Result<String, Box<dyn std::error::Error>> {
    let mut all = BTreeMap::new();
    for file in &fds.file {
        collect(file.package(), &file.message_type, &mut all);
    }
    // A message needs checking when it has a required field or a message
    // field whose type needs checking: grow the set to its fixpoint.
    let mut needs: BTreeMap<&str, bool> = all
        .iter()
        .map(|(name, (fields, _))| (name.as_str(), fields.iter().any(|f| f.required)))
        .collect();
    loop {
        let mut grew = false;
        for (name, (fields, _)) in &all {
            if needs[name.as_str()] {
                continue;
            }
            if fields
                .iter()
                .any(|f| f.message.as_deref().is_some_and(|m| needs[m]))
            {
                needs.insert(name, true);
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    let kept: Vec<&str> = needs.iter().filter(|(_, n)| **n).map(|(m, _)| *m).collect();
    let index = |name: &str| kept.binary_search(&name).ok();

    let mut src = String::from("pub(crate) static SCHEMAS: &[Schema] = &[\n");
    for name in &kept {
        let (fields, map_entry) = &all[*name];
        if *map_entry {
            let key = fields.iter().find(|f| f.number == 1);
            if !key.is_some_and(|k| k.string) {
                // required.rs names a map element by its key as text.
                return Err(format!("{name}: the required check needs string map keys").into());
            }
        }
        writeln!(
            src,
            "    Schema {{ name: {name:?}, map_entry: {map_entry}, fields: &["
        )?;
        for f in fields {
            let message = f.message.as_deref().and_then(index);
            if !f.required && message.is_none() {
                continue;
            }
            writeln!(
                src,
                "        Field {{ number: {}, name: {:?}, required: {}, repeated: {}, message: {:?} }},",
                f.number, f.name, f.required, f.repeated, message
            )?;
        }
        src.push_str("    ] },\n");
    }
    src.push_str("];\n");
    Ok(src)
}
