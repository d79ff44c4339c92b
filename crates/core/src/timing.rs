//! Stage timings: what each phase of a request or commit took, reported to a sink
//! that the server keeps (histograms in `confstrata-analytics`).
//!
//! The stages are fixed so that recording one is an index into an array,
//! not a lookup by name: a timing costs two clock reads and a few atomic
//! adds, cheap enough to stay on for every request.
//!
//! ```
//! use confstrata_core::timing::{Phase, Timings};
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! #[derive(Default)]
//! struct Count(AtomicU64);
//! impl Timings for Count {
//!     fn observe(&self, _: Phase, _: std::time::Duration) {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//! let c = Count::default();
//! let t = c.start();
//! t.stop(&c, Phase::Resolve);
//! assert_eq!(c.0.load(Ordering::Relaxed), 1);
//! assert_eq!("cache-lookup".parse::<Phase>(), Ok(Phase::CacheLookup));
//! ```

use std::time::{Duration, Instant};

/// A phase of a request or of a commit, as the stage timings name it (not
/// the validation chain's [`Stage`](crate::validation::Stage)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Checking a bearer token.
    Authenticate,
    /// The policy decisions of a request.
    Authorize,
    /// Looking a resolved view up in the view cache.
    CacheLookup,
    /// Reading a context's layers from the store and merging them (a cache miss).
    Resolve,
    /// Opening or masking sealed values for the caller.
    Present,
    /// Running the validation chains a change set needs.
    Validate,
    /// A commit through the engine, from the first check to the acknowledgement.
    Commit,
    /// One group-commit transaction of the store, from `BEGIN` to the end of `COMMIT`.
    StoreBatch,
    /// The `COMMIT` of a store transaction (the WAL write and its fsync).
    Fsync,
}

impl Phase {
    /// Every stage, in a fixed order (the order of [`Phase::index`]).
    pub const ALL: [Phase; 9] = [
        Phase::Authenticate,
        Phase::Authorize,
        Phase::CacheLookup,
        Phase::Resolve,
        Phase::Present,
        Phase::Validate,
        Phase::Commit,
        Phase::StoreBatch,
        Phase::Fsync,
    ];

    /// The stage's position in [`Phase::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name used in reports and metrics (`cache-lookup`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Authenticate => "authenticate",
            Phase::Authorize => "authorize",
            Phase::CacheLookup => "cache-lookup",
            Phase::Resolve => "resolve",
            Phase::Present => "present",
            Phase::Validate => "validate",
            Phase::Commit => "commit",
            Phase::StoreBatch => "store-batch",
            Phase::Fsync => "fsync",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Phase, String> {
        Phase::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Phase::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown stage {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// Where timings go.
pub trait Timings: Send + Sync {
    /// Records that `stage` took `elapsed`.
    fn observe(&self, stage: Phase, elapsed: Duration);

    /// Records the number of jobs one group-commit transaction carried.
    fn batch(&self, _size: usize) {}

    /// Starts timing a stage.
    fn start(&self) -> Started {
        Started(Instant::now())
    }
}

/// A stage being timed: see [`Timings::start`].
#[derive(Debug, Clone, Copy)]
#[must_use = "a started timing records nothing until it is stopped"]
pub struct Started(Instant);

impl Started {
    /// Records the time since the start as `stage`.
    pub fn stop(self, timings: &(impl Timings + ?Sized), stage: Phase) {
        timings.observe(stage, self.0.elapsed());
    }
}

/// Timings that record nothing (the default of a store nobody measures).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTimings;

impl Timings for NoTimings {
    fn observe(&self, _: Phase, _: Duration) {}
}
