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
