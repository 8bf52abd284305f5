//! Binary protobuf: round trips, and typed errors for bad input.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use prost::Message as _;
use tepui_proto::protobuf::{self, ProtobufError};
use tepui_proto::v1::{self, executor, scheduler};
use tepui_proto::{internal, json};

fn subscribe() -> scheduler::Call {
    scheduler::Call {
        r#type: Some(scheduler::call::Type::Subscribe as i32),
        subscribe: Some(scheduler::call::Subscribe {
            framework_info: v1::FrameworkInfo {
                user: "root".into(),
                name: "tepui-test".into(),
                checkpoint: Some(true),
                roles: vec!["web".into()],
                capabilities: vec![v1::framework_info::Capability {
                    r#type: Some(v1::framework_info::capability::Type::MultiRole as i32),
                }],
                ..Default::default()
            },
            suppressed_roles: vec![],
            offer_constraints: None,
        }),
        ..Default::default()
    }
}

#[test]
fn round_trips_through_protobuf_and_json_alike() {
    let call = subscribe();
    let bytes = call.encode_to_vec();
    assert_eq!(protobuf::decode::<scheduler::Call>(&bytes).unwrap(), call);
    let back: scheduler::Call = json::from_slice(&json::to_vec(&call).unwrap()).unwrap();
    assert_eq!(
        back.subscribe,
        call.subscribe.map(|mut s| {
            // JSON materialises declared defaults, as Mesos does.
            s.framework_info.failover_timeout = Some(0.0);
            s
        })
    );
}

#[test]
fn internal_envelopes_round_trip() {
    let message = internal::MasterToAgent {
        message: Some(internal::master_to_agent::Message::KillTask(
            internal::KillTask {
                framework_id: v1::FrameworkId { value: "f".into() },
                task_id: v1::TaskId { value: "t".into() },
                kill_policy: None,
            },
        )),
    };
    let back: internal::MasterToAgent = protobuf::decode(&message.encode_to_vec()).unwrap();
    assert_eq!(back, message);
}

#[test]
fn refuses_a_missing_required_field_naming_it() {
    // Built by hand: prost always encodes required fields, a peer need not.
    let executor_id = [0x0a, 0x03, 0x0a, 0x01, b'e'];
    let framework_id = [0x12, 0x03, 0x0a, 0x01, b'f'];
    let type_update = [0x18, 0x02];
    // update { status { state: TASK_RUNNING } }, without status.task_id.
    let update = [0x2a, 0x04, 0x0a, 0x02, 0x10, 0x01];

    let no_framework = [&executor_id[..], &type_update].concat();
    let e = protobuf::decode::<executor::Call>(&no_framework).unwrap_err();
    assert!(matches!(e, ProtobufError::MissingRequired(_)));
    assert_eq!(
        e.to_string(),
        "mesos.v1.executor.Call: missing required field 'framework_id'"
    );

    let no_task_id = [&executor_id[..], &framework_id, &type_update, &update].concat();
    let e = protobuf::decode::<executor::Call>(&no_task_id).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mesos.v1.executor.Call: missing required field 'update.status.task_id'"
    );

    let mut complete = no_task_id.clone();
    complete.truncate(complete.len() - update.len());
    let call = protobuf::decode::<executor::Call>(&complete).unwrap();
    assert_eq!(call.framework_id.value, "f");
}

#[test]
fn refuses_malformed_bytes_with_a_typed_error() {
    for bytes in [&b"\xff\xff\xff"[..], b"\x0a\x05ab", b"\x08"] {
        let e = protobuf::decode::<scheduler::Call>(bytes).unwrap_err();
        assert!(matches!(e, ProtobufError::Malformed { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("malformed protobuf mesos.v1.scheduler.Call: "),
            "{e}"
        );
    }
}

#[test]
fn names_a_missing_field_in_a_repeated_element_and_a_map_value() {
    use tepui_proto::v1::{Resource, TaskInfo, value};
    let task = |resources: Vec<Resource>| TaskInfo {
        name: "t".into(),
        task_id: tepui_proto::v1::TaskId { value: "t".into() },
        agent_id: tepui_proto::v1::AgentId { value: "a".into() },
        resources,
        ..Default::default()
    };
    let cpus = Resource {
        name: "cpus".into(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: 1.0 }),
        ..Default::default()
    };
    let mut bytes = task(vec![cpus.clone(), cpus.clone()]).encode_to_vec();
    assert!(protobuf::decode::<TaskInfo>(&bytes).is_ok());

    // Resource.name is field 1: a second resource without it, appended.
    let nameless = [0x10, 0x00]; // type = SCALAR
    bytes.extend([0x22, nameless.len() as u8]);
    bytes.extend(nameless);
    let e = protobuf::decode::<TaskInfo>(&bytes).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mesos.v1.TaskInfo: missing required field 'resources[2].name'"
    );

    // limits (field 15, map<string, Value.Scalar>) with an entry whose
    // value lacks its required `value`.
    let mut bytes = task(vec![cpus]).encode_to_vec();
    let entry = [0x0a, 0x03, b'm', b'e', b'm', 0x12, 0x00];
    bytes.extend([0x7a, entry.len() as u8]);
    bytes.extend(entry);
    let e = protobuf::decode::<TaskInfo>(&bytes).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mesos.v1.TaskInfo: missing required field 'limits[mem].value'"
    );
}

#[test]
fn reads_a_singular_message_split_over_occurrences_as_one() {
    // executor::Call with framework_id sent twice, its `value` only in the
    // second: protobuf merges them, so nothing required is missing.
    let executor_id = [0x0a, 0x03, 0x0a, 0x01, b'e'];
    let empty_framework = [0x12, 0x00];
    let framework_id = [0x12, 0x03, 0x0a, 0x01, b'f'];
    let type_message = [0x18, 0x03];
    let message = [0x32, 0x02, 0x12, 0x00]; // message { data: "" }
    let bytes = [
        &executor_id[..],
        &empty_framework,
        &framework_id,
        &type_message,
        &message,
    ]
    .concat();
    let call = protobuf::decode::<executor::Call>(&bytes).unwrap();
    assert_eq!(call.framework_id.value, "f");

    let only_empty = [&executor_id[..], &empty_framework, &type_message, &message].concat();
    let e = protobuf::decode::<executor::Call>(&only_empty).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mesos.v1.executor.Call: missing required field 'framework_id.value'"
    );
}
