//! Linearizable reads share ReadIndex rounds.
//!
//! A read may use the index of a ReadIndex round only if the round started
//! after the read was asked (otherwise a write acknowledged between the
//! round's start and the read could be missed). Every read the driver took
//! in one turn was asked before the turn ends, so one round started at the
//! end of the turn serves all of them, as etcd's read loop serves every
//! read queued before its round. Under concurrent reads that is one heartbeat
//! broadcast per turn instead of one per read (docs/BENCHMARKS.md, query).

use std::collections::HashMap;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::ProposeError;

pub(crate) type ReadReply = oneshot::Sender<Result<u64, ProposeError>>;

/// One round in flight: every read that joined it, and when it gives up.
struct Round {
    replies: Vec<ReadReply>,
    deadline: Instant,
}

#[derive(Default)]
pub(crate) struct ReadRounds {
    /// Reads taken this turn, not in any round yet.
    waiting: Vec<ReadReply>,
    /// Rounds started, by the sequence number in their raft context.
    in_flight: HashMap<u64, Round>,
}

impl ReadRounds {
    /// A read asked now: it joins the next round.
    pub(crate) fn ask(&mut self, reply: ReadReply) {
        self.waiting.push(reply);
    }

    /// Moves every waiting read into a round numbered `seq`; true if the
    /// caller must now start that round (there were reads waiting).
    pub(crate) fn start(&mut self, seq: u64, deadline: Instant) -> bool {
        if self.waiting.is_empty() {
            return false;
        }
        let replies = std::mem::take(&mut self.waiting);
        self.in_flight.insert(seq, Round { replies, deadline });
        true
    }

    /// Round `seq` established `index`: every read in it may read there.
    pub(crate) fn answer(&mut self, seq: u64, index: u64) {
        if let Some(round) = self.in_flight.remove(&seq) {
            for reply in round.replies {
                let _ = reply.send(Ok(index));
            }
        }
    }

    /// Forgets readers that gave up, and rounds past their deadline (raft-rs
    /// drops a ReadIndex silently in some states; dropping the senders
    /// turns that into an error for the readers instead of a hang).
    pub(crate) fn expire(&mut self, now: Instant) {
        self.waiting.retain(|r| !r.is_closed());
        self.in_flight.retain(|_, round| {
            round.replies.retain(|r| !r.is_closed());
            round.deadline > now && !round.replies.is_empty()
        });
    }

    /// Fails every read, waiting or in flight.
    pub(crate) fn fail_all(&mut self, error: &ProposeError) {
        let rounds = self.in_flight.drain().flat_map(|(_, round)| round.replies);
        for reply in self.waiting.drain(..).chain(rounds) {
            let _ = reply.send(Err(error.clone()));
        }
    }

    /// Whether any read waits for an answer.
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.in_flight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reader(rounds: &mut ReadRounds) -> oneshot::Receiver<Result<u64, ProposeError>> {
        let (tx, rx) = oneshot::channel();
        rounds.ask(tx);
        rx
    }

    #[test]
    fn reads_of_one_turn_share_a_round_and_a_later_read_waits_for_the_next() {
        let mut rounds = ReadRounds::default();
        let later = Instant::now() + Duration::from_secs(5);
        let mut first: Vec<_> = (0..3).map(|_| reader(&mut rounds)).collect();
        assert!(rounds.start(1, later), "one round for the three");
        assert!(!rounds.start(2, later), "no round without reads");
        // Asked while round 1 is in flight: round 1 may have started before
        // it, so its index must not serve it.
        let mut late = reader(&mut rounds);
        rounds.answer(1, 40);
        for rx in &mut first {
            assert_eq!(rx.try_recv().expect("answered").expect("ok"), 40);
        }
        assert!(late.try_recv().is_err(), "the late read is not served by the earlier round");
        assert!(rounds.start(3, later));
        rounds.answer(3, 41);
        assert_eq!(late.try_recv().expect("answered").expect("ok"), 41);
        assert!(rounds.is_empty());
    }

    #[test]
    fn an_expired_round_drops_its_readers_and_failures_reach_every_reader() {
        let mut rounds = ReadRounds::default();
        let now = Instant::now();
        let mut expired = reader(&mut rounds);
        assert!(rounds.start(1, now));
        rounds.expire(now + Duration::from_millis(1));
        assert!(matches!(expired.try_recv(), Err(oneshot::error::TryRecvError::Closed)));
        assert!(rounds.is_empty());

        let mut in_round = reader(&mut rounds);
        assert!(rounds.start(2, now + Duration::from_secs(5)));
        let mut waiting = reader(&mut rounds);
        rounds.fail_all(&ProposeError::Shutdown);
        assert!(matches!(in_round.try_recv(), Ok(Err(ProposeError::Shutdown))));
        assert!(matches!(waiting.try_recv(), Ok(Err(ProposeError::Shutdown))));
        assert!(rounds.is_empty());
    }
}
