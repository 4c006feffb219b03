use super::*;
use tonic::metadata::{MetadataMap, MetadataValue};

fn status(code: Code, message: &str, meta: &[(&'static str, &str)]) -> Status {
    let mut map = MetadataMap::new();
    for (k, v) in meta {
        let value: MetadataValue<_> = match v.parse() {
            Ok(v) => v,
            Err(e) => panic!("bad metadata value {v:?}: {e}"),
        };
        map.insert(*k, value);
    }
    Status::with_metadata(code, message, map)
}

fn addrs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn leader_hint_parses_id_and_address() {
    assert_eq!(parse_leader_hint("2=127.0.0.1:7102"), Some(LeaderHint { id: 2, addr: "127.0.0.1:7102".to_owned() }));
    assert_eq!(
        parse_leader_hint(" 3=ctrl-3.baton.svc:7101 "),
        Some(LeaderHint { id: 3, addr: "ctrl-3.baton.svc:7101".to_owned() })
    );
}

#[test]
fn leader_hint_garbage_is_none() {
    for raw in [
        "",
        "garbage",
        "2",
        "2=",
        "=127.0.0.1:7102",
        "x=127.0.0.1:7102",
        "-1=127.0.0.1:7102",
        "2=127.0.0.1",
        "2=127.0.0.1:notaport",
        "2=127.0.0.1:99999",
        "2=:7102",
        "2=http://127.0.0.1:7102",
        "2=a b:1",
    ] {
        assert_eq!(parse_leader_hint(raw), None, "{raw:?}");
    }
}

#[test]
fn unavailable_with_hint_goes_to_the_hinted_leader() {
    let s = status(
        Code::Unavailable,
        "not the leader",
        &[(LEADER_METADATA_KEY, "2=127.0.0.1:7102"), (ERROR_METADATA_KEY, "NOT_CONTROLLER_LEADER")],
    );
    assert_eq!(
        classify(&s),
        Disposition::TryNext { hint: Some(LeaderHint { id: 2, addr: "127.0.0.1:7102".to_owned() }) }
    );
}

#[test]
fn unavailable_without_or_with_bad_hint_tries_next() {
    let s = status(Code::Unavailable, "no leader", &[]);
    assert_eq!(classify(&s), Disposition::TryNext { hint: None });
    let s = status(Code::Unavailable, "no leader", &[(LEADER_METADATA_KEY, "junk")]);
    assert_eq!(classify(&s), Disposition::TryNext { hint: None });
    assert_eq!(classify(&Status::deadline_exceeded("slow")), Disposition::TryNext { hint: None });
}

#[test]
fn application_errors_are_final() {
    for code in [
        Code::NotFound,
        Code::InvalidArgument,
        Code::AlreadyExists,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::Unimplemented,
        Code::Unknown,
        Code::Internal,
    ] {
        let s = status(code, "no", &[(LEADER_METADATA_KEY, "2=127.0.0.1:7102")]);
        assert_eq!(classify(&s), Disposition::Final, "{code:?}");
    }
    // A typed not-leader answer is followed whatever its gRPC code.
    let s = status(
        Code::FailedPrecondition,
        "no",
        &[(ERROR_METADATA_KEY, "NOT_CONTROLLER_LEADER"), (LEADER_METADATA_KEY, "1=h:1")],
    );
    assert!(matches!(classify(&s), Disposition::TryNext { hint: Some(_) }));
}

#[test]
fn plan_walks_controllers_in_order() {
    let mut plan = AttemptPlan::new(&addrs(&["a:1", "b:2", "c:3"]), 0);
    let mut seen = Vec::new();
    while let Some(addr) = plan.next_addr() {
        plan.on_unavailable(&addr, None);
        seen.push(addr);
    }
    assert_eq!(seen, ["a:1", "b:2", "c:3"]);
    assert_eq!(plan.tried(), ["a:1", "b:2", "c:3"]);
}

#[test]
fn plan_starts_at_an_offset_and_drops_duplicates() {
    let mut plan = AttemptPlan::new(&addrs(&["a:1", "b:2", "a:1", "c:3"]), 1);
    let mut seen = Vec::new();
    while let Some(addr) = plan.next_addr() {
        seen.push(addr);
    }
    assert_eq!(seen, ["b:2", "a:1", "c:3"]);
}

#[test]
fn plan_follows_a_hint_once_then_the_rest() {
    let mut plan = AttemptPlan::new(&addrs(&["a:1", "b:2", "c:3"]), 0);
    let hint = |addr: &str| Some(LeaderHint { id: 9, addr: addr.to_owned() });
    let first = plan.next_addr();
    assert_eq!(first.as_deref(), Some("a:1"));
    plan.on_unavailable("a:1", hint("c:3"));
    assert_eq!(plan.next_addr().as_deref(), Some("c:3"));
    // A second hint is ignored: the hop is taken once per call.
    plan.on_unavailable("c:3", hint("z:9"));
    assert_eq!(plan.next_addr().as_deref(), Some("b:2"));
    assert_eq!(plan.next_addr(), None);
    assert_eq!(plan.tried(), ["a:1", "c:3", "b:2"]);
}

#[test]
fn plan_hint_outside_the_list_is_bounded() {
    let mut plan = AttemptPlan::new(&addrs(&["a:1", "b:2"]), 0);
    let mut seen = Vec::new();
    while let Some(addr) = plan.next_addr() {
        plan.on_unavailable(&addr, Some(LeaderHint { id: 3, addr: "x:3".to_owned() }));
        seen.push(addr);
    }
    assert_eq!(seen, ["a:1", "x:3", "b:2"]);
}

#[test]
fn plan_ignores_a_hint_naming_the_refusing_controller() {
    let mut plan = AttemptPlan::new(&addrs(&["a:1", "b:2"]), 0);
    assert_eq!(plan.next_addr().as_deref(), Some("a:1"));
    plan.on_unavailable("a:1", Some(LeaderHint { id: 1, addr: "a:1".to_owned() }));
    assert_eq!(plan.next_addr().as_deref(), Some("b:2"));
    assert_eq!(plan.next_addr(), None);
}

#[test]
fn typed_errors_are_worded_with_their_code() {
    let s = status(Code::NotFound, "no such topic", &[(ERROR_METADATA_KEY, "TOPIC_NOT_FOUND")]);
    let e = ClientError::Rpc(RpcError::from_status(&s)).about(Subject::topic("x"));
    assert_eq!(e.to_string(), "topic \"x\" not found (TOPIC_NOT_FOUND)");

    let s = status(Code::AlreadyExists, "dup", &[(ERROR_METADATA_KEY, "TOPIC_ALREADY_EXISTS")]);
    let e = ClientError::Rpc(RpcError::from_status(&s)).about(Subject::topic("x"));
    assert_eq!(e.to_string(), "topic \"x\" already exists (TOPIC_ALREADY_EXISTS)");

    let s = status(Code::NotFound, "out of range", &[(ERROR_METADATA_KEY, "PARTITION_NOT_FOUND")]);
    let e = ClientError::Rpc(RpcError::from_status(&s)).about(Subject::partition("x", 7));
    assert_eq!(e.to_string(), "partition 7 of topic \"x\" not found (PARTITION_NOT_FOUND)");

    // Codes without a dedicated wording keep the server's message.
    let s = status(
        Code::FailedPrecondition,
        "replication factor 3 > 2 live brokers",
        &[(ERROR_METADATA_KEY, "INVALID_REPLICATION_FACTOR")],
    );
    let e = ClientError::Rpc(RpcError::from_status(&s)).about(Subject::topic("x"));
    assert_eq!(e.to_string(), "replication factor 3 > 2 live brokers (INVALID_REPLICATION_FACTOR)");

    // The full enum name is tolerated too.
    let s = status(Code::NotFound, "m", &[(ERROR_METADATA_KEY, "ERROR_CODE_TOPIC_NOT_FOUND")]);
    assert_eq!(RpcError::from_status(&s).error_code.as_deref(), Some("TOPIC_NOT_FOUND"));

    // Untyped statuses show the gRPC code.
    let e = ClientError::Rpc(RpcError::from_status(&Status::internal("boom")));
    assert_eq!(e.to_string(), "boom (gRPC INTERNAL)");
    let e = ClientError::Rpc(RpcError::from_status(&Status::permission_denied("")));
    assert_eq!(
        e.to_string(),
        "The caller does not have permission to execute the specified operation (gRPC PERMISSION_DENIED)"
    );
}

#[test]
fn no_controller_error_lists_what_was_tried() {
    let e = ClientError::NoController {
        tried: addrs(&["a:1", "b:2", "c:3"]),
        last_error: "c:3: connect failed: Connection refused (os error 111)".to_owned(),
    };
    assert_eq!(
        e.to_string(),
        "no controller reachable (tried a:1, b:2, c:3): c:3: connect failed: Connection refused (os error 111)"
    );
}
