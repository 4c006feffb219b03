//! The command tree: nouns (`topic`, `leader`, `broker`, `quorum`) with verbs
//! under them, and the global flags every verb accepts before or after it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Default controller quorum of a local cluster (see `deploy/`).
pub const DEFAULT_CONTROLLERS: &str = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";

#[derive(Debug, Parser)]
#[command(
    name = "batonctl",
    version,
    about = "Command line for the Baton controller quorum: topics, leaders, brokers, quorum"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Controller addresses (host:port), tried in order.
    #[arg(
        long,
        global = true,
        env = "BATON_CONTROLLERS",
        value_delimiter = ',',
        default_value = DEFAULT_CONTROLLERS,
        value_parser = parse_controller_addr,
    )]
    pub controllers: Vec<String>,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Deadline of each RPC attempt, in milliseconds.
    #[arg(
        long,
        global = true,
        default_value_t = 5000,
        value_parser = clap::value_parser!(u64).range(1..),
    )]
    pub timeout_ms: u64,

    /// PEM CA bundle to trust (mTLS). Same variables as the controller's.
    #[arg(long, global = true, env = "BATON_TLS__CA_FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM certificate naming spiffe://<trust-domain>/admin/<name> (or client/<name> for reads).
    #[arg(long, global = true, env = "BATON_TLS__CERT_FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, global = true, env = "BATON_TLS__KEY_FILE")]
    pub tls_key: Option<PathBuf>,
    /// SPIFFE trust domain of the cluster.
    #[arg(long, global = true, env = "BATON_TLS__TRUST_DOMAIN", default_value = "baton")]
    pub trust_domain: String,
    /// Talk to controllers without TLS (they must run with tls.plaintext = true).
    #[arg(long, global = true, env = "BATON_TLS__PLAINTEXT")]
    pub plaintext: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns with a header row.
    Table,
    /// One JSON document per answer (one per line for `leader watch`).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, delete, list and describe topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Ask who leads a partition, watch leadership, trigger elections.
    #[command(subcommand)]
    Leader(LeaderCommand),
    /// Inspect data-plane brokers.
    #[command(subcommand)]
    Broker(BrokerCommand),
    /// Inspect and change the controller quorum.
    #[command(subcommand)]
    Quorum(QuorumCommand),
    /// Move a partition's replicas to other brokers (add, catch up, drop).
    #[command(subcommand)]
    Reassign(ReassignCommand),
    /// Spread replicas evenly over the alive brokers (e.g. onto newly added
    /// ones), by count and rack, throttled, then move leadership to the
    /// preferred replicas.
    /// Make a development CA and certificates (docs/SECURITY.md). Needs no controller.
    #[command(subcommand)]
    Certs(CertsCommand),
    Rebalance {
        /// At most this many replica moves.
        #[arg(long, default_value_t = 1000)]
        max_moves: usize,
        /// Reassignments in flight at once.
        #[arg(long, default_value_t = 10)]
        max_in_flight: usize,
        #[arg(long, default_value_t = 3600)]
        wait_timeout_secs: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReassignCommand {
    /// Start (or replace) a reassignment: the target replicas are added,
    /// catch up and join the ISR, then the others are dropped; if the leader
    /// is dropped, leadership moves to an in-sync target replica.
    Start {
        topic: String,
        partition: i32,
        /// The replicas to end with, preferred leader first: e.g. 4,5,6.
        #[arg(long, value_delimiter = ',', required = true)]
        replicas: Vec<i32>,
        /// Wait until it completes, showing progress (on stderr).
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds (the reassignment goes on).
        #[arg(long, default_value_t = 600)]
        wait_timeout_secs: u64,
    },
    /// Cancel the reassignment of a partition: back to its original replicas.
    Cancel { topic: String, partition: i32 },
    /// List reassignments in flight with their progress.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions (>= 1). Range checks are the controller's,
        /// so every client gets the same typed error (INVALID_PARTITIONS).
        #[arg(long, allow_negative_numbers = true)]
        partitions: i32,
        /// Replicas per partition (>= 1, at most the number of live brokers;
        /// checked by the controller: INVALID_REPLICATION_FACTOR).
        #[arg(long, allow_negative_numbers = true)]
        replication_factor: i32,
        /// Allow electing a leader outside the ISR when no ISR member is alive (may lose data).
        #[arg(long)]
        unclean_leader_election: bool,
    },
    /// Delete a topic.
    Delete { name: String },
    /// List topics.
    List {
        /// Read through the raft leader instead of the answering controller's state.
        #[arg(long)]
        linearizable: bool,
    },
    /// Show a topic's partitions: leader, epochs, replicas, ISR.
    Describe {
        name: String,
        /// Read through the raft leader instead of the answering controller's state.
        #[arg(long)]
        linearizable: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Show the leader of one partition.
    Get {
        topic: String,
        #[arg(allow_negative_numbers = true)]
        partition: i32,
        /// Read through the raft leader instead of the answering controller's state.
        #[arg(long)]
        linearizable: bool,
    },
    /// Stream leadership changes until ctrl-c or the end of the stream.
    Watch {
        /// Resume after this metadata version (0: start with a full snapshot).
        #[arg(long, default_value_t = 0)]
        from_version: u64,
    },
    /// Trigger leader elections (all partitions when no topic is given).
    Elect {
        #[arg(long = "type", value_enum, default_value_t = ElectionKind::Preferred)]
        election_type: ElectionKind,
        /// Only this topic's partitions.
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition of --topic.
        #[arg(long, requires = "topic", value_parser = clap::value_parser!(i32).range(0..))]
        partition: Option<i32>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ElectionKind {
    /// Move leadership back to the first replica when it is in the ISR.
    Preferred,
    /// Elect outside the ISR when no ISR member is alive (may lose data).
    Unclean,
}

#[derive(Debug, Subcommand)]
pub enum BrokerCommand {
    /// List registered brokers with their state and epoch.
    List,
    /// Move leadership off a broker before maintenance: each partition it
    /// leads moves to another in-sync broker (a handoff: the new leader acts
    /// only once the old one stopped). It stays in its ISRs and never leads
    /// until undrained, also across restarts. One broker at a time unless --force.
    Drain {
        broker_id: i32,
        #[arg(long)]
        force: bool,
    },
    /// Let a drained broker lead again (leaderless partitions at once; the
    /// rest through `leader elect --type preferred`).
    Undrain { broker_id: i32 },
    /// Take a broker out for good: drain it, then move every replica it
    /// holds to other alive brokers (rack-aware, fewest replicas first),
    /// throttled, with progress. Run again to resume. Stop the broker after.
    Decommission {
        broker_id: i32,
        /// Reassignments in flight at once.
        #[arg(long, default_value_t = 10)]
        max_in_flight: usize,
        /// Give up waiting after this many seconds (moves in flight go on).
        #[arg(long, default_value_t = 3600)]
        wait_timeout_secs: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuorumCommand {
    /// Show the raft leader, term, commit index and members.
    Status,
    /// Add a controller: start it first with --join (and --peers naming the
    /// current members and itself); it joins as a learner, catches up from a
    /// snapshot, then becomes a voter. Run again to resume an interrupted add.
    Add {
        /// Raft id of the new controller (>= 1).
        id: u64,
        /// host:port where the other controllers reach its gRPC listener.
        #[arg(value_parser = parse_controller_addr)]
        address: String,
        /// Stop once it is a learner (receives the log, does not vote).
        #[arg(long)]
        learner_only: bool,
        /// How long it may take to catch up before promotion (ms).
        #[arg(long, default_value_t = 60_000)]
        catch_up_timeout_ms: u32,
    },
    /// Remove a controller (voter or learner). Removing the leader hands
    /// leadership to another voter first. Refused when the remaining voters
    /// have no recently active majority, unless --force.
    Remove {
        id: u64,
        #[arg(long)]
        force: bool,
    },
}

/// Accepts `host:port` (an `http://` prefix is tolerated and dropped).
fn parse_controller_addr(raw: &str) -> Result<String, String> {
    let addr = raw.trim();
    let addr = addr.strip_prefix("http://").unwrap_or(addr);
    let addr = addr.trim_end_matches('/');
    if addr.is_empty() {
        return Err("empty controller address".to_owned());
    }
    if addr.chars().any(char::is_whitespace) || addr.contains('/') {
        return Err(format!("invalid controller address {raw:?} (want host:port)"));
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(addr.to_owned()),
        _ => Err(format!("invalid controller address {raw:?} (want host:port)")),
    }
}

#[cfg(test)]
mod tests;

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// A new CA and one certificate per controller, broker, admin and client,
    /// written to DIR as ca.pem, ca.key, <kind>-<name>.pem and <kind>-<name>.key.
    Init {
        /// Output folder (created; existing files are not overwritten).
        #[arg(long)]
        dir: PathBuf,
        /// Controller ids (raft ids).
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        controller_ids: Vec<u64>,
        /// Broker ids.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        broker_ids: Vec<i32>,
        /// Admin names (may call every RPC).
        #[arg(long, value_delimiter = ',', default_value = "admin")]
        admins: Vec<String>,
        /// Read-only client names.
        #[arg(long, value_delimiter = ',')]
        clients: Vec<String>,
        /// DNS names and IP addresses added as SANs (for tools that check host names).
        #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
        hosts: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// One more certificate signed by the CA in DIR (ca.pem, ca.key): a new
    /// broker, or a rotated certificate for an existing identity.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// The identity: controller/<id>, broker/<id>, admin/<name> or client/<name>.
        #[arg(long)]
        identity: String,
        /// Output file stem (default: <kind>-<name> in DIR); writes <stem>.pem and <stem>.key.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Replace existing files (rotation).
        #[arg(long)]
        force: bool,
    },
}
