//! Timing profiles: the learned latency distribution of one step (the time from the previous step
//! of a variant to this one) and the bound beyond which a step is late.
//!
//! Latencies go into a log-scale histogram (buckets 5 % wide), which is small, mergeable and
//! deterministic, so the store stays compact however many runs it learns from.

use serde::{Deserialize, Serialize};

/// Relative width of a histogram bucket.
const BUCKET_GROWTH: f64 = 1.05;

/// How a step's time bound follows from its learned latencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimingPolicy {
    /// The bound is at least this multiple of the learned p99.
    pub p99_multiplier: f64,
    /// The bound is at least the learned p99 plus this margin, so that steps learned from few
    /// fast samples are not flagged for ordinary scheduling jitter.
    pub min_margin_us: u64,
}

impl Default for TimingPolicy {
    fn default() -> Self {
        TimingPolicy {
            p99_multiplier: 4.0,
            min_margin_us: 1_000_000,
        }
    }
}

/// A latency histogram with log-scale buckets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyProfile {
    /// Number of samples.
    pub count: u64,
    /// The largest sample, in microseconds.
    pub max_us: u64,
    /// `[bucket, count]` pairs sorted by bucket; bucket `b > 0` holds latencies up to `1.05^b` µs.
    pub buckets: Vec<[u64; 2]>,
}

impl LatencyProfile {
    /// Adds one latency sample.
    pub fn record(&mut self, latency_us: u64) {
        let bucket = bucket_of(latency_us);
        self.count += 1;
        self.max_us = self.max_us.max(latency_us);
        match self.buckets.binary_search_by_key(&bucket, |pair| pair[0]) {
            Ok(index) => self.buckets[index][1] += 1,
            Err(index) => self.buckets.insert(index, [bucket, 1]),
        }
    }

    /// The latency at quantile `q` (`0.0..=1.0`), or `None` without samples. Values are bucket
    /// upper edges, capped at the largest sample.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &[bucket, count] in &self.buckets {
            seen += count;
            if seen >= rank {
                return Some(upper_edge(bucket).min(self.max_us));
            }
        }
        Some(self.max_us)
    }

    /// The median latency.
    pub fn p50(&self) -> Option<u64> {
        self.quantile(0.5)
    }

    /// The 99th percentile latency.
    pub fn p99(&self) -> Option<u64> {
        self.quantile(0.99)
    }

    /// The time after which this step is late, or `None` without samples.
    pub fn bound(&self, policy: &TimingPolicy) -> Option<u64> {
        let p99 = self.p99()?;
        let scaled = (p99 as f64 * policy.p99_multiplier).ceil() as u64;
        Some(scaled.max(p99.saturating_add(policy.min_margin_us)))
    }
}

fn bucket_of(latency_us: u64) -> u64 {
    if latency_us == 0 {
        0
    } else {
        1 + ((latency_us as f64).ln() / BUCKET_GROWTH.ln()).floor() as u64
    }
}

fn upper_edge(bucket: u64) -> u64 {
    if bucket == 0 {
        0
    } else {
        BUCKET_GROWTH.powf(bucket as f64).ceil() as u64
    }
}

/// Formats microseconds for people: `850 µs`, `12.3 ms`, `19.0 s`.
pub fn human_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{:.1} s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_samples() {
        let mut profile = LatencyProfile::default();
        for latency in 1..=100u64 {
            profile.record(latency * 1_000);
        }
        let p50 = profile.p50().unwrap();
        let p99 = profile.p99().unwrap();
        assert!((48_000..=53_000).contains(&p50), "p50 {p50}");
        assert!((97_000..=100_000).contains(&p99), "p99 {p99}");
        assert_eq!(profile.quantile(1.0), Some(100_000));
    }

    #[test]
    fn bound_takes_the_larger_of_multiple_and_margin() {
        let policy = TimingPolicy::default();
        let mut fast = LatencyProfile::default();
        fast.record(10_000);
        assert_eq!(fast.bound(&policy), Some(1_010_000));
        let mut slow = LatencyProfile::default();
        slow.record(2_000_000);
        assert_eq!(slow.bound(&policy), Some(8_000_000));
        assert_eq!(LatencyProfile::default().bound(&policy), None);
    }

    #[test]
    fn zero_latency_is_its_own_bucket() {
        let mut profile = LatencyProfile::default();
        profile.record(0);
        assert_eq!(profile.p50(), Some(0));
    }

    #[test]
    fn human_units() {
        assert_eq!(human_us(850), "850 µs");
        assert_eq!(human_us(12_345), "12.3 ms");
        assert_eq!(human_us(19_000_000), "19.0 s");
    }
}
