//! Controller configuration: a TOML file, overridden by `BATON_*` environment
//! variables, overridden by command-line flags (see `deploy/config/controller.toml`
//! for every option with its default).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde::Deserialize;

/// Everything a controller needs to run. Built by [`ControllerConfig::load`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// Raft id of this controller (>= 1). Outside `peers`: it joins a running quorum.
    pub id: u64,
    /// Folder for the raft log, hard state and snapshots.
    pub data_dir: PathBuf,
    /// Address the one gRPC port listens on (all services).
    pub listen: SocketAddr,
    /// Every voter of the initial quorum, this one included: `1=host:port,2=host:port,...`.
    /// A controller that joins later lists the current members and itself.
    pub peers: String,
    /// Start as a new member of an existing quorum (added with `batonctl
    /// quorum add`) instead of bootstrapping one: an empty data dir then waits
    /// for a snapshot from the leader instead of making `peers` the voters.
    /// Ignored once the data dir holds a log.
    #[serde(default)]
    pub join: bool,
    /// `text` or `json`.
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// Where to serve Prometheus `GET /metrics` (HTTP); none when absent.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    #[serde(default)]
    pub raft: RaftConfig,
    #[serde(default)]
    pub liveness: LivenessConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub balance: BalanceConfig,
    /// mTLS on every link and who may call what (docs/SECURITY.md).
    #[serde(default)]
    pub tls: baton_security::TlsConfig,
    #[serde(default)]
    pub auth: AuthConfig,
}

/// Who may call what once identities are proven by mTLS (ignored with
/// `tls.plaintext = true`, where nothing is proven).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Read RPCs (list/describe topics, leaders, brokers, quorum, watches,
    /// health) are open to any identity of the trust domain; false limits
    /// them to admins and controllers.
    pub open_reads: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { open_reads: true }
    }
}

/// Automatic leader rebalance: the active controller gives partitions back
/// to their preferred (first) replica, as `batonctl leader elect --type
/// preferred` does, on a timer and in bounded batches.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalanceConfig {
    /// How often to look for partitions not led by their preferred replica; 0: never.
    pub leader_rebalance_interval_ms: u64,
    /// At most this many leadership moves per round (each is a handoff).
    pub leader_rebalance_max_partitions: usize,
    /// A preferred replica gets leadership back only once its broker has
    /// been heartbeating in its current registration for this long (and is
    /// in the ISR, i.e. caught up): never onto a broker that just came back.
    pub min_broker_uptime_ms: u64,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        BalanceConfig {
            leader_rebalance_interval_ms: 300_000,
            leader_rebalance_max_partitions: 1_000,
            min_broker_uptime_ms: 30_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// One raft tick.
    pub tick_ms: u64,
    /// Ticks without a leader before a follower campaigns (randomised up to 2x).
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Bound on one append message (bytes).
    pub max_size_per_msg: u64,
    /// Bound on in-flight append messages per follower.
    pub max_inflight_msgs: usize,
    /// Bound on proposed-but-uncommitted bytes; proposals beyond it are refused.
    pub max_uncommitted_size: u64,
    /// Take a state-machine snapshot (and compact the log) every N applied entries.
    pub snapshot_interval_entries: u64,
    /// Entries kept behind a snapshot so slightly lagging peers need no snapshot.
    pub snapshot_keep_entries: u64,
    /// How long a proposal or a linearizable read may wait for the quorum.
    pub proposal_timeout_ms: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 1,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            max_uncommitted_size: 64 << 20,
            snapshot_interval_entries: 10_000,
            snapshot_keep_entries: 2_000,
            proposal_timeout_ms: 5_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivenessConfig {
    /// Lease granted to a broker per acknowledged heartbeat, counted by the
    /// broker from the instant it sent that heartbeat.
    pub lease_ms: u64,
    /// A broker not heard from for this long is fenced. Must be at least
    /// lease * (1 + clock_drift) + one election timeout + lease_margin_ms
    /// (see docs/SAFETY.md); the controller refuses to start otherwise.
    pub session_timeout_ms: u64,
    /// Bound on the relative rate difference of two hosts' monotonic clocks.
    pub clock_drift: f64,
    /// Extra safety margin in the session-timeout inequality.
    pub lease_margin_ms: u64,
    /// Fence a broker as soon as its session stream closes (its process died
    /// or exited). Safe only when nothing but the broker's own host can close
    /// that TCP connection (no L4 proxy or load balancer in between): see
    /// docs/SAFETY.md. Turn off to fail over only by session timeout.
    pub fast_failover_on_disconnect: bool,
    /// A follower replica that has not caught up with its leader for this long leaves the ISR.
    pub replica_lag_max_ms: u64,
    /// How often the active controller evaluates liveness and ISRs.
    pub check_interval_ms: u64,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            lease_ms: 1_500,
            session_timeout_ms: 3_000,
            clock_drift: 0.05,
            lease_margin_ms: 200,
            fast_failover_on_disconnect: true,
            replica_lag_max_ms: 10_000,
            check_interval_ms: 50,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest gRPC message accepted on any service (bytes).
    pub max_message_bytes: usize,
    /// Bound on progress reports accepted in one heartbeat.
    pub max_progress_per_heartbeat: usize,
    /// Leadership changes kept in memory for resumable watches (entries).
    pub change_log_entries: usize,
    /// Largest request accepted by the public `Controller` service (bytes).
    pub max_request_bytes: usize,
    /// Largest message accepted from a broker session (bytes).
    pub max_session_message_bytes: usize,
    /// Open connections at once (all services); new ones beyond are closed at accept.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// A TLS handshake not done within this is dropped.
    pub handshake_timeout_ms: u64,
    /// Unary RPCs in progress at once; one more is shed at once with
    /// UNAVAILABLE + `OVERLOADED` instead of queueing without bound.
    pub max_inflight_requests: usize,
    /// A unary RPC running longer than this ends with DEADLINE_EXCEEDED + `TIMEOUT`.
    pub request_timeout_ms: u64,
    /// Heartbeats accepted per second per session (burst of the same size);
    /// a session above it is closed with RESOURCE_EXHAUSTED + `RATE_LIMITED`.
    pub max_heartbeats_per_second: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_bytes: 64 << 20,
            max_progress_per_heartbeat: 100_000,
            change_log_entries: 4_096,
            max_request_bytes: 4 << 20,
            max_session_message_bytes: 16 << 20,
            max_connections: 4_096,
            max_concurrent_streams: 256,
            handshake_timeout_ms: 10_000,
            max_inflight_requests: 1_024,
            request_timeout_ms: 30_000,
            max_heartbeats_per_second: 50,
        }
    }
}

fn default_log_format() -> String {
    "text".to_string()
}

/// Command-line overrides (the highest layer).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub id: Option<u64>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub peers: Option<String>,
    pub log_format: Option<String>,
    pub metrics_listen: Option<String>,
    pub join: bool,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub plaintext: bool,
}

impl ControllerConfig {
    /// TOML file < `BATON_*` environment (nested keys with `__`, e.g.
    /// `BATON_LIVENESS__SESSION_TIMEOUT_MS`) < flags.
    pub fn load(overrides: Overrides) -> anyhow::Result<ControllerConfig> {
        let mut builder = config::Config::builder();
        if let Some(path) = &overrides.config_file {
            builder = builder.add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("BATON")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(controller_env(std::env::vars()))),
        );
        if let Some(v) = overrides.id {
            builder = builder.set_override("id", v)?;
        }
        if let Some(v) = &overrides.data_dir {
            builder = builder.set_override("data_dir", v.to_string_lossy().to_string())?;
        }
        if let Some(v) = overrides.listen {
            builder = builder.set_override("listen", v)?;
        }
        if let Some(v) = overrides.peers {
            builder = builder.set_override("peers", v)?;
        }
        if let Some(v) = overrides.log_format {
            builder = builder.set_override("log_format", v)?;
        }
        if let Some(v) = overrides.metrics_listen {
            builder = builder.set_override("metrics_listen", v)?;
        }
        if overrides.join {
            builder = builder.set_override("join", true)?;
        }
        let mut config: ControllerConfig = builder
            .build()
            .context("reading controller configuration")?
            .try_deserialize()
            .context("parsing controller configuration")?;
        config.tls.overlay(overrides.tls_ca, overrides.tls_cert, overrides.tls_key, overrides.plaintext);
        config.validate()?;
        Ok(config)
    }

    /// Checks every option and the lease/session-timeout inequality.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.id >= 1, "id must be >= 1");
        // Parses `peers`; an id outside them is a controller that joins a
        // running quorum (see `joins`).
        self.peer_map()?;
        ensure!(matches!(self.log_format.as_str(), "text" | "json"), "log_format must be text or json");
        let r = &self.raft;
        ensure!(r.tick_ms >= 1 && r.heartbeat_ticks >= 1, "raft tick_ms and heartbeat_ticks must be >= 1");
        ensure!(r.election_ticks > r.heartbeat_ticks, "raft election_ticks must exceed heartbeat_ticks");
        ensure!(r.snapshot_interval_entries >= 1, "raft snapshot_interval_entries must be >= 1");
        let l = &self.liveness;
        ensure!(l.lease_ms >= 1, "liveness lease_ms must be >= 1");
        ensure!((0.0..1.0).contains(&l.clock_drift), "liveness clock_drift must be in [0, 1)");
        let needed = self.min_session_timeout();
        if Duration::from_millis(l.session_timeout_ms) < needed {
            bail!(
                "liveness session_timeout_ms = {} is unsafe: it must be at least lease_ms * (1 + clock_drift) + \
                 election timeout + lease_margin_ms = {} ms (docs/SAFETY.md)",
                l.session_timeout_ms,
                needed.as_millis()
            );
        }
        let m = &self.limits;
        ensure!(m.max_message_bytes >= 64 << 10, "limits max_message_bytes must be >= 64 KiB");
        ensure!(
            m.max_request_bytes >= 4 << 10 && m.max_session_message_bytes >= 64 << 10,
            "limits max_request_bytes must be >= 4 KiB and max_session_message_bytes >= 64 KiB"
        );
        ensure!(
            m.max_connections >= 8 && m.max_concurrent_streams >= 4 && m.max_inflight_requests >= 1,
            "limits max_connections must be >= 8, max_concurrent_streams >= 4, max_inflight_requests >= 1"
        );
        ensure!(m.max_heartbeats_per_second >= 1, "limits max_heartbeats_per_second must be >= 1");
        self.tls.files()?;
        ensure!(
            self.balance.leader_rebalance_max_partitions >= 1,
            "balance leader_rebalance_max_partitions must be >= 1"
        );
        Ok(())
    }

    /// The smallest session timeout for which a fenced broker's lease has
    /// certainly lapsed, even across a controller failover (docs/SAFETY.md).
    pub fn min_session_timeout(&self) -> Duration {
        let l = &self.liveness;
        let lease = l.lease_ms as f64 * (1.0 + l.clock_drift);
        Duration::from_millis(lease.ceil() as u64) + self.election_timeout() + Duration::from_millis(l.lease_margin_ms)
    }

    pub fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.raft.tick_ms * self.raft.election_ticks as u64)
    }

    /// `peers` parsed: raft id → address.
    /// Whether this controller joins an existing quorum instead of
    /// bootstrapping one: `join` is set, or its id is not among `peers` (the
    /// initial quorum), e.g. pods beyond the first three of a StatefulSet
    /// that share one configuration. Only matters on an empty data dir.
    pub fn joins(&self) -> bool {
        self.join || self.peer_map().is_ok_and(|p| !p.contains_key(&self.id))
    }

    pub fn peer_map(&self) -> anyhow::Result<BTreeMap<u64, String>> {
        parse_peers(&self.peers)
    }
}

/// The `BATON_*` variables that configure a controller. Others that share the
/// prefix (`BATON_CONTROLLERS` for batonctl, `BATON_AGENT_*` for the agent)
/// are left alone rather than failing the strict parse.
fn controller_env(vars: impl Iterator<Item = (String, String)>) -> config::Map<String, String> {
    const KEYS: [&str; 13] = [
        "ID",
        "DATA_DIR",
        "LISTEN",
        "PEERS",
        "JOIN",
        "LOG_FORMAT",
        "METRICS_LISTEN",
        "RAFT",
        "LIVENESS",
        "LIMITS",
        "BALANCE",
        "TLS",
        "AUTH",
    ];
    vars.filter(|(k, _)| {
        k.strip_prefix("BATON_")
            .map(|rest| rest.split("__").next().unwrap_or_default())
            .is_some_and(|top| KEYS.contains(&top))
    })
    .collect()
}

/// Parses `1=host:port,2=host:port`.
pub fn parse_peers(spec: &str) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut peers = BTreeMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item.split_once('=').with_context(|| format!("peer {item:?} is not id=host:port"))?;
        let id: u64 = id.trim().parse().with_context(|| format!("peer id in {item:?} is not a number"))?;
        ensure!(id >= 1, "peer ids must be >= 1");
        let addr = addr.trim();
        ensure!(addr.contains(':'), "peer address {addr:?} has no port");
        ensure!(peers.insert(id, addr.to_string()).is_none(), "peer id {id} appears twice");
    }
    ensure!(!peers.is_empty(), "peers is empty");
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ControllerConfig {
        ControllerConfig {
            id: 1,
            data_dir: "/tmp/x".into(),
            listen: "127.0.0.1:7101".parse().expect("addr"),
            peers: "1=127.0.0.1:7101,2=127.0.0.1:7102".into(),
            log_format: "text".into(),
            metrics_listen: None,
            join: false,
            raft: RaftConfig::default(),
            liveness: LivenessConfig::default(),
            limits: LimitsConfig::default(),
            balance: BalanceConfig::default(),
            tls: baton_security::TlsConfig { plaintext: true, ..Default::default() },
            auth: AuthConfig::default(),
        }
    }

    #[test]
    fn an_id_outside_the_initial_quorum_joins() {
        let mut c = base();
        assert!(!c.joins(), "a member of peers bootstraps");
        c.join = true;
        assert!(c.joins());
        let mut c = base();
        c.id = 4;
        c.validate().expect("an id outside peers is valid: it joins");
        assert!(c.joins());
    }

    #[test]
    fn defaults_satisfy_the_lease_inequality() {
        base().validate().expect("defaults are safe");
    }

    #[test]
    fn a_session_timeout_shorter_than_the_lease_bound_is_refused() {
        let mut c = base();
        c.liveness.session_timeout_ms = c.liveness.lease_ms;
        let err = c.validate().expect_err("unsafe timeout accepted");
        assert!(err.to_string().contains("unsafe"), "{err}");
    }

    #[test]
    fn only_controller_variables_are_read_from_the_environment() {
        let vars = [
            ("BATON_LIVENESS__SESSION_TIMEOUT_MS", "4000"),
            ("BATON_ID", "2"),
            ("BATON_CONTROLLERS", "a:1,b:2"),
            ("BATON_AGENT_BROKER_ID", "7"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let env = controller_env(vars.into_iter());
        let mut keys: Vec<&str> = env.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, vec!["BATON_ID", "BATON_LIVENESS__SESSION_TIMEOUT_MS"]);
    }

    #[test]
    fn peers_parse_and_reject_garbage() {
        let p = parse_peers("1=a:1, 2=b:2").expect("valid");
        assert_eq!(p.get(&2).map(String::as_str), Some("b:2"));
        assert!(parse_peers("1=a:1,1=b:2").is_err());
        assert!(parse_peers("x=a:1").is_err());
        assert!(parse_peers("1=nope").is_err());
        assert!(parse_peers("").is_err());
    }
}

#[cfg(test)]
mod example_file_tests {
    use super::*;

    /// deploy/config/controller.toml documents every option with its
    /// default: it must parse, and its values must be the defaults.
    #[test]
    fn the_documented_config_file_parses_to_the_defaults() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/controller.toml");
        let c = ControllerConfig::load(Overrides { config_file: Some(path), ..Overrides::default() })
            .expect("example config loads");
        let d = LivenessConfig::default();
        assert_eq!(c.liveness.session_timeout_ms, d.session_timeout_ms);
        assert_eq!(c.liveness.lease_ms, d.lease_ms);
        assert_eq!(c.liveness.fast_failover_on_disconnect, d.fast_failover_on_disconnect);
        assert_eq!(c.liveness.replica_lag_max_ms, d.replica_lag_max_ms);
        assert_eq!(c.raft.tick_ms, RaftConfig::default().tick_ms);
        assert_eq!(c.raft.snapshot_interval_entries, RaftConfig::default().snapshot_interval_entries);
        assert_eq!(c.limits.max_message_bytes, LimitsConfig::default().max_message_bytes);
    }

    #[test]
    fn flags_override_the_file() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/controller.toml");
        let c = ControllerConfig::load(Overrides {
            config_file: Some(path),
            id: Some(2),
            listen: Some("127.0.0.1:7102".into()),
            ..Overrides::default()
        })
        .expect("loads");
        assert_eq!(c.id, 2);
        assert_eq!(c.listen.port(), 7102);
    }
}
