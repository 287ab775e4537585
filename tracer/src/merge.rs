//! One trace from several live captures (one per broker vhost, as OpenStack-Ansible's vhost per
//! service needs): each capture stamps its records when it receives them, and their tasks hand
//! them over in whatever order they run, so records are held back for a short window and
//! released in timestamp order. A record arriving later than the window (a capture stalled for
//! longer) is still released, at once, and counted as late.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::oslo::AmqpRecord;

/// The hold window for several captures: far above the scheduling jitter between capture tasks,
/// far below the stitcher's idle timeout.
pub const MERGE_WINDOW: Duration = Duration::from_millis(250);

/// Records of several sources, released in timestamp order.
#[derive(Debug, Default)]
pub struct Merge {
    hold_us: i64,
    /// (timestamp, arrival number) orders equal timestamps by arrival.
    pending: BinaryHeap<Reverse<(i64, u64, Held)>>,
    arrivals: u64,
    released_up_to: Option<i64>,
    late: u64,
}

/// A record in the heap, ordered only by the key beside it.
#[derive(Debug)]
struct Held(AmqpRecord);

impl PartialEq for Held {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl Merge {
    /// A merge holding records for `hold` (zero for a single source: records pass at once).
    pub fn new(hold: Duration) -> Merge {
        Merge {
            hold_us: i64::try_from(hold.as_micros()).unwrap_or(i64::MAX),
            ..Merge::default()
        }
    }

    /// Takes one record.
    pub fn push(&mut self, record: AmqpRecord) {
        if self
            .released_up_to
            .is_some_and(|up_to| record.ts_us < up_to)
        {
            self.late += 1;
        }
        self.arrivals += 1;
        self.pending
            .push(Reverse((record.ts_us, self.arrivals, Held(record))));
    }

    /// The records stamped at least the window before `now_us`, in timestamp order; a late
    /// record is among them whatever its stamp.
    pub fn ready(&mut self, now_us: i64) -> Vec<AmqpRecord> {
        let horizon = now_us.saturating_sub(self.hold_us);
        let mut out = Vec::new();
        while let Some(Reverse((ts, _, _))) = self.pending.peek() {
            let late = self.released_up_to.is_some_and(|up_to| *ts < up_to);
            if *ts > horizon && !late {
                break;
            }
            let Some(Reverse((ts, _, Held(record)))) = self.pending.pop() else {
                break;
            };
            self.released_up_to = Some(self.released_up_to.map_or(ts, |up_to| up_to.max(ts)));
            out.push(record);
        }
        out
    }

    /// Every record still held, in timestamp order (at the end of the capture).
    pub fn drain(&mut self) -> Vec<AmqpRecord> {
        self.ready(i64::MAX)
    }

    /// How many records arrived after records stamped later had been released.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// How many records are held.
    pub fn held(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::oslo::Direction;

    fn record(ts_us: i64, tag: &str) -> AmqpRecord {
        AmqpRecord {
            ts_us,
            direction: Direction::Publish,
            exchange: tag.to_owned(),
            routing_key: String::new(),
            queue: None,
            expiration: None,
            body: Vec::new(),
        }
    }

    #[test]
    fn records_are_held_for_the_window_then_released_in_order() {
        let mut merge = Merge::new(Duration::from_millis(100));
        merge.push(record(1_000_000, "b"));
        merge.push(record(950_000, "a"));
        assert!(merge.ready(1_040_000).is_empty());
        let out: Vec<String> = merge
            .ready(1_100_000)
            .into_iter()
            .map(|r| r.exchange)
            .collect();
        assert_eq!(out, ["a", "b"]);
        assert_eq!(merge.late(), 0);
    }

    #[test]
    fn a_record_later_than_the_window_is_released_and_counted() {
        let mut merge = Merge::new(Duration::from_millis(100));
        merge.push(record(1_000, "a"));
        assert_eq!(merge.ready(200_000).len(), 1);
        merge.push(record(500, "late"));
        assert_eq!(merge.ready(200_001)[0].exchange, "late");
        assert_eq!(merge.late(), 1);
    }

    #[test]
    fn without_a_window_records_pass_at_once() {
        let mut merge = Merge::new(Duration::ZERO);
        merge.push(record(10, "a"));
        assert_eq!(merge.ready(10).len(), 1);
        assert_eq!(merge.held(), 0);
    }

    proptest! {
        /// Several sources, each in its own order, arriving interleaved with delays within the
        /// window: the merge releases every record once, in timestamp order.
        #[test]
        fn the_merge_is_ordered_and_loses_nothing(
            sources in prop::collection::vec(prop::collection::vec((0i64..1_000, 0i64..100_000), 0..40), 1..5),
        ) {
            let window = 100_000;
            let mut merge = Merge::new(Duration::from_micros(window as u64));
            // Each record: its stamp (increasing per source) and when it reaches the merge.
            let mut arrivals = Vec::new();
            for (source, steps) in sources.iter().enumerate() {
                let mut ts = 0;
                for (step, delay) in steps {
                    ts += step;
                    arrivals.push((ts + delay, ts, source));
                }
            }
            arrivals.sort();
            let mut out = Vec::new();
            for (arrival, ts, source) in &arrivals {
                out.extend(merge.ready(*arrival));
                merge.push(record(*ts, &source.to_string()));
            }
            out.extend(merge.drain());
            prop_assert_eq!(out.len(), arrivals.len());
            prop_assert!(out.windows(2).all(|w| w[0].ts_us <= w[1].ts_us));
            prop_assert_eq!(merge.late(), 0);
        }
    }
}
