//! Golden tests: the JSON examples of Mesos's docs/scheduler-http-api.md
//! and docs/executor-http-api.md parse into our types and come back out
//! as equivalent JSON, and survive a protobuf round trip.
//!
//! "Equivalent" is judged by an oracle written here independently of the
//! codec: every key of the example is present in the output with the same
//! value (numbers compared numerically, bytes compared decoded), except the
//! keys the protos do not define, which must be exactly the ones each case
//! declares as ignored; the output may add a key only where Mesos would,
//! for an unset field with a declared, non-deprecated default, and then
//! only with that default.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use base64::Engine as _;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::Value as Json;
use tepui_proto::v1::{executor, scheduler};
use tepui_proto::{descriptor, json, protobuf};

struct Case {
    file: &'static str,
    ignored: &'static [&'static str],
}

const fn case(file: &'static str) -> Case {
    Case { file, ignored: &[] }
}

const SCHEDULER_CALLS: &[Case] = &[
    case("scheduler/call-subscribe"),
    // The docs' Disconnections section puts framework_info at the top of
    // the Call, where Mesos ignores it as unknown.
    Case {
        file: "scheduler/call-subscribe-bare",
        ignored: &["framework_info"],
    },
    case("scheduler/call-teardown"),
    case("scheduler/call-accept"),
    case("scheduler/call-decline"),
    case("scheduler/call-revive"),
    case("scheduler/call-kill"),
    case("scheduler/call-shutdown"),
    case("scheduler/call-acknowledge"),
    case("scheduler/call-acknowledge-operation-status"),
    case("scheduler/call-reconcile"),
    case("scheduler/call-reconcile-operations"),
    case("scheduler/call-message"),
    case("scheduler/call-request"),
    case("scheduler/call-suppress"),
    case("scheduler/call-update-framework"),
];

const SCHEDULER_EVENTS: &[Case] = &[
    case("scheduler/event-subscribed"),
    case("scheduler/event-offers"),
    case("scheduler/event-rescind"),
    // TaskStatus's payload field is `data`; the example's `bytes` is
    // unknown and ignored, by Mesos as here.
    Case {
        file: "scheduler/event-update",
        ignored: &["update.status.bytes"],
    },
    case("scheduler/event-update-operation-status"),
    case("scheduler/event-message"),
    case("scheduler/event-failure"),
    case("scheduler/event-error"),
    case("scheduler/event-heartbeat"),
];

const EXECUTOR_CALLS: &[Case] = &[
    Case {
        file: "executor/call-subscribe",
        ignored: &["subscribe.unacknowledged_updates[0].framework_id"],
    },
    case("executor/call-update"),
    case("executor/call-message"),
];

const EXECUTOR_EVENTS: &[Case] = &[
    Case {
        file: "executor/event-subscribed",
        ignored: &["subscribed.agent_id"],
    },
    Case {
        file: "executor/event-launch",
        ignored: &["launch.framework_info"],
    },
    case("executor/event-launch-group"),
    case("executor/event-kill"),
    case("executor/event-acknowledged"),
    case("executor/event-message"),
    case("executor/event-shutdown"),
    case("executor/event-error"),
];

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run<M>(cases: &[Case])
where
    M: prost::Message + prost::Name + Default + PartialEq,
{
    let desc = descriptor::of::<M>().unwrap();
    for case in cases {
        let bytes = fixture(case.file);
        let doc: Json = serde_json::from_slice(&bytes).unwrap();
        let message: M = json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{}: does not parse: {e}", case.file));

        let written = json::to_value(&message).unwrap();
        let mut ignored = Vec::new();
        if let Err(e) = compare_message(&desc, &doc, &written, "", &mut ignored) {
            panic!("{}: {e}\noutput: {written:#}", case.file);
        }
        assert_eq!(ignored, case.ignored, "{}: unknown keys", case.file);

        // Binary round trip, through the checked decoder.
        let decoded: M = protobuf::decode(&message.encode_to_vec())
            .unwrap_or_else(|e| panic!("{}: protobuf: {e}", case.file));
        assert!(
            decoded == message,
            "{}: protobuf round trip differs",
            case.file
        );

        // What we write reads back and writes out identically. (Not to an
        // identical message: written defaults come back as set fields, in
        // Mesos as here.)
        let reread: M = json::from_value(&written)
            .unwrap_or_else(|e| panic!("{}: re-reading our own JSON: {e}", case.file));
        assert_eq!(
            json::to_value(&reread).unwrap(),
            written,
            "{}: not a fixed point",
            case.file
        );
    }
}

#[test]
fn scheduler_calls() {
    run::<scheduler::Call>(SCHEDULER_CALLS);
}

#[test]
fn scheduler_events() {
    run::<scheduler::Event>(SCHEDULER_EVENTS);
}

#[test]
fn executor_calls() {
    run::<executor::Call>(EXECUTOR_CALLS);
}

#[test]
fn executor_events() {
    run::<executor::Event>(EXECUTOR_EVENTS);
}

/// The docs' own text where it disagrees with the protos (see
/// tests/golden/README.md): each is refused, or read, exactly as Mesos's
/// parser would, and the error names the problem.
#[test]
fn doc_errata_behave_as_in_mesos() {
    fn error_of<M: prost::Message + prost::Name + Default>(file: &str) -> String {
        match json::from_slice::<M>(&fixture(file)) {
            Ok(_) => panic!("{file}: parsed, but Mesos refuses it"),
            Err(e) => e.to_string(),
        }
    }
    let placeholders = [
        "scheduler/call-revive.doc",
        "scheduler/call-suppress.doc",
        "scheduler/call-update-framework.doc",
    ];
    for file in placeholders {
        let e = error_of::<scheduler::Call>(file);
        assert!(e.starts_with("malformed JSON: "), "{file}: {e}");
    }
    assert_eq!(
        error_of::<scheduler::Call>("scheduler/call-accept.doc"),
        "mesos.v1.scheduler.Call: field 'accept.operations[0].launch.task_infos[0].limits[cpus]': \
         expected an object, found a string"
    );
    assert_eq!(
        error_of::<scheduler::Call>("scheduler/call-acknowledge-operation-status.doc"),
        "mesos.v1.scheduler.Call: field 'acknowledge_operation_status.operation_id': \
         expected an object, found a string"
    );
    assert_eq!(
        error_of::<scheduler::Event>("scheduler/event-offers.doc"),
        "mesos.v1.scheduler.Event: field 'offers': expected an object, found an array"
    );
    assert_eq!(
        error_of::<scheduler::Event>("scheduler/event-update-operation-status.doc"),
        "mesos.v1.scheduler.Event: field 'update_operation_status.status.uuid': \
         expected an object, found a string"
    );
    assert_eq!(
        error_of::<scheduler::Event>("scheduler/event-error.doc"),
        "mesos.v1.scheduler.Event: field 'message': expected an object, found a string"
    );
    assert_eq!(
        error_of::<executor::Event>("executor/event-subscribed.doc"),
        "mesos.v1.executor.Event: missing required field 'subscribed.agent_info.hostname'"
    );

    // A top-level "requests" is unknown to Call and so ignored, leaving a
    // REQUEST call with no request.
    let call: scheduler::Call = json::from_slice(&fixture("scheduler/call-request.doc")).unwrap();
    assert_eq!(call.r#type(), scheduler::call::Type::Request);
    assert!(call.request.is_none());
}

// ---------------------------------------------------------------------------
// The oracle.

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn compare_message(
    desc: &MessageDescriptor,
    expected: &Json,
    actual: &Json,
    path: &str,
    ignored: &mut Vec<String>,
) -> Result<(), String> {
    let (Json::Object(exp), Json::Object(act)) = (expected, actual) else {
        return Err(format!("{path}: expected an object on both sides"));
    };
    for (key, e) in exp {
        let at = join(path, key);
        let Some(field) = desc.get_field_by_name(key) else {
            ignored.push(at);
            continue;
        };
        let empty = e.is_null()
            || e.as_array().is_some_and(Vec::is_empty)
            || (field.is_map() && e.as_object().is_some_and(|o| o.is_empty()));
        match act.get(key) {
            None if empty => {}
            None => return Err(format!("{at}: missing from the output")),
            Some(a) => compare_field(&field, e, a, &at, ignored)?,
        }
    }
    for (key, a) in act {
        if exp.contains_key(key) {
            continue;
        }
        let at = join(path, key);
        let field = desc
            .get_field_by_name(key)
            .ok_or_else(|| format!("{at}: not a field, but written"))?;
        let proto = field.field_descriptor_proto();
        let deprecated = proto
            .options
            .as_ref()
            .and_then(|o| o.deprecated)
            .unwrap_or(false);
        let default = match (&proto.default_value, deprecated) {
            (Some(d), false) => d,
            _ => return Err(format!("{at}: written, but absent from the example")),
        };
        let default_json = match field.kind() {
            Kind::String | Kind::Enum(_) => Json::String(default.clone()),
            _ => serde_json::from_str(default).map_err(|e| format!("{at}: default {e}"))?,
        };
        compare_single(&field.kind(), &default_json, a, &at, ignored)
            .map_err(|e| format!("{e} (an added default)"))?;
    }
    Ok(())
}

fn compare_field(
    field: &FieldDescriptor,
    e: &Json,
    a: &Json,
    at: &str,
    ignored: &mut Vec<String>,
) -> Result<(), String> {
    if field.is_map() {
        let (Json::Object(eo), Json::Object(ao)) = (e, a) else {
            return Err(format!("{at}: a map must be an object"));
        };
        let Kind::Message(entry) = field.kind() else {
            return Err(format!("{at}: map without entry"));
        };
        let value_kind = entry.map_entry_value_field().kind();
        if eo.len() != ao.len() {
            return Err(format!("{at}: {} entries, expected {}", ao.len(), eo.len()));
        }
        for (k, ev) in eo {
            let av = ao.get(k).ok_or_else(|| format!("{at}[{k}]: missing"))?;
            compare_single(&value_kind, ev, av, &format!("{at}[{k}]"), ignored)?;
        }
        return Ok(());
    }
    if field.is_list() {
        let lone = [e.clone()];
        let exp = e.as_array().map_or(&lone[..], Vec::as_slice);
        let act = a
            .as_array()
            .ok_or_else(|| format!("{at}: expected an array"))?;
        if exp.len() != act.len() {
            return Err(format!(
                "{at}: {} elements, expected {}",
                act.len(),
                exp.len()
            ));
        }
        for (i, (ev, av)) in exp.iter().zip(act).enumerate() {
            compare_single(&field.kind(), ev, av, &format!("{at}[{i}]"), ignored)?;
        }
        return Ok(());
    }
    compare_single(&field.kind(), e, a, at, ignored)
}

fn compare_single(
    kind: &Kind,
    e: &Json,
    a: &Json,
    at: &str,
    ignored: &mut Vec<String>,
) -> Result<(), String> {
    let differ = || Err(format!("{at}: wrote {a}, expected {e}"));
    match kind {
        Kind::Message(desc) => compare_message(desc, e, a, at, ignored),
        Kind::Bytes => {
            let loose = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                    .with_decode_allow_trailing_bits(true),
            );
            let e = loose.decode(e.as_str().unwrap_or_default().trim_end_matches('='));
            // Our output must be canonical, padded base64.
            let a = base64::engine::general_purpose::STANDARD.decode(a.as_str().unwrap_or("!"));
            match (e, a) {
                (Ok(e), Ok(a)) if e == a => Ok(()),
                _ => differ(),
            }
        }
        Kind::Double | Kind::Float => {
            let number = |j: &Json| match j {
                Json::Number(n) => n.as_f64(),
                Json::String(s) if s == "Infinity" => Some(f64::INFINITY),
                Json::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
                Json::String(s) => s.parse().ok(),
                _ => None,
            };
            match (number(e), number(a)) {
                (Some(x), Some(y)) if x == y => Ok(()),
                _ => differ(),
            }
        }
        Kind::Enum(_) | Kind::String => {
            if e == a {
                Ok(())
            } else {
                differ()
            }
        }
        Kind::Bool => {
            let truth = |j: &Json| j.as_bool().or_else(|| j.as_str()?.parse().ok());
            if a.is_boolean() && truth(e) == truth(a) {
                Ok(())
            } else {
                differ()
            }
        }
        _ => {
            // Integers: the output is a JSON number, equal to the example's.
            let int = |j: &Json| match j {
                Json::Number(n) => n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)),
                Json::String(s) => s.parse().ok(),
                _ => None,
            };
            if a.is_number() && int(e).is_some() && int(e) == int(a) {
                Ok(())
            } else {
                differ()
            }
        }
    }
}
