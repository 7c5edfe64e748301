//! Time-chunk locks of ingest tasks, Druid's way: INSERTs share their datasource, a
//! REPLACE holds its OVERWRITE intervals exclusively. A task that cannot get its lock
//! waits; after the timeout it fails with `InsertLockPreempted`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use grove_common::Interval;
use tokio::sync::Notify;

/// Lock mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// INSERT: compatible with other INSERTs.
    Shared,
    /// REPLACE: compatible with nothing overlapping.
    Exclusive,
}

#[derive(Debug, Clone)]
struct Held {
    id: u64,
    data_source: String,
    intervals: Vec<Interval>,
    mode: LockMode,
}

impl Held {
    fn conflicts(&self, data_source: &str, intervals: &[Interval], mode: LockMode) -> bool {
        self.data_source == data_source
            && (self.mode == LockMode::Exclusive || mode == LockMode::Exclusive)
            && self
                .intervals
                .iter()
                .any(|a| intervals.iter().any(|b| a.overlaps(b)))
    }
}

#[derive(Debug, Default)]
struct State {
    held: Vec<Held>,
    next_id: u64,
}

/// The lock table of one server.
#[derive(Debug, Default)]
pub struct LockManager {
    state: Mutex<State>,
    released: Notify,
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct LockGuard {
    manager: Arc<LockManager>,
    id: u64,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = self.manager.state.lock() {
            s.held.retain(|h| h.id != self.id);
        }
        self.manager.released.notify_waiters();
    }
}

impl LockManager {
    /// Waits up to `timeout` for a lock; `None` on timeout.
    pub async fn acquire(
        self: &Arc<Self>,
        data_source: &str,
        intervals: Vec<Interval>,
        mode: LockMode,
        timeout: Duration,
    ) -> Option<LockGuard> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let Ok(mut s) = self.state.lock() else {
                    return None;
                };
                if !s
                    .held
                    .iter()
                    .any(|h| h.conflicts(data_source, &intervals, mode))
                {
                    s.next_id += 1;
                    let id = s.next_id;
                    s.held.push(Held {
                        id,
                        data_source: data_source.to_string(),
                        intervals,
                        mode,
                    });
                    return Some(LockGuard {
                        manager: Arc::clone(self),
                        id,
                    });
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[tokio::test]
    async fn inserts_share_and_replace_excludes() {
        let m = Arc::new(LockManager::default());
        let t = Duration::from_millis(50);
        let all = vec![Interval::eternity()];
        let a = m
            .acquire("w", all.clone(), LockMode::Shared, t)
            .await
            .unwrap();
        let b = m
            .acquire("w", all.clone(), LockMode::Shared, t)
            .await
            .unwrap();
        assert!(
            m.acquire("w", vec![Interval::new(0, DAY)], LockMode::Exclusive, t)
                .await
                .is_none()
        );
        assert!(
            m.acquire("other", all.clone(), LockMode::Exclusive, t)
                .await
                .is_some()
        );
        drop(a);
        drop(b);
        let r = m
            .acquire("w", vec![Interval::new(0, DAY)], LockMode::Exclusive, t)
            .await
            .unwrap();
        // A disjoint REPLACE proceeds; an overlapping one waits until release.
        assert!(
            m.acquire(
                "w",
                vec![Interval::new(DAY, 2 * DAY)],
                LockMode::Exclusive,
                t
            )
            .await
            .is_some()
        );
        let m2 = Arc::clone(&m);
        let waiter = tokio::spawn(async move {
            m2.acquire(
                "w",
                vec![Interval::new(0, DAY)],
                LockMode::Exclusive,
                Duration::from_secs(5),
            )
            .await
            .is_some()
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(r);
        assert!(waiter.await.unwrap());
    }
}
