//! Confstrata's measurements. For now: stage timings, one Prometheus
//! histogram per [`Phase`], summarised into percentiles for
//! `confstrata stats` and registered in a [`prometheus::Registry`] that the
//! metrics endpoint will export.
//!
//! ```
//! use confstrata_analytics::StageTimings;
//! use confstrata_core::timing::{Phase, Timings};
//! use std::time::Duration;
//!
//! let t = StageTimings::new();
//! for us in [10, 20, 30, 40, 1000] {
//!     t.observe(Phase::Resolve, Duration::from_micros(us));
//! }
//! let s = t.snapshot();
//! let resolve = s.stages.iter().find(|s| s.stage == "resolve").unwrap();
//! assert_eq!(resolve.count, 5);
//! assert!((resolve.sum_seconds - 0.0011).abs() < 1e-9);
//! assert!(resolve.p50_seconds >= 16e-6 && resolve.p50_seconds <= 32e-6);
//! ```

use std::time::Duration;

use confstrata_core::timing::{Phase, Timings};
/// Re-exported for the registry's type ([`StageTimings::registry`]).
pub use prometheus;
use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, Registry};

/// Bucket bounds, in seconds: powers of two from 1 µs to about 8.4 s, so a
/// percentile read from them is within a factor of two of the truth.
fn buckets() -> Vec<f64> {
    (0..24).map(|i| 1e-6 * f64::from(1u32 << i)).collect()
}

/// Phase timings and group-commit batch sizes, as Prometheus histograms.
pub struct StageTimings {
    registry: Registry,
    stages: Vec<Histogram>,
    batch: Histogram,
}

impl std::fmt::Debug for StageTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageTimings").finish_non_exhaustive()
    }
}

/// One stage's figures since the server started.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageSummary {
    /// The stage's name (`cache-lookup`, ...).
    pub stage: String,
    /// How many times it ran.
    pub count: u64,
    /// The time it took in all, in seconds.
    pub sum_seconds: f64,
    /// Median, 90th and 99th percentile, in seconds, interpolated within
    /// the histogram's buckets as Prometheus's `histogram_quantile` does.
    pub p50_seconds: f64,
    /// See `p50_seconds`.
    pub p90_seconds: f64,
    /// See `p50_seconds`.
    pub p99_seconds: f64,
}

/// Every stage's figures, and the sizes of group-commit transactions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TimingsSnapshot {
    /// One entry per stage, in [`Phase::ALL`] order.
    pub stages: Vec<StageSummary>,
    /// Transactions the store committed.
    pub batches: u64,
    /// Jobs (commits, audit records, settings) they carried.
    pub batched_jobs: u64,
}

impl Default for StageTimings {
    fn default() -> Self {
        Self::new()
    }
}

impl StageTimings {
    /// Empty histograms, registered in a fresh registry.
    pub fn new() -> StageTimings {
        let registry = Registry::new();
        let stages = Phase::ALL
            .iter()
            .map(|s| {
                let opts = HistogramOpts::new(
                    "confstrata_stage_seconds",
                    "Time spent in each stage of a request or commit",
                )
                .const_label("stage", s.as_str())
                .buckets(buckets());
                histogram(&registry, opts)
            })
            .collect();
        let batch = histogram(
            &registry,
            HistogramOpts::new(
                "confstrata_store_batch_jobs",
                "Jobs carried by one group-commit transaction",
            )
            .buckets((0..10).map(|i| f64::from(1u32 << i)).collect()),
        );
        StageTimings {
            registry,
            stages,
            batch,
        }
    }

    /// The registry the histograms are in (for a metrics endpoint).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every stage's figures now.
    pub fn snapshot(&self) -> TimingsSnapshot {
        let stages = Phase::ALL
            .iter()
            .zip(&self.stages)
            .map(|(stage, h)| {
                let counts = cumulative(h);
                StageSummary {
                    stage: stage.as_str().to_owned(),
                    count: h.get_sample_count(),
                    sum_seconds: h.get_sample_sum(),
                    p50_seconds: quantile(&counts, 0.50),
                    p90_seconds: quantile(&counts, 0.90),
                    p99_seconds: quantile(&counts, 0.99),
                }
            })
            .collect();
        TimingsSnapshot {
            stages,
            batches: self.batch.get_sample_count(),
            // Sizes are whole numbers well below 2^53: the sum is exact.
            batched_jobs: self.batch.get_sample_sum().round() as u64,
        }
    }
}

/// Creates a histogram and registers it; the options are fixed and valid
/// and the names distinct, so neither step can fail in practice, and if one
/// did the histogram still measures (it is only left out of the registry).
fn histogram(registry: &Registry, opts: HistogramOpts) -> Histogram {
    let h = Histogram::with_opts(opts.clone()).unwrap_or_else(|_| {
        // Only reachable with invalid options; fall back to default buckets.
        #[allow(clippy::expect_used, reason = "default options are valid")]
        Histogram::with_opts(HistogramOpts::new("confstrata_unnamed", "fallback"))
            .expect("default histogram options are valid")
    });
    let _ = registry.register(Box::new(h.clone()));
    h
}

/// `(upper bound, cumulative count)` per bucket, with `+Inf` last.
fn cumulative(h: &Histogram) -> Vec<(f64, u64)> {
    let mut out = Vec::new();
    for family in h.collect() {
        for metric in family.get_metric() {
            let hist = metric.get_histogram();
            for b in hist.get_bucket() {
                out.push((b.upper_bound(), b.cumulative_count()));
            }
            out.push((f64::INFINITY, hist.get_sample_count()));
        }
    }
    out
}

/// The `q` quantile, interpolated linearly inside its bucket (the last
/// finite bound stands for anything beyond it); 0 with no samples.
fn quantile(buckets: &[(f64, u64)], q: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return 0.0;
    };
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(bound, count) in buckets {
        if count as f64 >= rank {
            if bound.is_infinite() {
                return lower.0;
            }
            let in_bucket = (count - lower.1) as f64;
            if in_bucket == 0.0 {
                return bound;
            }
            return lower.0 + (bound - lower.0) * (rank - lower.1 as f64) / in_bucket;
        }
        lower = (bound, count);
    }
    lower.0
}

impl Timings for StageTimings {
    fn observe(&self, stage: Phase, elapsed: Duration) {
        if let Some(h) = self.stages.get(stage.index()) {
            h.observe(elapsed.as_secs_f64());
        }
    }

    fn batch(&self, size: usize) {
        self.batch.observe(size as f64);
    }
}

#[cfg(test)]
mod tests;
