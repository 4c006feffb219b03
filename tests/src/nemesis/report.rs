//! The checker's answer: which check failed, where, and the events around it.

use std::fmt;

use super::history::Recorded;

/// Events shown on each side of a violation.
pub const CONTEXT: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// (a) two brokers acting as leader of one partition at once.
    OverlappingLeaders,
    /// (b) one (partition, epoch) naming two leaders.
    EpochOnTwoBrokers,
    /// (b) an epoch going down (a broker's, a watcher's, or the final state's).
    EpochWentBackwards,
    /// (c) an acknowledged metadata change missing after recovery.
    LostMetadata,
    /// (d) a leader from outside the ISR it replaced on a clean-election topic.
    LeaderOutsideIsr,
    /// (e) a partition with a live ISR member leaderless past the bound after a heal.
    NoLeaderAfterHeal,
}

#[derive(Clone, Debug)]
pub struct Violation {
    pub check: Check,
    pub message: String,
    /// The offending event: an index into [`Report::history`].
    pub at: usize,
    /// Other events the message refers to (indexes into the history).
    pub related: Vec<usize>,
}

/// The checker's answer. `Display` prints a summary and each violation with
/// the [`CONTEXT`] events on each side of it.
#[derive(Clone, Debug)]
pub struct Report {
    /// The history, sorted by `t_ns`.
    pub history: Vec<Recorded>,
    pub violations: Vec<Violation>,
    /// What could not be judged, and why.
    pub notes: Vec<String>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn count(&self, check: Check) -> usize {
        self.violations.iter().filter(|v| v.check == check).count()
    }

    /// The events around a violation: up to CONTEXT each side of `at`.
    pub fn context(&self, v: &Violation) -> std::ops::Range<usize> {
        v.at.saturating_sub(CONTEXT)..(v.at + CONTEXT + 1).min(self.history.len())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "history: {} events, {} violations", self.history.len(), self.violations.len())?;
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        let line = |f: &mut fmt::Formatter<'_>, mark: &str, i: usize| {
            let r = &self.history[i];
            writeln!(f, "  {mark} line {:>6}  {}", r.line, r.event.to_json())
        };
        for v in &self.violations {
            writeln!(f, "\nVIOLATION {:?}: {}", v.check, v.message)?;
            let range = self.context(v);
            for i in range.clone() {
                let mark = if i == v.at {
                    ">>"
                } else if v.related.contains(&i) {
                    " *"
                } else {
                    "  "
                };
                line(f, mark, i)?;
            }
            for &i in v.related.iter().filter(|i| !range.contains(i)) {
                writeln!(f, "  related:")?;
                line(f, " *", i)?;
            }
        }
        Ok(())
    }
}
