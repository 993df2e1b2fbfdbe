//! The recent outcomes `/outcomes` serves: two bounded rings, one for what
//! changed nothing by decision (refused, deduped) and one for the rest (acted,
//! dry_run, failed, deferred, resolved), so a storm of refusals never pushes
//! out what heal8s did. One sequence numbers both.
//!
//! Owns: the rings, their bounds and paging. Must not log, count or cut
//! outcomes (the recorder in `worker` does).

use std::collections::VecDeque;

use receiver_core::OutcomeKind;

/// How many outcomes each ring keeps at most.
pub const RING_OUTCOMES: usize = 512;

/// How many bytes the recent outcomes may take together (their JSON), half
/// per ring: the oldest go first when a new one would pass it. It also
/// bounds a response.
pub const RECENT_OUTCOMES_BYTES: usize = 8 << 20;

/// How many bytes (their JSON) each ring's outcomes may take together: the
/// oldest go first when a new one would pass it. Both rings together stay
/// within `RECENT_OUTCOMES_BYTES`.
pub const RING_BYTES: usize = RECENT_OUTCOMES_BYTES / 2;

/// Which outcomes a page holds (`/outcomes?result=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Both rings, by `seq`.
    All,
    /// acted, dry_run, failed, deferred, resolved.
    Acted,
    /// refused and deduped.
    Refused,
}

impl Which {
    /// The ring an outcome with `result` goes to.
    pub fn of(result: OutcomeKind) -> Which {
        match result {
            OutcomeKind::Refused | OutcomeKind::Deduped => Which::Refused,
            _ => Which::Acted,
        }
    }
}

/// One kept outcome: its sequence number and its JSON (with `seq` in it).
#[derive(Debug)]
struct Kept {
    seq: u64,
    json: Box<str>,
}

impl Kept {
    /// What it costs in memory: its text and its slot.
    fn cost(&self) -> usize {
        self.json.len() + std::mem::size_of::<Kept>()
    }
}

#[derive(Debug, Default)]
struct Ring {
    kept: VecDeque<Kept>,
    bytes: usize,
}

impl Ring {
    fn push(&mut self, kept: Kept) {
        while self.kept.len() == RING_OUTCOMES
            || (!self.kept.is_empty() && self.bytes + kept.cost() > RING_BYTES)
        {
            if let Some(old) = self.kept.pop_front() {
                self.bytes -= old.cost();
            }
        }
        self.bytes += kept.cost();
        self.kept.push_back(kept);
    }
}

/// Both rings and the sequence.
#[derive(Debug)]
pub struct Rings {
    acted: Ring,
    refused: Ring,
    next_seq: u64,
}

impl Default for Rings {
    fn default() -> Rings {
        Rings {
            acted: Ring::default(),
            refused: Ring::default(),
            next_seq: 1,
        }
    }
}

impl Rings {
    /// The next sequence number (taken).
    pub fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Keep `json` (numbered `seq`) in the ring of `which`.
    pub fn push(&mut self, which: Which, seq: u64, json: String) {
        let kept = Kept {
            seq,
            json: json.into_boxed_str(),
        };
        match which {
            Which::Refused => self.refused.push(kept),
            Which::Acted | Which::All => self.acted.push(kept),
        }
    }

    /// The kept outcomes of `which`, oldest first.
    fn chosen(&self, which: Which) -> Vec<&Kept> {
        match which {
            Which::Acted => self.acted.kept.iter().collect(),
            Which::Refused => self.refused.kept.iter().collect(),
            Which::All => {
                let mut all: Vec<&Kept> =
                    self.acted.kept.iter().chain(&self.refused.kept).collect();
                all.sort_by_key(|k| k.seq);
                all
            }
        }
    }

    /// A page as a JSON array, oldest first: with `since`, the first `limit`
    /// whose `seq` is greater; without, the newest `limit`.
    pub fn page(&self, which: Which, since: Option<u64>, limit: usize) -> String {
        let all = self.chosen(which);
        let chosen: Vec<&Kept> = match since {
            Some(after) => all
                .into_iter()
                .filter(|k| k.seq > after)
                .take(limit)
                .collect(),
            None => {
                let skip = all.len().saturating_sub(limit);
                all.into_iter().skip(skip).collect()
            }
        };
        let mut out =
            String::with_capacity(chosen.iter().map(|k| k.json.len() + 1).sum::<usize>() + 2);
        out.push('[');
        for (i, k) in chosen.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&k.json);
        }
        out.push(']');
        out
    }

    /// Every kept outcome's JSON, oldest first.
    pub fn all(&self) -> Vec<&str> {
        self.chosen(Which::All)
            .into_iter()
            .map(|k| k.json.as_ref())
            .collect()
    }

    /// The memory the kept outcomes take, counted from what is stored.
    pub fn stored_bytes(&self) -> usize {
        self.acted
            .kept
            .iter()
            .chain(&self.refused.kept)
            .map(Kept::cost)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(text: &str) -> Vec<u64> {
        serde_json::from_str::<Vec<serde_json::Value>>(text)
            .unwrap_or_default()
            .iter()
            .filter_map(|o| o["seq"].as_u64())
            .collect()
    }

    fn push(r: &mut Rings, which: Which) -> u64 {
        let seq = r.next_seq();
        r.push(which, seq, format!(r#"{{"seq":{seq}}}"#));
        seq
    }

    #[test]
    fn a_storm_of_refusals_never_pushes_out_what_heal8s_did() {
        let mut r = Rings::default();
        let acted: Vec<u64> = (0..10).map(|_| push(&mut r, Which::Acted)).collect();
        for _ in 0..5 * RING_OUTCOMES {
            push(&mut r, Which::Refused);
        }
        assert_eq!(seqs(&r.page(Which::Acted, None, 512)), acted);
        let refused = seqs(&r.page(Which::Refused, None, 512));
        assert_eq!(refused.len(), RING_OUTCOMES);
        assert_eq!(refused.last(), Some(&(10 + 5 * RING_OUTCOMES as u64)));
        // the merged view is in sequence order and still pages by `since`
        let all = seqs(&r.page(Which::All, Some(0), 512));
        assert_eq!(&all[..10], acted.as_slice());
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        let newest = seqs(&r.page(Which::All, None, 3));
        assert_eq!(newest.len(), 3);
        assert!(newest.iter().all(|s| *s > 10));
        assert_eq!(
            seqs(&r.page(Which::Acted, Some(8), 5)),
            [9, 10],
            "a cursor works within one ring"
        );
    }
}
