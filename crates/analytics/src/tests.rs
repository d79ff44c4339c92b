use super::*;

#[test]
fn percentiles_fall_in_the_bucket_of_the_true_value() {
    let t = StageTimings::new();
    // 99 fast commits and one slow one.
    for _ in 0..99 {
        t.observe(Phase::Commit, Duration::from_micros(100));
    }
    t.observe(Phase::Commit, Duration::from_millis(50));
    let s = t.snapshot();
    let c = &s.stages[Phase::Commit.index()];
    assert_eq!(c.stage, "commit");
    assert_eq!(c.count, 100);
    // 100 µs lies in (64 µs, 128 µs].
    assert!(c.p50_seconds > 64e-6 && c.p50_seconds <= 128e-6, "{c:?}");
    assert!(c.p90_seconds > 64e-6 && c.p90_seconds <= 128e-6, "{c:?}");
    // The 99th of 100 samples is still a fast one; the max is not a percentile.
    assert!(c.p99_seconds <= 128e-6, "{c:?}");
    // Stages nobody timed are empty, not missing.
    let v = &s.stages[Phase::Validate.index()];
    assert_eq!((v.count, v.p99_seconds), (0, 0.0));
}

#[test]
fn slow_tail_shows_in_p99() {
    let t = StageTimings::new();
    for _ in 0..90 {
        t.observe(Phase::Fsync, Duration::from_micros(300));
    }
    for _ in 0..10 {
        t.observe(Phase::Fsync, Duration::from_millis(20));
    }
    let f = &t.snapshot().stages[Phase::Fsync.index()];
    assert!(f.p99_seconds > 16e-3 && f.p99_seconds <= 33e-3, "{f:?}");
}

#[test]
fn beyond_the_last_bucket_reports_the_last_bound() {
    let t = StageTimings::new();
    t.observe(Phase::Resolve, Duration::from_secs(60));
    let r = &t.snapshot().stages[Phase::Resolve.index()];
    assert!(r.p50_seconds >= 4.0 && r.p50_seconds < 60.0, "{r:?}");
}

#[test]
fn batch_sizes_are_counted() {
    let t = StageTimings::new();
    t.batch(3);
    t.batch(5);
    let s = t.snapshot();
    assert_eq!((s.batches, s.batched_jobs), (2, 8));
}

#[test]
fn histograms_are_registered_for_export() {
    let t = StageTimings::new();
    t.observe(Phase::Authorize, Duration::from_nanos(300));
    let families = t.registry().gather();
    let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    assert!(names.contains(&"confstrata_stage_seconds"), "{names:?}");
    assert!(names.contains(&"confstrata_store_batch_jobs"), "{names:?}");
}
