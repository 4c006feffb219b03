use super::*;

fn parse(args: &[&str]) -> Cli {
    let argv = std::iter::once("batonctl").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => panic!("{args:?} should parse: {e}"),
    }
}

fn parse_err(args: &[&str]) -> clap::Error {
    let argv = std::iter::once("batonctl").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => panic!("{args:?} should not parse, got {cli:?}"),
        Err(e) => e,
    }
}

#[test]
fn global_defaults() {
    let cli = parse(&["topic", "list"]);
    if std::env::var_os("BATON_CONTROLLERS").is_none() {
        assert_eq!(cli.global.controllers, ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"]);
    }
    assert_eq!(cli.global.output, OutputFormat::Table);
    assert_eq!(cli.global.timeout_ms, 5000);
}

#[test]
fn global_flags_before_or_after_the_subcommand() {
    let before =
        parse(&["--controllers", "a:1,b:2", "--output", "json", "--timeout-ms", "250", "topic", "describe", "t"]);
    let after =
        parse(&["topic", "describe", "t", "--controllers", "a:1,b:2", "--output", "json", "--timeout-ms", "250"]);
    for cli in [before, after] {
        assert_eq!(cli.global.controllers, ["a:1", "b:2"]);
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.timeout_ms, 250);
    }
}

#[test]
fn controller_addresses_are_validated_and_normalised() {
    let cli = parse(&["--controllers", "http://h:7101, 10.0.0.2:7102", "quorum", "status"]);
    assert_eq!(cli.global.controllers, ["h:7101", "10.0.0.2:7102"]);
    parse_err(&["--controllers", "", "quorum", "status"]);
    parse_err(&["--controllers", "nohostport", "quorum", "status"]);
    parse_err(&["--controllers", "h:notaport", "quorum", "status"]);
    parse_err(&["--output", "yaml", "quorum", "status"]);
    parse_err(&["--timeout-ms", "0", "quorum", "status"]);
}

#[test]
fn topic_create() {
    let cli = parse(&["topic", "create", "orders", "--partitions", "6", "--replication-factor", "3"]);
    match cli.command {
        Command::Topic(TopicCommand::Create { name, partitions, replication_factor, unclean_leader_election }) => {
            assert_eq!(name, "orders");
            assert_eq!(partitions, 6);
            assert_eq!(replication_factor, 3);
            assert!(!unclean_leader_election);
        }
        other => panic!("unexpected {other:?}"),
    }
    let cli = parse(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        "1",
        "--replication-factor",
        "1",
        "--unclean-leader-election",
    ]);
    assert!(matches!(cli.command, Command::Topic(TopicCommand::Create { unclean_leader_election: true, .. })));
    parse_err(&["topic", "create", "orders", "--partitions", "3"]);
    // Out-of-range counts reach the controller, which answers with a typed
    // error (INVALID_PARTITIONS), the same for every client.
    let cli = parse(&["topic", "create", "orders", "--partitions", "-3", "--replication-factor", "0"]);
    assert!(matches!(cli.command, Command::Topic(TopicCommand::Create { partitions: -3, replication_factor: 0, .. })));
    parse_err(&["topic", "create", "--partitions", "1", "--replication-factor", "1"]);
}

#[test]
fn topic_delete_list_describe() {
    assert!(matches!(
        parse(&["topic", "delete", "t"]).command,
        Command::Topic(TopicCommand::Delete { name }) if name == "t"
    ));
    assert!(matches!(parse(&["topic", "list"]).command, Command::Topic(TopicCommand::List { linearizable: false })));
    assert!(matches!(
        parse(&["topic", "describe", "t"]).command,
        Command::Topic(TopicCommand::Describe { name, linearizable: false }) if name == "t"
    ));
    assert!(matches!(
        parse(&["topic", "describe", "t", "--linearizable"]).command,
        Command::Topic(TopicCommand::Describe { linearizable: true, .. })
    ));
    parse_err(&["topic", "describe"]);
    parse_err(&["topic", "delete"]);
}

#[test]
fn leader_get() {
    match parse(&["leader", "get", "t", "3", "--linearizable", "--output", "json"]).command {
        Command::Leader(LeaderCommand::Get { topic, partition, linearizable }) => {
            assert_eq!((topic.as_str(), partition, linearizable), ("t", 3, true));
        }
        other => panic!("unexpected {other:?}"),
    }
    parse_err(&["leader", "get", "t"]);
    parse_err(&["leader", "get", "t", "x"]);
}

#[test]
fn leader_watch() {
    assert!(matches!(parse(&["leader", "watch"]).command, Command::Leader(LeaderCommand::Watch { from_version: 0 })));
    assert!(matches!(
        parse(&["leader", "watch", "--from-version", "42"]).command,
        Command::Leader(LeaderCommand::Watch { from_version: 42 })
    ));
}

#[test]
fn leader_elect() {
    match parse(&["leader", "elect"]).command {
        Command::Leader(LeaderCommand::Elect { election_type, topic, partition }) => {
            assert_eq!(election_type, ElectionKind::Preferred);
            assert_eq!(topic, None);
            assert_eq!(partition, None);
        }
        other => panic!("unexpected {other:?}"),
    }
    match parse(&["leader", "elect", "--type", "unclean", "--topic", "t", "--partition", "2"]).command {
        Command::Leader(LeaderCommand::Elect { election_type, topic, partition }) => {
            assert_eq!(election_type, ElectionKind::Unclean);
            assert_eq!(topic.as_deref(), Some("t"));
            assert_eq!(partition, Some(2));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        parse(&["leader", "elect", "--type", "preferred", "--topic", "t"]).command,
        Command::Leader(LeaderCommand::Elect { partition: None, .. })
    ));
    // A partition means nothing without its topic.
    parse_err(&["leader", "elect", "--partition", "1"]);
    parse_err(&["leader", "elect", "--type", "random"]);
}

#[test]
fn broker_and_quorum() {
    assert!(matches!(parse(&["broker", "list", "--output", "json"]).command, Command::Broker(BrokerCommand::List)));
    assert!(matches!(parse(&["quorum", "status", "--output", "json"]).command, Command::Quorum(QuorumCommand::Status)));
}

#[test]
fn bad_arguments_are_usage_errors() {
    // clap exits with status 2 for these.
    assert_eq!(parse_err(&["topic"]).exit_code(), 2);
    assert_eq!(parse_err(&["frobnicate"]).exit_code(), 2);
    assert_eq!(parse_err(&["topic", "list", "--bogus"]).exit_code(), 2);
}

#[test]
fn clap_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
