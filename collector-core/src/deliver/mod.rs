//! Delivery of events to sinks, losing nothing: `publish` writes every event to each
//! sink's disk spool, `fsync`ed, before it returns, and a worker per sink sends the spool's
//! batches oldest first, retrying transient failures with exponential backoff and jitter
//! (never sooner than a receiver's Retry-After), setting aside batches a receiver rejects,
//! and stopping for good on 410.
//!
//! Delivery is at least once: a batch leaves the spool only after its receiver took it,
//! so a crash between the two sends it again, under the same event ids. One process owns a
//! sink's spool folder at a time (a file lock); others add their batches to it and leave
//! sending, and deleting, to the owner.

pub mod events;
pub mod spool;

use driftwatch_plugin_sdk::{Sink, SinkError, SinkEvent};
use serde::Serialize;
use spool::{Segment, Spool, SpoolError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

pub use driftwatch_plugin_sdk::factory::DeliveryPolicy;

// Retry-After beyond this is treated as this: a receiver's typo must not park a sink for
// days.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// The delay before attempt `attempt + 1`, after `attempt` failures: exponential from
/// `retry_initial`, capped at `retry_max`, with equal jitter so a fleet of agents does not
/// retry in step.
pub fn backoff(policy: &DeliveryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .retry_initial
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let cap = exp.min(policy.retry_max);
    let half = cap / 2;
    half + half.mul_f64(fastrand::f64())
}

/// How a sink is doing, for health checks and the scan's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// The last attempt succeeded, or none was needed.
    Healthy,
    /// The last attempt failed and will be retried.
    Retrying {
        /// The last error.
        error: String,
    },
    /// The receiver answered 410 Gone: nothing is sent until the spool's `DISABLED` file is
    /// deleted; events keep being spooled.
    Disabled {
        /// Its answer.
        reason: String,
    },
}

/// Live counters of one sink.
#[derive(Debug)]
pub struct SinkStats {
    name: String,
    kind: String,
    sent: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    spooled: AtomicU64,
    dropped: AtomicU64,
    health: Mutex<Health>,
}

/// A snapshot of one sink's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkReport {
    /// Entry name.
    pub name: String,
    /// Entry kind.
    pub kind: String,
    /// Events the receiver took.
    pub sent: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Attempts that repeated a failed one.
    pub retried: u64,
    /// Events waiting in the spool.
    pub spooled: u64,
    /// Events given up: rejected by the receiver, unreadable, or over the spool's limit.
    pub dropped: u64,
    /// How it is doing.
    pub health: Health,
}

impl SinkStats {
    fn new(name: &str, kind: &str) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            health: Mutex::new(Health::Healthy),
        }
    }

    fn set_health(&self, h: Health) {
        *self.health.lock().unwrap_or_else(|p| p.into_inner()) = h;
    }

    fn unspool(&self, n: u64) {
        let _ = self
            .spooled
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// The counters now.
    pub fn snapshot(&self) -> SinkReport {
        SinkReport {
            name: self.name.clone(),
            kind: self.kind.clone(),
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            spooled: self.spooled.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            health: self
                .health
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// A sink with its entry's kind and delivery policy, ready to start.
pub struct ConfiguredSink {
    /// The sink.
    pub sink: Arc<dyn Sink>,
    /// Its entry's kind.
    pub kind: String,
    /// Its queueing and retry settings.
    pub policy: DeliveryPolicy,
}

/// Why `publish` could not keep events: the sinks whose spool refused them. Those events
/// are not queued for that sink; other sinks have them.
#[derive(Debug)]
pub struct PublishError {
    /// Each failing sink's name and why its spool refused the events.
    pub failures: Vec<(String, SpoolError)>,
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, e)) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "sink `{name}`: events not spooled: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PublishError {}

impl PublishError {
    /// One `(sink, message)` per failing sink, for a run's list of sink errors.
    pub fn by_sink(&self) -> Vec<(String, String)> {
        self.failures
            .iter()
            .map(|(n, e)| (n.clone(), format!("events not spooled: {e}")))
            .collect()
    }
}

/// What `publish` and a sink's worker share: the spool and the segments waiting in it.
struct Lane {
    name: String,
    spool: Spool,
    stats: Arc<SinkStats>,
    batch: usize,
    // Segments waiting, by path: names sort in the order they were written.
    pending: Mutex<BTreeMap<PathBuf, u64>>,
    wake: Notify,
}

impl Lane {
    fn pending(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, u64>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn front(&self) -> Option<Segment> {
        self.pending().first_key_value().map(|(p, n)| Segment {
            path: p.clone(),
            events: *n,
        })
    }

    fn forget(&self, seg: &Segment) {
        self.pending().remove(&seg.path);
    }

    /// Takes in the segments other processes (or earlier runs) left in the folder; only
    /// its owner calls this. Returns the events added.
    fn adopt(&self) -> u64 {
        let known: Vec<PathBuf> = self.pending().keys().cloned().collect();
        let found = match self.spool.segments_where(|p| {
            !self.spool.is_own(p) && known.binary_search_by(|k| k.as_path().cmp(p)).is_err()
        }) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(sink = %self.name, error = %e, "cannot list the spool");
                return 0;
            }
        };
        let n: u64 = found.iter().map(|s| s.events).sum();
        if n > 0 {
            tracing::info!(sink = %self.name, events = n, segments = found.len(), "sending what earlier runs or other processes spooled");
            self.stats.spooled.fetch_add(n, Ordering::Relaxed);
            self.pending()
                .extend(found.into_iter().map(|s| (s.path, s.events)));
        }
        n
    }

    /// Drops this instance's segments that are gone from the folder: the folder's owner
    /// delivered them (or set them aside).
    fn prune_delivered_elsewhere(&self) {
        let mut gone = 0;
        self.pending().retain(|p, n| {
            let keep = p.exists();
            if !keep {
                gone += *n;
            }
            keep
        });
        if gone > 0 {
            self.stats.unspool(gone);
            tracing::debug!(sink = %self.name, events = gone, "delivered by the process that owns the spool");
        }
    }
}

/// Running delivery to a set of sinks.
pub struct Delivery {
    lanes: Vec<Arc<Lane>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    finish: watch::Sender<Option<Instant>>,
    flush: Vec<Duration>,
}

/// A folder name for a sink: its name with anything but `[A-Za-z0-9._-]` replaced.
pub fn spool_folder(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

// How often a process waiting for a spool's lock tries again, and how often an idle owner
// looks for batches other processes spooled.
const WAITER_POLL: Duration = Duration::from_millis(200);
const OWNER_POLL: Duration = Duration::from_secs(1);

impl Delivery {
    /// Opens each sink's spool under `spool_root`, takes its lock if no other process holds
    /// it, and starts its worker, which first sends whatever earlier runs left there. Must
    /// be called inside a Tokio runtime.
    pub fn start(sinks: Vec<ConfiguredSink>, spool_root: &Path) -> Result<Self, SpoolError> {
        let (finish, _) = watch::channel(None);
        let mut d = Self {
            lanes: Vec::new(),
            workers: Vec::new(),
            finish,
            flush: Vec::new(),
        };
        for c in sinks {
            let dir = spool_root.join(spool_folder(c.sink.name()));
            let spool = Spool::open(&dir, c.policy.max_spool_bytes)?;
            if !spool.try_own()? {
                tracing::info!(sink = c.sink.name(), spool = %dir.display(), "another driftwatch process owns this spool: events are spooled here and sent by it, or by this one once it lets go");
            }
            let batch = match c.policy.batch_size {
                0 => c.sink.max_batch(),
                n => n.min(c.sink.max_batch()),
            }
            .max(1);
            let lane = Arc::new(Lane {
                name: c.sink.name().to_string(),
                spool,
                stats: Arc::new(SinkStats::new(c.sink.name(), &c.kind)),
                batch,
                pending: Mutex::new(BTreeMap::new()),
                wake: Notify::new(),
            });
            // Listed before any publish: what is there now is earlier runs' work.
            if lane.spool.owns() {
                lane.adopt();
            }
            d.flush.push(c.policy.flush_timeout);
            let worker = Worker {
                sink: c.sink,
                lane: lane.clone(),
                policy: c.policy,
                finish: d.finish.subscribe(),
            };
            d.workers.push(tokio::spawn(worker.run()));
            d.lanes.push(lane);
        }
        Ok(d)
    }

    /// Writes the events to every sink's spool, `fsync`ed, then wakes the sinks' workers:
    /// when this returns `Ok`, a kill loses none of them. A sink whose spool refuses them
    /// (full, unwritable) counts them as dropped and is named in the error.
    pub async fn publish(&self, events: Vec<SinkEvent>) -> Result<(), PublishError> {
        if events.is_empty() || self.lanes.is_empty() {
            return Ok(());
        }
        let n = events.len() as u64;
        let lines = tokio::task::spawn_blocking(move || {
            events
                .iter()
                .map(spool::encode)
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r.map_err(std::io::Error::from));
        let lines = match lines {
            Ok(l) => Arc::new(l),
            Err(e) => {
                return Err(PublishError {
                    failures: self
                        .lanes
                        .iter()
                        .map(|l| {
                            (
                                l.name.clone(),
                                SpoolError::Io {
                                    path: l.spool.dir().to_path_buf(),
                                    source: std::io::Error::new(e.kind(), e.to_string()),
                                },
                            )
                        })
                        .collect(),
                })
            }
        };
        let mut failures = Vec::new();
        for lane in &self.lanes {
            let (l, ls) = (lane.clone(), lines.clone());
            let written = tokio::task::spawn_blocking(move || l.spool.write_lines(&ls, l.batch))
                .await
                .unwrap_or_else(|e| {
                    Err(SpoolError::Io {
                        path: lane.spool.dir().to_path_buf(),
                        source: std::io::Error::other(e.to_string()),
                    })
                });
            match written {
                Ok(segs) => {
                    tracing::debug!(sink = %lane.name, events = n, segments = segs.len(), "events spooled");
                    lane.stats.spooled.fetch_add(n, Ordering::Relaxed);
                    lane.pending()
                        .extend(segs.into_iter().map(|s| (s.path, s.events)));
                    lane.wake.notify_one();
                }
                Err(e) => {
                    lane.stats.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(sink = %lane.name, error = %e, events = n, "events dropped: the spool could not keep them");
                    failures.push((lane.name.clone(), e));
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(PublishError { failures })
        }
    }

    /// Every sink's counters now.
    pub fn stats(&self) -> Vec<SinkReport> {
        self.lanes.iter().map(|l| l.stats.snapshot()).collect()
    }

    /// Waits until every sink has sent its spool or reached its `flush_timeout` (the
    /// longest applies to all); what is left stays spooled for the next run. A sink whose
    /// spool another process owns waits until that process delivered this one's batches,
    /// or until it can take the spool over. The spools' locks are released on return.
    pub async fn finish(mut self) -> Vec<SinkReport> {
        let longest = self.flush.iter().copied().max().unwrap_or_default();
        let _ = self.finish.send(Some(Instant::now() + longest));
        for w in self.workers.drain(..) {
            if let Err(e) = w.await {
                tracing::error!(error = %e, "a sink worker stopped abnormally");
            }
        }
        self.stats()
    }
}

struct Worker {
    sink: Arc<dyn Sink>,
    lane: Arc<Lane>,
    policy: DeliveryPolicy,
    finish: watch::Receiver<Option<Instant>>,
}

impl Worker {
    fn give_up(&self, seg: &Segment, why: &str) {
        let stats = &self.lane.stats;
        stats.dropped.fetch_add(seg.events, Ordering::Relaxed);
        stats.unspool(seg.events);
        match self.lane.spool.set_aside(seg) {
            Ok(to) => {
                tracing::error!(sink = self.sink.name(), error = why, events = seg.events, kept = %to.display(), "batch set aside")
            }
            Err(e) => {
                tracing::error!(sink = self.sink.name(), error = why, events = seg.events, also = %e, "batch dropped")
            }
        }
    }

    async fn run(mut self) {
        let name = self.sink.name().to_string();
        let lane = self.lane.clone();
        let stats = lane.stats.clone();
        let mut owner = lane.spool.owns();
        let mut disabled = lane.spool.disabled();
        if let Some(reason) = &disabled {
            stats.set_health(Health::Disabled {
                reason: reason.clone(),
            });
        }
        let mut attempts = 0u32;
        let mut next_try = Instant::now();
        let mut deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break;
            }
            if !owner {
                match lane.spool.try_own() {
                    Ok(true) => {
                        owner = true;
                        tracing::info!(sink = %name, "this process now owns the spool");
                        // Ours that the last owner delivered are gone; the rest is adopted.
                        lane.prune_delivered_elsewhere();
                        lane.adopt();
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(sink = %name, error = %e, "cannot lock the spool"),
                }
                disabled = lane.spool.disabled();
                if let Some(reason) = &disabled {
                    stats.set_health(Health::Disabled {
                        reason: reason.clone(),
                    });
                }
            }
            if owner && disabled.is_none() && now >= next_try {
                if let Some(seg) = lane.front() {
                    let events = match lane.spool.read(&seg) {
                        Ok(e) => e,
                        // Delivered by an earlier owner of the folder.
                        Err(e) if e.is_not_found() => {
                            lane.forget(&seg);
                            stats.unspool(seg.events);
                            continue;
                        }
                        Err(e) => {
                            lane.forget(&seg);
                            self.give_up(&seg, &e.to_string());
                            continue;
                        }
                    };
                    if attempts > 0 {
                        stats.retried.fetch_add(1, Ordering::Relaxed);
                    }
                    // The flush deadline bounds a send already in flight when it is set.
                    let sink = self.sink.clone();
                    let send = sink.send(&events);
                    tokio::pin!(send);
                    let sent = loop {
                        tokio::select! {
                            r = &mut send => break r,
                            _ = sleep_until_some(deadline) => {
                                break Err(SinkError::retryable("the flush deadline was reached"))
                            }
                            changed = self.finish.changed(), if deadline.is_none() => {
                                deadline = match changed {
                                    Ok(()) => *self.finish.borrow(),
                                    Err(_) => Some(Instant::now()),
                                };
                            }
                        }
                    };
                    match sent {
                        Ok(()) => {
                            lane.forget(&seg);
                            if let Err(e) = lane.spool.remove(&seg) {
                                tracing::error!(sink = %name, error = %e, "a delivered batch stays in the spool and will be sent again");
                            }
                            stats.sent.fetch_add(seg.events, Ordering::Relaxed);
                            stats.unspool(seg.events);
                            stats.set_health(Health::Healthy);
                            attempts = 0;
                        }
                        Err(SinkError::Retryable {
                            message,
                            retry_after,
                        }) => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            attempts += 1;
                            let wait = backoff(&self.policy, attempts)
                                .max(retry_after.unwrap_or_default().min(RETRY_AFTER_CAP));
                            tracing::warn!(sink = %name, error = %message, attempt = attempts, retry_in_ms = wait.as_millis() as u64, "delivery failed; will retry");
                            next_try = Instant::now() + wait;
                            stats.set_health(Health::Retrying { error: message });
                        }
                        Err(SinkError::Permanent(message)) => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            lane.forget(&seg);
                            self.give_up(&seg, &message);
                            attempts = 0;
                        }
                        Err(SinkError::Disabled(reason)) => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(sink = %name, reason = %reason, spool = %lane.spool.dir().display(), "the receiver disabled this endpoint; events stay spooled until the DISABLED file there is deleted");
                            if let Err(e) = lane.spool.disable(&reason) {
                                tracing::error!(sink = %name, error = %e, "cannot record that the sink is disabled");
                            }
                            stats.set_health(Health::Disabled {
                                reason: reason.clone(),
                            });
                            disabled = Some(reason);
                        }
                    }
                    continue;
                }
            }
            let idle = lane.pending().is_empty();
            if deadline.is_some() {
                if owner {
                    // Before leaving, take in what other processes spooled meanwhile.
                    if disabled.is_some() || (idle && lane.adopt() == 0) {
                        break;
                    }
                    if idle {
                        continue;
                    }
                } else {
                    lane.prune_delivered_elsewhere();
                    if disabled.is_some() || lane.pending().is_empty() {
                        break;
                    }
                }
            }
            let retry_at = (owner && disabled.is_none() && !idle).then_some(next_try);
            let poll = match (owner, idle) {
                (false, _) => Some(now + WAITER_POLL),
                (true, true) if disabled.is_none() => Some(now + OWNER_POLL),
                _ => None,
            };
            tokio::select! {
                _ = lane.wake.notified() => {}
                _ = sleep_until_some(retry_at) => {}
                _ = sleep_until_some(deadline) => {}
                _ = sleep_until_some(poll) => {
                    if owner {
                        lane.adopt();
                    }
                }
                changed = self.finish.changed(), if deadline.is_none() => {
                    deadline = match changed {
                        Ok(()) => *self.finish.borrow(),
                        Err(_) => Some(Instant::now()),
                    };
                }
            }
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftwatch_plugin_sdk::EventKind;
    use std::collections::{BTreeSet, VecDeque};

    /// A sink that answers from a script, then succeeds, recording when it was called.
    struct Scripted {
        script: Mutex<VecDeque<SinkError>>,
        calls: Mutex<Vec<(Instant, Vec<String>)>>,
    }

    #[async_trait::async_trait]
    impl Sink for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        fn max_batch(&self) -> usize {
            3
        }
        async fn send(&self, batch: &[SinkEvent]) -> Result<(), SinkError> {
            self.calls
                .lock()
                .unwrap()
                .push((Instant::now(), batch.iter().map(|e| e.id.clone()).collect()));
            match self.script.lock().unwrap().pop_front() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    }

    fn ev(i: usize) -> SinkEvent {
        SinkEvent {
            id: format!("e{i}"),
            kind: EventKind::DriftDetected,
            time: "2026-01-01T00:00:00Z".into(),
            scan_id: "s".into(),
            finding: None,
            scan: None,
        }
    }

    async fn deliver(
        script: Vec<SinkError>,
        policy: DeliveryPolicy,
        spool: &Path,
        n: usize,
    ) -> (Arc<Scripted>, SinkReport) {
        let sink = Arc::new(Scripted {
            script: Mutex::new(script.into()),
            calls: Mutex::new(Vec::new()),
        });
        let d = Delivery::start(
            vec![ConfiguredSink {
                sink: sink.clone(),
                kind: "test".into(),
                policy,
            }],
            spool,
        )
        .unwrap();
        d.publish((0..n).map(ev).collect()).await.unwrap();
        let r = d.finish().await.remove(0);
        (sink, r)
    }

    fn fast() -> DeliveryPolicy {
        DeliveryPolicy {
            retry_initial: Duration::from_millis(1),
            retry_max: Duration::from_millis(5),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn retry_after_is_honoured_and_every_batch_arrives_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let script = vec![SinkError::Retryable {
            message: "busy".into(),
            retry_after: Some(Duration::from_millis(300)),
        }];
        let (sink, r) = deliver(script, fast(), dir.path(), 7).await;
        let calls = sink.calls.lock().unwrap().clone();
        assert!(calls[1].0 - calls[0].0 >= Duration::from_millis(300));
        assert_eq!(calls[0].1, calls[1].1, "the same batch again");
        let ids: Vec<String> = calls[1..].iter().flat_map(|c| c.1.clone()).collect();
        assert_eq!(ids, (0..7).map(|i| format!("e{i}")).collect::<Vec<_>>());
        assert_eq!(
            (r.sent, r.failed, r.retried, r.spooled, r.dropped),
            (7, 1, 1, 0, 0)
        );
        assert_eq!(r.health, Health::Healthy);
    }

    #[tokio::test]
    async fn a_rejected_batch_is_set_aside_and_the_rest_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let (_, r) = deliver(
            vec![SinkError::Permanent("400".into())],
            fast(),
            dir.path(),
            5,
        )
        .await;
        assert_eq!((r.sent, r.dropped, r.spooled), (2, 3, 0));
        let kept = std::fs::read_dir(dir.path().join("scripted/rejected"))
            .unwrap()
            .count();
        assert_eq!(kept, 1);
    }

    #[tokio::test]
    async fn what_the_deadline_leaves_stays_spooled_for_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let always: Vec<SinkError> = (0..10_000).map(|_| SinkError::retryable("down")).collect();
        let policy = DeliveryPolicy {
            flush_timeout: Duration::from_millis(100),
            ..fast()
        };
        let (_, r) = deliver(always, policy, dir.path(), 5).await;
        assert_eq!((r.sent, r.spooled), (0, 5));
        assert!(matches!(r.health, Health::Retrying { .. }));
        // The next run sends the earlier run's events first.
        let (sink, r) = deliver(Vec::new(), fast(), dir.path(), 1).await;
        assert_eq!((r.sent, r.spooled), (6, 0));
        let ids: Vec<String> = sink
            .calls
            .lock()
            .unwrap()
            .iter()
            .flat_map(|c| c.1.clone())
            .collect();
        assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4", "e0"]);
    }

    #[tokio::test]
    async fn gone_disables_and_keeps_spooling() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, r) = deliver(
            vec![SinkError::Disabled("410".into())],
            fast(),
            dir.path(),
            4,
        )
        .await;
        assert_eq!(sink.calls.lock().unwrap().len(), 1);
        assert_eq!((r.sent, r.spooled), (0, 4));
        assert!(matches!(r.health, Health::Disabled { .. }));
        let (sink, r) = deliver(Vec::new(), fast(), dir.path(), 2).await;
        assert!(sink.calls.lock().unwrap().is_empty());
        assert_eq!(r.spooled, 6);
        std::fs::remove_file(dir.path().join("scripted/DISABLED")).unwrap();
        let (_, r) = deliver(Vec::new(), fast(), dir.path(), 0).await;
        assert_eq!((r.sent, r.spooled), (6, 0));
    }

    /// A sink whose receiver accepts the request and never answers.
    struct Hanging {
        entered: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl Sink for Hanging {
        fn name(&self) -> &str {
            "hanging"
        }
        fn max_batch(&self) -> usize {
            3
        }
        async fn send(&self, _: &[SinkEvent]) -> Result<(), SinkError> {
            self.entered.notify_one();
            std::future::pending().await
        }
    }

    fn spooled_ids(dir: &Path) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str::<SinkEvent>(l).unwrap().id)
                    .collect::<Vec<_>>()
            })
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn events_published_while_a_send_hangs_are_on_disk_when_publish_returns() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(Hanging {
            entered: tokio::sync::Notify::new(),
        });
        let d = Delivery::start(
            vec![ConfiguredSink {
                sink: sink.clone(),
                kind: "test".into(),
                policy: DeliveryPolicy {
                    flush_timeout: Duration::from_millis(10),
                    ..fast()
                },
            }],
            dir.path(),
        )
        .unwrap();
        d.publish((0..3).map(ev).collect()).await.unwrap();
        // The worker is now inside a send that never ends.
        sink.entered.notified().await;
        d.publish((3..10).map(ev).collect()).await.unwrap();
        // A kill now must lose nothing: every event is in a segment already.
        let mut want: Vec<String> = (0..10).map(|i| format!("e{i}")).collect();
        want.sort();
        assert_eq!(spooled_ids(&dir.path().join("hanging")), want);
        let r = d.finish().await.remove(0);
        assert_eq!((r.sent, r.spooled, r.dropped), (0, 10, 0));
    }

    #[tokio::test]
    async fn a_spool_that_refuses_events_fails_publish() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(Scripted {
            script: Mutex::new(VecDeque::new()),
            calls: Mutex::new(Vec::new()),
        });
        let d = Delivery::start(
            vec![ConfiguredSink {
                sink,
                kind: "test".into(),
                policy: DeliveryPolicy {
                    max_spool_bytes: 10,
                    ..fast()
                },
            }],
            dir.path(),
        )
        .unwrap();
        let e = d.publish((0..2).map(ev).collect()).await.unwrap_err();
        assert_eq!(e.failures.len(), 1);
        assert!(e.to_string().contains("sink `scripted`"), "{e}");
        assert!(e.to_string().contains("full"), "{e}");
        let r = d.finish().await.remove(0);
        assert_eq!((r.sent, r.spooled, r.dropped), (0, 0, 2));
    }

    /// A sink several deliveries share, recording every event it takes; each send yields so
    /// the deliveries interleave.
    struct Shared {
        got: Arc<Mutex<Vec<String>>>,
    }

    #[async_trait::async_trait]
    impl Sink for Shared {
        fn name(&self) -> &str {
            "shared"
        }
        fn max_batch(&self) -> usize {
            2
        }
        async fn send(&self, batch: &[SinkEvent]) -> Result<(), SinkError> {
            tokio::task::yield_now().await;
            self.got
                .lock()
                .unwrap()
                .extend(batch.iter().map(|e| e.id.clone()));
            tokio::task::yield_now().await;
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deliveries_sharing_a_spool_send_every_event_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        // An earlier run left six events, its receiver down.
        let always: Vec<SinkError> = (0..10_000).map(|_| SinkError::retryable("down")).collect();
        let policy = DeliveryPolicy {
            flush_timeout: Duration::from_millis(50),
            ..fast()
        };
        let (_, r) = deliver(always, policy, dir.path(), 6).await;
        assert_eq!(r.spooled, 6);
        std::fs::rename(dir.path().join("scripted"), dir.path().join("shared")).unwrap();

        let got = Arc::new(Mutex::new(Vec::new()));
        let start = || {
            Delivery::start(
                vec![ConfiguredSink {
                    sink: Arc::new(Shared { got: got.clone() }),
                    kind: "test".into(),
                    policy: DeliveryPolicy {
                        flush_timeout: Duration::from_secs(600),
                        ..fast()
                    },
                }],
                dir.path(),
            )
            .unwrap()
        };
        let runs: Vec<Delivery> = (0..4).map(|_| start()).collect();
        let mut want: Vec<String> = (0..6).map(|i| format!("e{i}")).collect();
        for (k, d) in runs.iter().enumerate() {
            let events: Vec<SinkEvent> = (0..5)
                .map(|i| SinkEvent {
                    id: format!("run{k}-{i}"),
                    ..ev(i)
                })
                .collect();
            want.extend(events.iter().map(|e| e.id.clone()));
            d.publish(events).await.unwrap();
        }
        let reports = futures::future::join_all(runs.into_iter().map(|d| d.finish())).await;
        let mut got = got.lock().unwrap().clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "every event once");
        for r in reports.into_iter().flatten() {
            assert_eq!((r.spooled, r.dropped), (0, 0), "{r:?}");
        }
        assert!(spooled_ids(&dir.path().join("shared")).is_empty());
        let unique: BTreeSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), got.len());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let p = DeliveryPolicy {
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_millis(1000),
            ..Default::default()
        };
        for _ in 0..50 {
            let d1 = backoff(&p, 1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = backoff(&p, 3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d9 = backoff(&p, 9);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000));
            assert!(backoff(&p, u32::MAX) <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn the_policy_parses_durations_and_refuses_unknown_keys() {
        let p: DeliveryPolicy = serde_json::from_value(
            serde_json::json!({"retry_initial": "250ms", "flush_timeout": "2m"}),
        )
        .unwrap();
        assert_eq!(p.retry_initial, Duration::from_millis(250));
        assert_eq!(p.flush_timeout, Duration::from_secs(120));
        assert_eq!(p.queue_capacity, 10_000);
        assert!(
            serde_json::from_value::<DeliveryPolicy>(serde_json::json!({"retries": 3})).is_err()
        );
        assert_eq!(spool_folder("web hook/1"), "web_hook_1");
    }
}
