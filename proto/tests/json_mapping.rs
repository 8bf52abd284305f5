//! Each rule of Mesos's JSON mapping, one test per rule.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use tepui_proto::json::{self, JsonError};
use tepui_proto::v1::{self, scheduler};

fn write<M: prost::Message + prost::Name>(m: &M) -> serde_json::Value {
    json::to_value(m).unwrap()
}

fn read<M: prost::Message + prost::Name + Default>(v: serde_json::Value) -> Result<M, JsonError> {
    json::from_slice(v.to_string().as_bytes())
}

fn framework(user: &str, name: &str) -> v1::FrameworkInfo {
    v1::FrameworkInfo {
        user: user.into(),
        name: name.into(),
        ..Default::default()
    }
}

#[test]
fn writes_declared_defaults_but_not_deprecated_ones() {
    // failover_timeout and checkpoint declare defaults; role's is deprecated.
    assert_eq!(
        write(&framework("u", "n")),
        json!({"user": "u", "name": "n", "failover_timeout": 0.0, "checkpoint": false})
    );
    // A set field is written even when it equals its default.
    let mut f = framework("u", "n");
    #[allow(deprecated)]
    {
        f.role = Some("*".into());
    }
    assert_eq!(write(&f)["role"], "*");
}

#[test]
fn skips_empty_repeated_and_unset_optional_fields() {
    let task = v1::TaskId { value: "t".into() };
    assert_eq!(write(&task), json!({"value": "t"}));
    let filters = v1::Filters::default();
    assert_eq!(write(&filters), json!({"refuse_seconds": 5.0}));
    let labels = v1::Labels::default();
    assert_eq!(write(&labels), json!({}));
}

#[test]
fn writes_enums_by_name_and_64_bit_integers_as_numbers() {
    let status = v1::TaskStatus {
        task_id: v1::TaskId { value: "t".into() },
        state: v1::TaskState::TaskRunning as i32,
        source: Some(v1::task_status::Source::Executor as i32),
        reason: Some(v1::task_status::Reason::ContainerLimitationMemory as i32),
        unreachable_time: Some(v1::TimeInfo {
            nanoseconds: 1_700_000_000_123_456_789,
        }),
        ..Default::default()
    };
    let j = write(&status);
    assert_eq!(j["state"], "TASK_RUNNING");
    assert_eq!(j["source"], "SOURCE_EXECUTOR");
    assert_eq!(j["reason"], "REASON_CONTAINER_LIMITATION_MEMORY");
    assert_eq!(
        j["unreachable_time"]["nanoseconds"],
        json!(1_700_000_000_123_456_789_i64)
    );
    assert!(j["unreachable_time"]["nanoseconds"].is_i64());

    let range = v1::value::Range {
        begin: 31000,
        end: u64::MAX,
    };
    assert_eq!(write(&range), json!({"begin": 31000, "end": u64::MAX}));
}

#[test]
fn writes_bytes_as_padded_base64_and_reads_it_leniently() {
    let ack = scheduler::call::Acknowledge {
        agent_id: v1::AgentId { value: "a".into() },
        task_id: v1::TaskId { value: "t".into() },
        uuid: vec![0xfb, 0xff, 0x00, 0x01],
    };
    let j = write(&ack);
    assert_eq!(j["uuid"], "+/8AAQ==");
    // Unpadded, and with whitespace, as stout accepts.
    for text in ["+/8AAQ==", "+/8AAQ", "+/8A\nAQ="] {
        let mut k = j.clone();
        k["uuid"] = json!(text);
        let back: scheduler::call::Acknowledge = read(k).unwrap();
        assert_eq!(back.uuid, ack.uuid, "{text}");
    }
    let mut bad = j.clone();
    bad["uuid"] = json!("not*base64");
    let e = read::<scheduler::call::Acknowledge>(bad).unwrap_err();
    assert!(
        matches!(&e, JsonError::Value { path, .. } if path == "uuid"),
        "{e}"
    );
}

#[test]
fn writes_maps_as_objects_and_infinity_as_a_string() {
    let mut task = v1::TaskInfo {
        name: "n".into(),
        task_id: v1::TaskId { value: "t".into() },
        agent_id: v1::AgentId { value: "a".into() },
        ..Default::default()
    };
    task.limits.insert(
        "cpus".into(),
        v1::value::Scalar {
            value: f64::INFINITY,
        },
    );
    task.limits
        .insert("mem".into(), v1::value::Scalar { value: 512.0 });
    let j = write(&task);
    assert_eq!(
        j["limits"],
        json!({"cpus": {"value": "Infinity"}, "mem": {"value": 512.0}})
    );
    let back: v1::TaskInfo = json::from_value(&j).unwrap();
    assert_eq!(back.limits, task.limits);
}

#[test]
fn reads_numbers_and_bools_from_strings_as_mesos_does() {
    let f: v1::FrameworkInfo = read(json!({
        "user": "u", "name": "n",
        "failover_timeout": "3600.5", "checkpoint": "true"
    }))
    .unwrap();
    assert_eq!(f.failover_timeout, Some(3600.5));
    assert_eq!(f.checkpoint, Some(true));

    let t: v1::TimeInfo = read(json!({"nanoseconds": "-42"})).unwrap();
    assert_eq!(t.nanoseconds, -42);
    // An integral float is an integer.
    let t: v1::TimeInfo = read(json!({"nanoseconds": 15.0})).unwrap();
    assert_eq!(t.nanoseconds, 15);
}

#[test]
fn refuses_integers_that_do_not_fit() {
    for (value, needle) in [
        (json!(1.5), "1.5 is not an integer"),
        (json!(4_294_967_296_u64), "out of range for uint32"),
        (json!(-1), "out of range for uint32"),
        (json!("twelve"), "'twelve' is not a number"),
    ] {
        let e = read::<v1::Port>(json!({ "number": value })).unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(&e, JsonError::Value { path, .. } if path == "number")
                && text.contains(needle),
            "{text}"
        );
    }
}

#[test]
fn ignores_unknown_fields_and_nulls() {
    let f: v1::FrameworkInfo = read(json!({
        "user": "u", "name": "n", "no_such_field": {"x": [1, 2]},
        "principal": null, "roles": [null, "r"]
    }))
    .unwrap();
    assert_eq!(f.principal, None);
    assert_eq!(f.roles, vec!["r".to_owned()]);
}

#[test]
fn reads_a_lone_value_as_one_element_of_a_repeated_field() {
    let f: v1::FrameworkInfo = read(json!({"user": "u", "name": "n", "roles": "only"})).unwrap();
    assert_eq!(f.roles, vec!["only".to_owned()]);
}

#[test]
fn drops_an_unknown_enum_name_in_an_optional_field_but_not_a_required_one() {
    let s: v1::TaskStatus = read(json!({
        "task_id": {"value": "t"}, "state": "TASK_RUNNING", "source": "SOURCE_MARS"
    }))
    .unwrap();
    assert_eq!(s.source, None);

    let e = read::<v1::TaskStatus>(json!({"task_id": {"value": "t"}, "state": "TASK_DANCING"}))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "mesos.v1.TaskStatus: field 'state': 'TASK_DANCING' is not a value of mesos.v1.TaskState"
    );
}

#[test]
fn names_the_missing_required_field() {
    let e = read::<scheduler::Call>(json!({
        "type": "ACCEPT",
        "accept": {"offer_ids": [{"value": "o"}], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": [
                {"name": "n", "task_id": {"value": "t"}}
            ]}}
        ]}
    }))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "mesos.v1.scheduler.Call: missing required field \
         'accept.operations[0].launch.task_infos[0].agent_id'"
    );
}

#[test]
fn names_a_value_of_the_wrong_type() {
    let e = read::<scheduler::Call>(json!({"type": "SUBSCRIBE", "subscribe": {
        "framework_info": {"user": 7, "name": "n"}
    }}))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "mesos.v1.scheduler.Call: field 'subscribe.framework_info.user': \
         expected a string, found a number"
    );
    let e = read::<scheduler::Call>(json!(["not", "an", "object"])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mesos.v1.scheduler.Call: field '(top level)': expected an object, found an array"
    );
}

#[test]
fn reports_malformed_json_with_its_position() {
    let e = json::from_slice::<scheduler::Call>(b"{\"type\": \"SUBSCRIBE\",}").unwrap_err();
    assert!(matches!(e, JsonError::Syntax(_)));
    assert!(e.to_string().contains("line 1 column"), "{e}");
    assert!(matches!(
        json::from_slice::<scheduler::Call>(b""),
        Err(JsonError::Syntax(_))
    ));
}

#[test]
fn a_oneof_keeps_the_last_member_given() {
    let c: scheduler::AttributeConstraint = read(json!({
        "selector": {"attribute_name": "rack"},
        "predicate": {"text_equals": {"value": "a"}}
    }))
    .unwrap();
    let j = write(&c);
    assert_eq!(j["selector"], json!({"attribute_name": "rack"}));
    assert_eq!(j["predicate"], json!({"text_equals": {"value": "a"}}));
}
