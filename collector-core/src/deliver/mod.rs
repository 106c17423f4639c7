//! Delivery of events to sinks, losing nothing: a bounded queue per sink feeds a disk
//! spool, and a worker per sink sends the spool's batches oldest first, retrying transient
//! failures with exponential backoff and jitter (never sooner than a receiver's
//! Retry-After), setting aside batches a receiver rejects, and stopping for good on 410.
//!
//! Delivery is at least once: a batch leaves the spool only after its receiver took it,
//! so a crash between the two sends it again, under the same event ids.

pub mod events;
pub mod spool;

use driftwatch_plugin_sdk::{Sink, SinkError, SinkEvent};
use serde::{Deserialize, Serialize};
use spool::{Segment, Spool, SpoolError};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How one sink's events are queued, batched and retried: the keys every `[[sinks]]`
/// entry accepts besides its kind's own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryPolicy {
    /// Events per request, at most the sink's own limit (0: the sink's limit).
    #[serde(default)]
    pub batch_size: usize,
    /// Events held in memory before the producer waits for the spool to catch up.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// First retry delay; it doubles per failed attempt.
    #[serde(default = "default_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest retry delay from backoff (a receiver's Retry-After may ask for more).
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// How long `scan` keeps trying before it exits and leaves the rest in the spool.
    #[serde(default = "default_flush", with = "humantime_serde")]
    pub flush_timeout: Duration,
    /// Largest spool on disk in bytes (0: unlimited); past it new batches are dropped and
    /// counted.
    #[serde(default = "default_spool_bytes")]
    pub max_spool_bytes: u64,
}

fn default_queue() -> usize {
    10_000
}
fn default_initial() -> Duration {
    Duration::from_millis(500)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(30)
}
fn default_flush() -> Duration {
    Duration::from_secs(30)
}
fn default_spool_bytes() -> u64 {
    1 << 30
}

/// The keys of [`DeliveryPolicy`], split off an entry before its kind parses the rest.
pub const POLICY_KEYS: &[&str] = &[
    "batch_size",
    "queue_capacity",
    "retry_initial",
    "retry_max",
    "flush_timeout",
    "max_spool_bytes",
];

impl Default for DeliveryPolicy {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every key has a default")
    }
}

// Retry-After beyond this is treated as this: a receiver's typo must not park a sink for
// days.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

impl DeliveryPolicy {
    /// The delay before attempt `attempt + 1`, after `attempt` failures: exponential from
    /// `retry_initial`, capped at `retry_max`, with equal jitter so a fleet of agents
    /// does not retry in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry_initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.retry_max);
        let half = cap / 2;
        half + half.mul_f64(fastrand::f64())
    }
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

/// Running delivery to a set of sinks.
pub struct Delivery {
    queues: Vec<mpsc::Sender<Arc<SinkEvent>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    stats: Vec<Arc<SinkStats>>,
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

impl Delivery {
    /// Opens each sink's spool under `spool_root` and starts its worker, which first sends
    /// whatever earlier runs left there. Must be called inside a Tokio runtime.
    pub fn start(sinks: Vec<ConfiguredSink>, spool_root: &Path) -> Result<Self, SpoolError> {
        let (finish, _) = watch::channel(None);
        let mut d = Self {
            queues: Vec::new(),
            workers: Vec::new(),
            stats: Vec::new(),
            finish,
            flush: Vec::new(),
        };
        for c in sinks {
            let dir = spool_root.join(spool_folder(c.sink.name()));
            let spool = Spool::open(&dir, c.policy.max_spool_bytes)?;
            let stats = Arc::new(SinkStats::new(c.sink.name(), &c.kind));
            let (tx, rx) = mpsc::channel(c.policy.queue_capacity.max(1));
            d.flush.push(c.policy.flush_timeout);
            let worker = Worker {
                sink: c.sink,
                spool,
                stats: stats.clone(),
                policy: c.policy,
                rx,
                finish: d.finish.subscribe(),
            };
            d.workers.push(tokio::spawn(worker.run()));
            d.queues.push(tx);
            d.stats.push(stats);
        }
        Ok(d)
    }

    /// Queues events for every sink; waits while a sink's queue is full.
    pub async fn publish(&self, events: Vec<SinkEvent>) {
        for e in events {
            let e = Arc::new(e);
            for q in &self.queues {
                // A closed queue means its worker is gone; its stats say why.
                let _ = q.send(e.clone()).await;
            }
        }
    }

    /// Every sink's counters now.
    pub fn stats(&self) -> Vec<SinkReport> {
        self.stats.iter().map(|s| s.snapshot()).collect()
    }

    /// Closes the queues and waits until every sink has sent its spool or reached its
    /// `flush_timeout` (the longest applies to all); what is left stays spooled for the
    /// next run.
    pub async fn finish(mut self) -> Vec<SinkReport> {
        self.queues.clear();
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
    spool: Spool,
    stats: Arc<SinkStats>,
    policy: DeliveryPolicy,
    rx: mpsc::Receiver<Arc<SinkEvent>>,
    finish: watch::Receiver<Option<Instant>>,
}

impl Worker {
    fn spill(&self, buf: &mut Vec<Arc<SinkEvent>>, queue: &mut VecDeque<Segment>) {
        if buf.is_empty() {
            return;
        }
        let n = buf.len() as u64;
        match self.spool.write(buf) {
            Ok(seg) => {
                self.stats.spooled.fetch_add(n, Ordering::Relaxed);
                queue.push_back(seg);
            }
            Err(e) => {
                self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(sink = self.sink.name(), error = %e, events = n, "events dropped: the spool could not keep them");
            }
        }
        buf.clear();
    }

    fn give_up(&self, seg: &Segment, why: &str) {
        self.stats.dropped.fetch_add(seg.events, Ordering::Relaxed);
        self.stats.unspool(seg.events);
        match self.spool.set_aside(seg) {
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
        let batch = match self.policy.batch_size {
            0 => self.sink.max_batch(),
            n => n.min(self.sink.max_batch()),
        }
        .max(1);
        let mut queue: VecDeque<Segment> = match self.spool.segments() {
            Ok(s) => s.into(),
            Err(e) => {
                tracing::error!(sink = %name, error = %e, "cannot list the spool");
                VecDeque::new()
            }
        };
        let left: u64 = queue.iter().map(|s| s.events).sum();
        if left > 0 {
            tracing::info!(sink = %name, events = left, segments = queue.len(), "resending what earlier runs spooled");
        }
        self.stats.spooled.store(left, Ordering::Relaxed);
        let mut disabled = self.spool.disabled();
        if let Some(reason) = &disabled {
            self.stats.set_health(Health::Disabled {
                reason: reason.clone(),
            });
        }
        let mut buf: Vec<Arc<SinkEvent>> = Vec::with_capacity(batch);
        let mut open = true;
        let mut attempts = 0u32;
        let mut next_try = Instant::now();
        let mut deadline: Option<Instant> = None;
        loop {
            // Take in whatever is queued now: a segment per full batch, then the rest.
            while open {
                match self.rx.try_recv() {
                    Ok(e) => {
                        buf.push(e);
                        if buf.len() >= batch {
                            self.spill(&mut buf, &mut queue);
                        }
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                }
            }
            self.spill(&mut buf, &mut queue);
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break;
            }
            if disabled.is_none() && now >= next_try {
                if let Some(seg) = queue.front().cloned() {
                    let events = match self.spool.read(&seg) {
                        Ok(e) => e,
                        Err(e) => {
                            queue.pop_front();
                            self.give_up(&seg, &e.to_string());
                            continue;
                        }
                    };
                    if attempts > 0 {
                        self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    }
                    let sent = match deadline {
                        Some(d) => tokio::time::timeout_at(d, self.sink.send(&events))
                            .await
                            .unwrap_or_else(|_| {
                                Err(SinkError::retryable("the flush deadline was reached"))
                            }),
                        None => self.sink.send(&events).await,
                    };
                    match sent {
                        Ok(()) => {
                            queue.pop_front();
                            if let Err(e) = self.spool.remove(&seg) {
                                tracing::error!(sink = %name, error = %e, "a delivered batch stays in the spool and will be sent again");
                            }
                            self.stats.sent.fetch_add(seg.events, Ordering::Relaxed);
                            self.stats.unspool(seg.events);
                            self.stats.set_health(Health::Healthy);
                            attempts = 0;
                        }
                        Err(SinkError::Retryable {
                            message,
                            retry_after,
                        }) => {
                            self.stats.failed.fetch_add(1, Ordering::Relaxed);
                            attempts += 1;
                            let wait = self
                                .policy
                                .backoff(attempts)
                                .max(retry_after.unwrap_or_default().min(RETRY_AFTER_CAP));
                            tracing::warn!(sink = %name, error = %message, attempt = attempts, retry_in_ms = wait.as_millis() as u64, "delivery failed; will retry");
                            next_try = Instant::now() + wait;
                            self.stats.set_health(Health::Retrying { error: message });
                        }
                        Err(SinkError::Permanent(message)) => {
                            self.stats.failed.fetch_add(1, Ordering::Relaxed);
                            queue.pop_front();
                            self.give_up(&seg, &message);
                            attempts = 0;
                        }
                        Err(SinkError::Disabled(reason)) => {
                            self.stats.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(sink = %name, reason = %reason, spool = %self.spool.dir().display(), "the receiver disabled this endpoint; events stay spooled until the DISABLED file there is deleted");
                            if let Err(e) = self.spool.disable(&reason) {
                                tracing::error!(sink = %name, error = %e, "cannot record that the sink is disabled");
                            }
                            self.stats.set_health(Health::Disabled {
                                reason: reason.clone(),
                            });
                            disabled = Some(reason);
                        }
                    }
                    continue;
                }
            }
            if !open && (queue.is_empty() || disabled.is_some()) {
                break;
            }
            let retry_at = (disabled.is_none() && !queue.is_empty()).then_some(next_try);
            tokio::select! {
                got = self.rx.recv(), if open => match got {
                    Some(e) => buf.push(e),
                    None => open = false,
                },
                _ = sleep_until_some(retry_at) => {}
                _ = sleep_until_some(deadline) => {}
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
        d.publish((0..n).map(ev).collect()).await;
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

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let p = DeliveryPolicy {
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_millis(1000),
            ..Default::default()
        };
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.backoff(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d9 = p.backoff(9);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000));
            assert!(p.backoff(u32::MAX) <= Duration::from_millis(1000));
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
