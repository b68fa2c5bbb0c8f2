//! Retrying write conflicts in process.
//!
//! DynamoDB cancels a transaction that touches an item another transaction
//! holds (`TransactionCanceledException`, reason `TransactionConflict`) and
//! refuses a plain write to such an item (`TransactionConflictException`).
//! Nothing was written; the same work a moment later usually succeeds. Giving
//! the message back to SQS instead would cost the visibility timeout (180 s)
//! and break the 5-minute first-contact rule, so conflicts are retried here,
//! with full-jitter exponential backoff, while the Lambda has time left.
//! The operation is re-run from the start, so it re-reads and re-decides.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::StoreError;

/// Backoff bounds and the time kept back for the rest of the invocation.
#[derive(Debug, Clone, Copy)]
pub struct ConflictRetry {
    /// Upper bound of the first wait (doubles each retry).
    pub base: Duration,
    /// Upper bound of any one wait.
    pub max_wait: Duration,
    /// Never start a wait that would end closer than this to the deadline:
    /// the invocation still has to report its batch item failures.
    pub reserve: Duration,
}

impl Default for ConflictRetry {
    fn default() -> Self {
        ConflictRetry {
            base: Duration::from_millis(10),
            max_wait: Duration::from_millis(500),
            reserve: Duration::from_secs(2),
        }
    }
}

impl ConflictRetry {
    /// The bound of the wait before retry number `retry` (0-based).
    pub fn bound(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max_wait)
    }

    /// A wait drawn uniformly from `[0, bound(retry)]` (full jitter: callers
    /// that conflicted together do not retry together).
    pub fn wait(&self, retry: u32) -> Duration {
        let bound = self.bound(retry).as_micros() as u64;
        Duration::from_micros(fastrand::u64(0..=bound))
    }

    /// Runs `op` until it succeeds, fails with something other than a
    /// conflict, or the next wait would end within `reserve` of `deadline`
    /// (then the last conflict is returned). Each retry is counted in
    /// `retried`.
    pub async fn run<T, E, F, Fut>(
        &self,
        deadline: Instant,
        retried: &AtomicU64,
        mut op: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: IsConflict,
    {
        let mut retry = 0u32;
        loop {
            match op().await {
                Err(err) if err.is_conflict() => {
                    let wait = self.wait(retry);
                    if Instant::now() + wait + self.reserve >= deadline {
                        tracing::warn!(retries = retry, "write conflict and no time left to retry");
                        return Err(err);
                    }
                    retried.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        retry,
                        wait_ms = wait.as_millis() as u64,
                        "write conflict; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                other => return other,
            }
        }
    }
}

/// Errors that may be a write conflict (retry) rather than a failure.
pub trait IsConflict {
    fn is_conflict(&self) -> bool;
}

impl IsConflict for StoreError {
    fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict() -> StoreError {
        StoreError::Conflict {
            operation: "TransactWriteItems",
        }
    }

    fn fast() -> ConflictRetry {
        ConflictRetry {
            base: Duration::from_millis(1),
            max_wait: Duration::from_millis(4),
            reserve: Duration::from_millis(0),
        }
    }

    #[tokio::test]
    async fn retries_conflicts_until_the_operation_succeeds() {
        let retried = AtomicU64::new(0);
        let mut calls = 0;
        let out = fast()
            .run(Instant::now() + Duration::from_secs(5), &retried, || {
                calls += 1;
                let n = calls;
                async move {
                    if n <= 3 {
                        Err(conflict())
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(out.unwrap(), 4);
        assert_eq!(retried.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let retried = AtomicU64::new(0);
        let mut calls = 0;
        let out: Result<(), StoreError> = fast()
            .run(Instant::now() + Duration::from_secs(5), &retried, || {
                calls += 1;
                async { Err(StoreError::Malformed("x".into())) }
            })
            .await;
        assert!(matches!(out, Err(StoreError::Malformed(_))));
        assert_eq!((calls, retried.load(Ordering::Relaxed)), (1, 0));
    }

    #[tokio::test]
    async fn gives_up_when_the_deadline_is_near() {
        let retried = AtomicU64::new(0);
        let policy = ConflictRetry {
            reserve: Duration::from_millis(50),
            ..fast()
        };
        let started = Instant::now();
        let out: Result<(), StoreError> = policy
            .run(started + Duration::from_millis(200), &retried, || async {
                Err(conflict())
            })
            .await;
        assert!(matches!(out, Err(StoreError::Conflict { .. })));
        // It retried while there was time, and stopped before the deadline.
        assert!(retried.load(Ordering::Relaxed) > 0);
        assert!(started.elapsed() < Duration::from_millis(200));
    }

    #[test]
    fn waits_grow_exponentially_within_bounds() {
        let p = ConflictRetry::default();
        assert_eq!(p.bound(0), Duration::from_millis(10));
        assert_eq!(p.bound(1), Duration::from_millis(20));
        assert_eq!(p.bound(3), Duration::from_millis(80));
        assert_eq!(p.bound(10), Duration::from_millis(500));
        assert_eq!(p.bound(u32::MAX), Duration::from_millis(500));
        for retry in 0..20 {
            assert!(p.wait(retry) <= p.bound(retry));
        }
        // Jittered: not every draw is the same.
        let draws: std::collections::HashSet<Duration> = (0..50).map(|_| p.wait(4)).collect();
        assert!(draws.len() > 1);
    }
}
