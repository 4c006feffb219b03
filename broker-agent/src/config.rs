//! Configuration: [`AgentConfig`] for the library, [`SidecarConfig`] for the
//! binary (TOML file < `BATON_AGENT_*` environment < flags).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Default interval between heartbeats.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
/// Default bound on one RPC (registration, opening a session, waiting for an ack).
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on progress entries per heartbeat.
pub const DEFAULT_MAX_PROGRESS_PER_HEARTBEAT: usize = 10_000;
/// Bound on a controlled shutdown's wait for leadership to move away.
pub const DEFAULT_SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default sidecar listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7201";
/// Prefix of the sidecar's environment variables, e.g. `BATON_AGENT_BROKER_ID`.
pub const ENV_PREFIX: &str = "BATON_AGENT";

/// Prefix of the environment variables that configure the agent's TLS,
/// whether embedded or the sidecar: `BATON_AGENT_TLS_CA_FILE`,
/// `_CERT_FILE`, `_KEY_FILE`, `_TRUST_DOMAIN`, `_PLAINTEXT`, `_RELOAD_INTERVAL_MS`.
pub const TLS_ENV_PREFIX: &str = "BATON_AGENT_TLS_";

/// What the embedded agent needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    pub broker_id: i32,
    /// Controller addresses, `host:port`.
    pub controllers: Vec<String>,
    /// host:port where Kafka clients reach this broker.
    pub advertised_endpoint: String,
    pub rack: String,
    pub heartbeat_interval: Duration,
    pub rpc_timeout: Duration,
    /// Unique per process start; a random UUID (v4) when `None`.
    pub incarnation_id: Option<String>,
    pub max_progress_per_heartbeat: usize,
    /// On shutdown, how long to wait for the controller to move this
    /// broker's leadership away (controlled shutdown) before stopping
    /// anyway. Zero: stop at once (the controller then fails over).
    pub shutdown_drain_timeout: Duration,
    /// mTLS toward the controllers: this broker's certificate (naming
    /// `spiffe://<trust-domain>/broker/<broker_id>`), key and CA. TLS is
    /// required unless `tls.plaintext` is set explicitly.
    pub tls: baton_security::TlsConfig,
    /// The data plane grows ISRs by request ([`crate::Agent::request_isr_expansion`]):
    /// as leader it counts a follower in its high watermark from the moment
    /// it asks for that follower's addition until its view answers, so the
    /// controller adds followers to the ISRs this broker leads only when it
    /// asks. Declared in every heartbeat; set it before `Agent::start` and
    /// never for a data plane that does not do both halves. Default false:
    /// the controller grows this leader's ISRs from reported offsets
    /// (docs/SAFETY.md, "ISR growth").
    pub isr_expansion_by_request: bool,
    /// Ask the controller for only the partitions this broker is a replica
    /// of (`Heartbeat.hosted_view`): what the checks need, at a cost that
    /// does not grow with the cluster. Default false (the whole cluster),
    /// for brokers that answer Kafka Metadata requests from the agent's
    /// view. With a hosted view a check on a partition this broker never
    /// hosted answers UNKNOWN_TOPIC_OR_PARTITION, and one it stopped
    /// hosting answers NOT_LEADER_OR_FOLLOWER with the leader as of then.
    pub hosted_view: bool,
}

impl AgentConfig {
    /// A configuration with every optional field at its default; `tls` comes
    /// from the `BATON_AGENT_TLS_*` environment (see [`TLS_ENV_PREFIX`]), so a
    /// broker that embeds the agent gets TLS settings without code of its
    /// own; an unreadable value there leaves TLS unconfigured and the agent
    /// then refuses to start, saying why.
    pub fn new(broker_id: i32, controllers: Vec<String>, advertised_endpoint: impl Into<String>) -> Self {
        Self {
            broker_id,
            controllers,
            advertised_endpoint: advertised_endpoint.into(),
            rack: String::new(),
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            rpc_timeout: DEFAULT_RPC_TIMEOUT,
            incarnation_id: None,
            max_progress_per_heartbeat: DEFAULT_MAX_PROGRESS_PER_HEARTBEAT,
            shutdown_drain_timeout: DEFAULT_SHUTDOWN_DRAIN_TIMEOUT,
            tls: tls_from_env(std::env::vars()).unwrap_or_else(|e| {
                tracing::error!(error = %format!("{e:#}"), "ignoring the BATON_AGENT_TLS_* environment");
                baton_security::TlsConfig::default()
            }),
            isr_expansion_by_request: false,
            hosted_view: false,
        }
    }

    /// Rejects configurations the session cannot run with.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.broker_id < 0 {
            bail!("broker id must be >= 0, got {}", self.broker_id);
        }
        if self.controllers.is_empty() || self.controllers.iter().any(|c| c.trim().is_empty()) {
            bail!("at least one controller address (host:port) is required");
        }
        if self.advertised_endpoint.is_empty() {
            bail!("the advertised endpoint (host:port) is required");
        }
        if self.heartbeat_interval.is_zero() || self.rpc_timeout.is_zero() {
            bail!("heartbeat interval and rpc timeout must be > 0");
        }
        if self.max_progress_per_heartbeat == 0 {
            bail!("max progress per heartbeat must be > 0");
        }
        self.tls.files()?;
        Ok(())
    }
}

fn tls_from_env(vars: impl Iterator<Item = (String, String)>) -> anyhow::Result<baton_security::TlsConfig> {
    baton_security::TlsConfig::from_vars(TLS_ENV_PREFIX, vars)
}

/// Log output format of the sidecar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The sidecar's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidecarConfig {
    pub agent: AgentConfig,
    /// `host:port`, or `unix:/path/to.sock`.
    pub listen: String,
    pub log_format: LogFormat,
    /// Where to serve Prometheus `GET /metrics`; off when None.
    pub metrics_listen: Option<String>,
}

/// Values given as flags; `None` leaves the file / environment value.
#[derive(Clone, Debug, Default)]
pub struct SidecarOverrides {
    pub broker_id: Option<i32>,
    /// Comma-separated.
    pub controllers: Option<String>,
    pub advertised: Option<String>,
    pub listen: Option<String>,
    pub rack: Option<String>,
    pub heartbeat_interval_ms: Option<u64>,
    pub log_format: Option<String>,
    pub metrics_listen: Option<String>,
    pub tls_ca: Option<std::path::PathBuf>,
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    pub plaintext: bool,
}

/// The keys a file or the environment may set (env: `BATON_AGENT_<KEY>`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    broker_id: Option<i32>,
    controllers: Option<Controllers>,
    advertised: Option<String>,
    listen: Option<String>,
    rack: Option<String>,
    heartbeat_interval_ms: Option<u64>,
    rpc_timeout_ms: Option<u64>,
    incarnation_id: Option<String>,
    max_progress_per_heartbeat: Option<usize>,
    shutdown_drain_timeout_ms: Option<u64>,
    hosted_view: Option<bool>,
    log_format: Option<LogFormat>,
    metrics_listen: Option<String>,
    /// `[tls]` in the file; the environment uses `BATON_AGENT_TLS_*` instead.
    tls: Option<baton_security::TlsConfig>,
    tls_plaintext: Option<bool>,
    tls_ca_file: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    tls_trust_domain: Option<String>,
    tls_reload_interval_ms: Option<u64>,
}

/// A list in TOML, or one comma-separated string (env, flags).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Controllers {
    List(Vec<String>),
    Joined(String),
}

impl Controllers {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::List(v) => v.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
            Self::Joined(s) => split_list(&s),
        }
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Loads the sidecar configuration from the process environment.
pub fn load_sidecar_config(file: Option<&Path>, flags: &SidecarOverrides) -> anyhow::Result<SidecarConfig> {
    load_with_env(file, None, flags)
}

/// As [`load_sidecar_config`], with the environment given explicitly (tests).
pub fn load_with_env(
    file: Option<&Path>,
    env: Option<HashMap<String, String>>,
    flags: &SidecarOverrides,
) -> anyhow::Result<SidecarConfig> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml).required(true));
    }
    builder = builder
        .add_source(config::Environment::with_prefix(ENV_PREFIX).prefix_separator("_").try_parsing(true).source(env));
    let raw: RawConfig = builder
        .build()
        .context("reading the agent configuration")?
        .try_deserialize()
        .context("parsing the agent configuration")?;

    let broker_id = flags.broker_id.or(raw.broker_id).context("--broker-id is required")?;
    let controllers = match &flags.controllers {
        Some(c) => split_list(c),
        None => raw.controllers.map(Controllers::into_vec).unwrap_or_default(),
    };
    let advertised = flags.advertised.clone().or(raw.advertised).context("--advertised is required")?;
    let mut agent = AgentConfig::new(broker_id, controllers, advertised);
    if let Some(rack) = flags.rack.clone().or(raw.rack) {
        agent.rack = rack;
    }
    if let Some(ms) = flags.heartbeat_interval_ms.or(raw.heartbeat_interval_ms) {
        agent.heartbeat_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = raw.rpc_timeout_ms {
        agent.rpc_timeout = Duration::from_millis(ms);
    }
    agent.incarnation_id = raw.incarnation_id.filter(|s| !s.is_empty());
    if let Some(n) = raw.max_progress_per_heartbeat {
        agent.max_progress_per_heartbeat = n;
    }
    if let Some(ms) = raw.shutdown_drain_timeout_ms {
        agent.shutdown_drain_timeout = Duration::from_millis(ms);
    }
    agent.hosted_view = raw.hosted_view.unwrap_or(false);
    // File `[tls]` < environment `BATON_AGENT_TLS_*` < flags.
    let mut tls = raw.tls.unwrap_or_default();
    if raw.tls_ca_file.is_some() || raw.tls_cert_file.is_some() || raw.tls_key_file.is_some() {
        tls.plaintext = false;
    }
    tls.ca_file = raw.tls_ca_file.map(Into::into).or(tls.ca_file);
    tls.cert_file = raw.tls_cert_file.map(Into::into).or(tls.cert_file);
    tls.key_file = raw.tls_key_file.map(Into::into).or(tls.key_file);
    tls.plaintext = raw.tls_plaintext.unwrap_or(tls.plaintext);
    tls.trust_domain = raw.tls_trust_domain.unwrap_or(tls.trust_domain);
    tls.reload_interval_ms = raw.tls_reload_interval_ms.unwrap_or(tls.reload_interval_ms);
    tls.overlay(flags.tls_ca.clone(), flags.tls_cert.clone(), flags.tls_key.clone(), flags.plaintext);
    agent.tls = tls;
    agent.validate()?;
    let log_format = match flags.log_format.as_deref() {
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(other) => bail!("--log-format must be text or json, got {other:?}"),
        None => raw.log_format.unwrap_or_default(),
    };
    let listen = flags.listen.clone().or(raw.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let metrics_listen = flags.metrics_listen.clone().or(raw.metrics_listen).filter(|m| !m.is_empty());
    Ok(SidecarConfig { agent, listen, log_format, metrics_listen })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn file_then_env_then_flags() {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().expect("temp file");
        writeln!(
            file,
            "broker_id = 1\ncontrollers = [\"a:1\", \"b:2\"]\nadvertised = \"h:9092\"\nrack = \"file\"\n\
             heartbeat_interval_ms = 100\nrpc_timeout_ms = 700\nlisten = \"unix:/tmp/x.sock\"\n\
             [tls]\nca_file = \"f-ca\"\ncert_file = \"f-cert\"\nkey_file = \"f-key\""
        )
        .expect("write");
        let env = env(&[
            ("BATON_AGENT_RACK", "env"),
            ("BATON_AGENT_BROKER_ID", "2"),
            ("BATON_AGENT_CONTROLLERS", "c:3,d:4"),
            ("BATON_AGENT_TLS_CERT_FILE", "e-cert"),
        ]);
        let flags = SidecarOverrides {
            broker_id: Some(3),
            heartbeat_interval_ms: Some(250),
            tls_key: Some("k-flag".into()),
            ..Default::default()
        };
        let cfg = load_with_env(Some(file.path()), env, &flags).expect("config");
        assert_eq!(cfg.agent.broker_id, 3, "flag beats env and file");
        assert_eq!(cfg.agent.rack, "env", "env beats file");
        assert_eq!(cfg.agent.controllers, vec!["c:3".to_owned(), "d:4".to_owned()]);
        assert_eq!(cfg.agent.advertised_endpoint, "h:9092");
        assert_eq!(cfg.agent.heartbeat_interval, Duration::from_millis(250));
        assert_eq!(cfg.agent.rpc_timeout, Duration::from_millis(700));
        assert_eq!(cfg.listen, "unix:/tmp/x.sock");
        let tls = &cfg.agent.tls;
        assert_eq!(
            (tls.ca_file.as_deref(), tls.cert_file.as_deref(), tls.key_file.as_deref()),
            (Some(Path::new("f-ca")), Some(Path::new("e-cert")), Some(Path::new("k-flag"))),
            "TLS files: file < env < flags"
        );
        assert!(!tls.plaintext);
    }

    #[test]
    fn tls_is_required_unless_plaintext_is_explicit() {
        let flags = SidecarOverrides {
            broker_id: Some(1),
            controllers: Some("127.0.0.1:7101".into()),
            advertised: Some("127.0.0.1:9092".into()),
            ..Default::default()
        };
        let err = load_with_env(None, env(&[]), &flags).expect_err("no TLS and no plaintext");
        assert!(format!("{err:#}").contains("no TLS configured"), "{err:#}");
        let cfg = load_with_env(None, env(&[("BATON_AGENT_TLS_PLAINTEXT", "true")]), &flags).expect("plaintext");
        assert!(cfg.agent.tls.plaintext);
    }

    #[test]
    fn flags_alone_suffice_and_defaults_apply() {
        let flags = SidecarOverrides {
            broker_id: Some(1),
            controllers: Some("127.0.0.1:7101, 127.0.0.1:7102".into()),
            advertised: Some("127.0.0.1:9092".into()),
            plaintext: true,
            ..Default::default()
        };
        let cfg = load_with_env(None, env(&[]), &flags).expect("config");
        assert_eq!(cfg.agent.controllers.len(), 2);
        assert_eq!(cfg.agent.heartbeat_interval, DEFAULT_HEARTBEAT_INTERVAL);
        assert_eq!(cfg.agent.max_progress_per_heartbeat, DEFAULT_MAX_PROGRESS_PER_HEARTBEAT);
        assert_eq!(cfg.listen, DEFAULT_LISTEN);
    }

    #[test]
    fn missing_controllers_is_an_error() {
        let flags = SidecarOverrides { broker_id: Some(1), advertised: Some("h:1".into()), ..Default::default() };
        assert!(load_with_env(None, env(&[]), &flags).is_err());
    }

    /// deploy/config/agent.toml documents every option with its default.
    #[test]
    fn the_documented_config_file_parses_to_the_defaults() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/agent.toml");
        let c = load_with_env(Some(&path), Some(HashMap::new()), &SidecarOverrides::default()).expect("example loads");
        assert_eq!(c.agent.heartbeat_interval, DEFAULT_HEARTBEAT_INTERVAL);
        assert_eq!(c.agent.rpc_timeout, DEFAULT_RPC_TIMEOUT);
        assert_eq!(c.agent.max_progress_per_heartbeat, DEFAULT_MAX_PROGRESS_PER_HEARTBEAT);
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.agent.controllers.len(), 3);
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.agent.tls.cert_file.is_some() && !c.agent.tls.plaintext, "the example runs mTLS");
    }
}
