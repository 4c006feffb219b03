//! Entry points for fuzzing the decoders of everything this crate persists
//! or replicates (`fuzz/` runs them under libFuzzer; a stable test runs them
//! over generated inputs). Each must never panic, and whatever decodes must
//! re-encode to something that decodes to the same value.

use crate::{Command, State};

/// A raft log entry's payload.
pub fn command(data: &[u8]) {
    if let Ok(command) = Command::decode(data) {
        let again = Command::decode(&command.encode()).expect("a re-encoded command decodes");
        assert_eq!(again, command);
    }
}

/// A state-machine snapshot.
pub fn snapshot(data: &[u8]) {
    if let Ok(state) = State::decode_snapshot(data) {
        state.check_invariants().expect("a decoded snapshot satisfies the invariants");
        let again = State::decode_snapshot(&state.encode_snapshot()).expect("a re-encoded snapshot decodes");
        assert_eq!(again, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TopicConfig;

    /// A deterministic byte generator (splitmix64) for smoke-fuzzing on stable.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                (z ^ (z >> 27)) as u8
            })
            .collect()
    }

    /// Mutations of valid encodings reach far deeper than random bytes.
    fn mutants(valid: &[u8], seed: u64) -> Vec<Vec<u8>> {
        let noise = bytes(seed, 64);
        let mut out = vec![valid.to_vec()];
        for (i, n) in noise.iter().enumerate() {
            let mut m = valid.to_vec();
            if m.is_empty() {
                break;
            }
            let at = (*n as usize * 7 + i) % m.len();
            match i % 4 {
                0 => m[at] ^= 1 << (n % 8),
                1 => m.truncate(at),
                2 => m.insert(at, *n),
                _ => m[at] = *n,
            }
            out.push(m);
        }
        out
    }

    #[test]
    fn decoders_survive_random_and_mutated_input() {
        let mut state = State::new();
        state.apply(
            1,
            &Command::RegisterBroker {
                broker_id: 1,
                incarnation_id: "i".into(),
                endpoint: "h:1".into(),
                rack: "r".into(),
            },
        );
        let create = Command::CreateTopic {
            name: "t".into(),
            partitions: 3,
            replication_factor: 1,
            config: TopicConfig { unclean_leader_election: true },
        };
        state.apply(2, &create);
        let snapshot_bytes = state.encode_snapshot();
        let command_bytes = create.encode();
        for seed in 0..400 {
            command(&bytes(seed, (seed % 97) as usize));
            snapshot(&bytes(seed, (seed % 211) as usize));
            for m in mutants(&command_bytes, seed) {
                command(&m);
            }
            for m in mutants(&snapshot_bytes, seed) {
                snapshot(&m);
            }
        }
    }
}
