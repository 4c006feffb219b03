//! Rendering of answers as JSON (stable keys, for scripts) or aligned tables
//! (for people). Pure: every function maps proto messages to text.

use baton_proto::v1::{
    BrokerInfo, BrokerState, DescribeQuorumResponse, ElectionResult, ErrorCode, GetPartitionLeaderResponse,
    LeadershipUpdate, PartitionInfo, QuorumMember, TopicDescription, TopicSummary,
};
use serde::Serialize;

// ---------------------------------------------------------------- JSON shapes

#[derive(Debug, Serialize)]
pub struct PartitionJson {
    pub topic: String,
    pub partition: i32,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader_endpoint: String,
}

impl From<&PartitionInfo> for PartitionJson {
    fn from(p: &PartitionInfo) -> Self {
        Self {
            topic: p.topic.clone(),
            partition: p.partition,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            leader_endpoint: p.leader_endpoint.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TopicJson {
    pub name: String,
    pub topic_id: u64,
    pub unclean_leader_election: bool,
    pub metadata_version: u64,
    pub partitions: Vec<PartitionJson>,
}

pub fn topic_json(topic: &TopicDescription, metadata_version: u64) -> TopicJson {
    let mut partitions: Vec<PartitionJson> = topic.partitions.iter().map(PartitionJson::from).collect();
    partitions.sort_by_key(|p| p.partition);
    // Partitions may omit the topic name inside a description; fill it in.
    for p in &mut partitions {
        if p.topic.is_empty() {
            p.topic = topic.name.clone();
        }
    }
    TopicJson {
        name: topic.name.clone(),
        topic_id: topic.topic_id,
        unclean_leader_election: topic.config.is_some_and(|c| c.unclean_leader_election),
        metadata_version,
        partitions,
    }
}

#[derive(Debug, Serialize)]
pub struct TopicSummaryJson {
    pub name: String,
    pub topic_id: u64,
    pub partitions: i32,
    pub replication_factor: i32,
}

pub fn topic_list_json(topics: &[TopicSummary]) -> Vec<TopicSummaryJson> {
    let mut out: Vec<TopicSummaryJson> = topics
        .iter()
        .map(|t| TopicSummaryJson {
            name: t.name.clone(),
            topic_id: t.topic_id,
            partitions: t.partitions,
            replication_factor: t.replication_factor,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[derive(Debug, Serialize)]
pub struct DeletedJson {
    pub deleted: String,
    pub metadata_version: u64,
}

#[derive(Debug, Serialize)]
pub struct LeaderJson {
    pub topic: String,
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub endpoint: String,
    pub metadata_version: u64,
}

pub fn leader_json(r: &GetPartitionLeaderResponse) -> LeaderJson {
    LeaderJson {
        topic: r.topic.clone(),
        partition: r.partition,
        leader: r.leader,
        leader_epoch: r.leader_epoch,
        endpoint: r.endpoint.clone(),
        metadata_version: r.metadata_version,
    }
}

#[derive(Debug, Serialize)]
pub struct BrokerJson {
    pub id: i32,
    pub state: String,
    pub epoch: u64,
    pub endpoint: String,
    pub rack: String,
    pub incarnation_id: String,
    /// -1 when the answering controller does not know (it is not the active one).
    pub last_heartbeat_age_ms: i64,
}

impl From<&BrokerInfo> for BrokerJson {
    fn from(b: &BrokerInfo) -> Self {
        Self {
            id: b.id,
            state: broker_state_name(b.state),
            epoch: b.epoch,
            endpoint: b.endpoint.clone(),
            rack: b.rack.clone(),
            incarnation_id: b.incarnation_id.clone(),
            last_heartbeat_age_ms: b.last_heartbeat_age_ms,
        }
    }
}

pub fn broker_list_json(brokers: &[BrokerInfo]) -> Vec<BrokerJson> {
    let mut out: Vec<BrokerJson> = brokers.iter().map(BrokerJson::from).collect();
    out.sort_by_key(|b| b.id);
    out
}

/// `ALIVE`, `FENCED`, `CONTROLLED_SHUTDOWN`, `DRAINED` (`UNSPECIFIED`, or
/// `UNKNOWN(n)` for a value newer than this binary).
pub fn broker_state_name(state: i32) -> String {
    match BrokerState::try_from(state) {
        Ok(s) => s.as_str_name().trim_start_matches("BROKER_STATE_").to_owned(),
        Err(_) => format!("UNKNOWN({state})"),
    }
}

/// The `baton-error` spelling of an error code; `None` for UNSPECIFIED (success).
pub fn error_code_name(code: i32) -> Option<String> {
    match ErrorCode::try_from(code) {
        Ok(ErrorCode::Unspecified) => None,
        Ok(c) => Some(c.as_str_name().trim_start_matches("ERROR_CODE_").to_owned()),
        Err(_) => Some(format!("UNKNOWN({code})")),
    }
}

#[derive(Debug, Serialize)]
pub struct DrainJson {
    pub broker: i32,
    pub drained: bool,
    /// Partitions whose leadership moved to another in-sync broker.
    pub moved: i32,
    /// Partitions it still leads (no other eligible in-sync replica).
    pub remaining: i32,
    pub metadata_version: u64,
}

pub fn drain_table(d: &DrainJson) -> String {
    let mut t = Table::new(vec!["BROKER", "MOVED", "STILL_LEADS", "METADATA_VERSION"]);
    t.row(vec![d.broker.to_string(), d.moved.to_string(), d.remaining.to_string(), d.metadata_version.to_string()]);
    t.render()
}

#[derive(Debug, Serialize)]
pub struct UndrainJson {
    pub broker: i32,
    /// Leaderless partitions it leads again at once.
    pub elected: i32,
    pub metadata_version: u64,
}

#[derive(Debug, Serialize)]
pub struct QuorumMemberJson {
    pub id: u64,
    pub address: String,
    pub role: &'static str,
    pub match_index: u64,
    pub is_learner: bool,
    /// Since the answering controller last heard from it (-1: never).
    pub last_contact_ms: i64,
}

#[derive(Debug, Serialize)]
pub struct QuorumJson {
    /// Raft id of the leader; 0 when the answering controller knows none.
    pub leader: u64,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    /// The controller that answered.
    pub node_id: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub members: Vec<QuorumMemberJson>,
}

pub fn quorum_json(q: &DescribeQuorumResponse) -> QuorumJson {
    let member = |m: &QuorumMember, is_learner: bool| QuorumMemberJson {
        id: m.id,
        address: m.address.clone(),
        role: if is_learner || m.is_learner {
            "learner"
        } else if m.id == q.leader && q.leader != 0 {
            "leader"
        } else {
            "follower"
        },
        match_index: m.match_index,
        is_learner: is_learner || m.is_learner,
        last_contact_ms: m.last_contact_ms,
    };
    let mut members: Vec<QuorumMemberJson> =
        q.voters.iter().map(|m| member(m, false)).chain(q.learners.iter().map(|m| member(m, true))).collect();
    members.sort_by_key(|m| (m.is_learner, m.id));
    let mut voters: Vec<u64> = q.voters.iter().map(|m| m.id).collect();
    voters.sort_unstable();
    let mut learners: Vec<u64> = q.learners.iter().map(|m| m.id).collect();
    learners.sort_unstable();
    QuorumJson {
        leader: q.leader,
        term: q.term,
        commit_index: q.commit_index,
        applied_index: q.applied_index,
        node_id: q.node_id,
        voters,
        learners,
        members,
    }
}

#[derive(Debug, Serialize)]
pub struct ElectionResultJson {
    pub topic: String,
    pub partition: i32,
    /// `null` on success, else the error code name (e.g. `ELECTION_NOT_NEEDED`).
    pub error: Option<String>,
    pub message: String,
    pub leader: i32,
    pub leader_epoch: i32,
}

#[derive(Debug, Serialize)]
pub struct ElectionJson {
    pub election_type: &'static str,
    pub metadata_version: u64,
    pub results: Vec<ElectionResultJson>,
}

pub fn election_json(election_type: &'static str, results: &[ElectionResult], metadata_version: u64) -> ElectionJson {
    let mut results: Vec<ElectionResultJson> = results
        .iter()
        .map(|r| ElectionResultJson {
            topic: r.topic.clone(),
            partition: r.partition,
            error: error_code_name(r.error),
            message: r.message.clone(),
            leader: r.leader,
            leader_epoch: r.leader_epoch,
        })
        .collect();
    results.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    ElectionJson { election_type, metadata_version, results }
}

/// Whether an election result is a real failure. ELECTION_NOT_NEEDED is not:
/// the preferred replica already leads, which is what was asked for.
pub fn election_failed(r: &ElectionResult) -> bool {
    !matches!(ErrorCode::try_from(r.error), Ok(ErrorCode::Unspecified | ErrorCode::ElectionNotNeeded))
}

#[derive(Debug, Serialize)]
pub struct WatchJson {
    pub metadata_version: u64,
    pub full: bool,
    pub partitions: Vec<PartitionJson>,
    pub deleted_topics: Vec<String>,
    pub brokers: Vec<BrokerJson>,
}

pub fn watch_json(u: &LeadershipUpdate) -> WatchJson {
    WatchJson {
        metadata_version: u.metadata_version,
        full: u.full,
        partitions: u.partitions.iter().map(PartitionJson::from).collect(),
        deleted_topics: u.deleted_topics.clone(),
        brokers: u.brokers.iter().map(BrokerJson::from).collect(),
    }
}

/// One line of compact JSON (also what `--output json` prints for one-shot verbs).
pub fn to_json_line<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail (string keys, no maps of
    // non-string keys); fall back to a JSON error object rather than panic.
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
}

// ---------------------------------------------------------------- tables

/// Columns padded to their widest cell, two spaces apart, header first.
#[derive(Debug)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: Vec<&'static str>) -> Self {
        Self { header, rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            out.push_str(&pad_row(row, &widths));
            out.push('\n');
        }
        out
    }
}

fn pad_row(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        let width = widths.get(i).copied().unwrap_or(0);
        line.push_str(&format!("{cell:<width$}"));
    }
    line.trim_end().to_owned()
}

fn ids(list: &[i32]) -> String {
    if list.is_empty() {
        return "-".to_owned();
    }
    list.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn leader_cell(leader: i32) -> String {
    if leader < 0 { "none".to_owned() } else { leader.to_string() }
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".to_owned() } else { s.to_owned() }
}

const PARTITION_HEADER: [&str; 8] =
    ["TOPIC", "PARTITION", "LEADER", "EPOCH", "PARTITION_EPOCH", "ISR", "REPLICAS", "LEADER_ENDPOINT"];

fn partition_cells(topic: &str, p: &PartitionJson) -> Vec<String> {
    let topic = if p.topic.is_empty() { topic } else { &p.topic };
    vec![
        topic.to_owned(),
        p.partition.to_string(),
        leader_cell(p.leader),
        p.leader_epoch.to_string(),
        p.partition_epoch.to_string(),
        ids(&p.isr),
        ids(&p.replicas),
        or_dash(&p.leader_endpoint),
    ]
}

pub fn topic_table(t: &TopicJson) -> String {
    let mut table = Table::new(PARTITION_HEADER.to_vec());
    for p in &t.partitions {
        table.row(partition_cells(&t.name, p));
    }
    table.render()
}

pub fn topic_list_table(topics: &[TopicSummaryJson]) -> String {
    let mut table = Table::new(vec!["TOPIC", "TOPIC_ID", "PARTITIONS", "REPLICATION_FACTOR"]);
    for t in topics {
        table.row(vec![
            t.name.clone(),
            t.topic_id.to_string(),
            t.partitions.to_string(),
            t.replication_factor.to_string(),
        ]);
    }
    table.render()
}

pub fn deleted_table(d: &DeletedJson) -> String {
    format!("deleted topic {:?} (metadata version {})\n", d.deleted, d.metadata_version)
}

pub fn leader_table(l: &LeaderJson) -> String {
    let mut table = Table::new(vec!["TOPIC", "PARTITION", "LEADER", "EPOCH", "ENDPOINT", "METADATA_VERSION"]);
    table.row(vec![
        l.topic.clone(),
        l.partition.to_string(),
        leader_cell(l.leader),
        l.leader_epoch.to_string(),
        or_dash(&l.endpoint),
        l.metadata_version.to_string(),
    ]);
    table.render()
}

pub fn broker_list_table(brokers: &[BrokerJson]) -> String {
    let mut table = Table::new(vec!["ID", "STATE", "EPOCH", "ENDPOINT", "RACK", "HEARTBEAT_AGE_MS"]);
    for b in brokers {
        table.row(vec![
            b.id.to_string(),
            b.state.clone(),
            b.epoch.to_string(),
            or_dash(&b.endpoint),
            or_dash(&b.rack),
            if b.last_heartbeat_age_ms < 0 { "-".to_owned() } else { b.last_heartbeat_age_ms.to_string() },
        ]);
    }
    table.render()
}

pub fn quorum_table(q: &QuorumJson) -> String {
    let mut summary = Table::new(vec!["LEADER", "TERM", "COMMIT_INDEX", "APPLIED_INDEX", "ANSWERED_BY"]);
    summary.row(vec![
        if q.leader == 0 { "none".to_owned() } else { q.leader.to_string() },
        q.term.to_string(),
        q.commit_index.to_string(),
        q.applied_index.to_string(),
        q.node_id.to_string(),
    ]);
    let mut members = Table::new(vec!["ID", "ADDRESS", "ROLE", "MATCH_INDEX", "LAST_CONTACT"]);
    for m in &q.members {
        let contact = if m.last_contact_ms < 0 { "never".to_owned() } else { format!("{} ms", m.last_contact_ms) };
        members.row(vec![m.id.to_string(), or_dash(&m.address), m.role.to_owned(), m.match_index.to_string(), contact]);
    }
    format!("{}\n{}", summary.render(), members.render())
}

pub fn election_table(e: &ElectionJson) -> String {
    let mut table = Table::new(vec!["TOPIC", "PARTITION", "RESULT", "LEADER", "EPOCH", "MESSAGE"]);
    for r in &e.results {
        table.row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            r.error.clone().unwrap_or_else(|| "ELECTED".to_owned()),
            leader_cell(r.leader),
            r.leader_epoch.to_string(),
            r.message.replace(['\n', '\r'], " "),
        ]);
    }
    table.render()
}

/// Table output of `leader watch`: rows are printed as updates arrive, so the
/// columns have fixed minimum widths instead of being fitted to the data.
#[derive(Debug, Default)]
pub struct WatchTable {
    header_printed: bool,
}

const WATCH_HEADER: [&str; 8] =
    ["VERSION", "TOPIC", "PARTITION", "LEADER", "EPOCH", "ISR", "REPLICAS", "LEADER_ENDPOINT"];
const WATCH_WIDTHS: [usize; 8] = [8, 20, 9, 6, 5, 10, 10, 0];

impl WatchTable {
    /// The lines for one update: a note for snapshots, broker changes and
    /// deleted topics (prefixed `#`), then one row per changed partition.
    pub fn lines(&mut self, u: &LeadershipUpdate) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.header_printed {
            self.header_printed = true;
            let header: Vec<String> = WATCH_HEADER.iter().map(|h| (*h).to_owned()).collect();
            lines.push(pad_row(&header, &WATCH_WIDTHS));
        }
        let v = u.metadata_version;
        if u.full {
            lines.push(format!(
                "# version {v}: full snapshot ({} partitions, {} brokers)",
                u.partitions.len(),
                u.brokers.len()
            ));
        }
        for topic in &u.deleted_topics {
            lines.push(format!("# version {v}: topic {topic:?} deleted"));
        }
        for b in &u.brokers {
            lines.push(format!(
                "# version {v}: broker {} {} (epoch {}, endpoint {})",
                b.id,
                broker_state_name(b.state),
                b.epoch,
                or_dash(&b.endpoint)
            ));
        }
        for p in &u.partitions {
            let p = PartitionJson::from(p);
            let mut cells = vec![v.to_string()];
            let mut rest = partition_cells(&p.topic, &p);
            rest.remove(4); // the partition epoch: noise in a live view
            cells.extend(rest);
            lines.push(pad_row(&cells, &WATCH_WIDTHS));
        }
        lines
    }
}

// ---------------------------------------------------------------- errors

/// The one stderr line for a failed command: `error: <message>`.
pub fn error_line(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    let one_line: Vec<&str> = text.split_whitespace().collect();
    format!("error: {}", one_line.join(" "))
}

#[cfg(test)]
mod tests;
