//! `driftwatch agent`: scans each provider on its own schedule, remembers findings in a
//! state store so each drift is announced once when it appears and once when it goes,
//! streams the events through the sinks, and serves health, metrics and open findings.
//!
//! One task per provider runs its scans one after the other, so two scans of the same
//! scope never overlap; a provider that fails is retried at its next tick and stops no
//! other. SIGTERM and SIGINT stop new scans, let running ones finish within
//! `shutdown_timeout` (then abandon them), flush the sinks and exit 0. SIGHUP reloads the
//! config after checking it completely; a bad config keeps the old one running.

pub mod http;
pub mod store;

use crate::components::{Components, SinkSetup};
use crate::config::{ComponentEntry, Config};
use crate::deliver::{events, ConfiguredSink, Delivery, SinkReport};
use crate::govern::Governance;
use crate::scan;
use driftwatch_plugin_sdk::{EventKind, SinkEvent};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::Store;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The state store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A sink's spool could not be opened.
    #[error(transparent)]
    Spool(#[from] crate::deliver::spool::SpoolError),
    /// The HTTP endpoint could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// The last outcome of one provider's schedule.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProviderState {
    /// `pending` (no scan yet), `ok` or `failed`.
    pub status: String,
    /// The last failure.
    pub error: Option<String>,
    /// End of the last scan (RFC 3339).
    pub last_scan: Option<String>,
    /// Wall time of the last scan, in seconds.
    pub duration_seconds: f64,
    /// Scans that ended ok.
    pub scans_ok: u64,
    /// Scans that failed or were partial.
    pub scans_failed: u64,
    /// A scan is running now.
    pub running: bool,
    /// Cloud API calls of the last scan.
    pub api_calls: u64,
    /// Scans that could not start because the previous one of the same provider ran.
    pub overlaps_refused: u64,
}

/// What the endpoints read: the store, the providers' states and the sinks' counters.
pub struct Shared {
    /// The state store.
    pub store: Mutex<Store>,
    /// Each provider's state, by name.
    pub providers: Mutex<BTreeMap<String, ProviderState>>,
    /// The running delivery; `None` when no streaming sink is configured, or when the
    /// new sinks of a reload could not start (then `delivery_error` says why).
    pub delivery: RwLock<Option<Delivery>>,
    /// Why the configured sinks are not running, after a reload that could not start them.
    pub delivery_error: Mutex<Option<String>>,
    /// When the agent started.
    pub started: Instant,
    /// Config reloads applied and refused.
    pub reloads: Mutex<(u64, u64)>,
    /// The parts this build offers.
    pub components: Components,
}

impl Shared {
    /// The sinks' counters now.
    pub async fn sinks(&self) -> Vec<SinkReport> {
        match &*self.delivery.read().await {
            Some(d) => d.stats(),
            None => Vec::new(),
        }
    }
}

/// What one config load prepares for every scan until the next reload: plugins loaded,
/// providers built, policies compiled, ignore rules read, and the parsed states.
pub struct Loaded {
    /// The config.
    pub config: Config,
    providers: Vec<scan::PreparedProvider>,
    sources: scan::StateSources,
    ignore: crate::diff::ignore::DriftIgnore,
    /// Held during one provider's classification: the audit log takes one writer.
    governance: Mutex<Governance>,
    states: Arc<scan::StateCache>,
    // Kept loaded for as long as its providers may run.
    _plugins: Vec<crate::plugin::Plugin>,
}

/// Checks a config completely (the same checks as `validate`) and prepares its parts.
fn check(
    path: &Path,
    components: &Components,
) -> Result<(Loaded, Vec<ConfiguredSink>), AgentError> {
    let config = Config::load(path)?;
    let prepared = scan::prepare(config, components, &[])?;
    let sinks = prepared
        .sinks
        .into_iter()
        .filter_map(|s| match s {
            SinkSetup::Stream(c) => Some(c),
            // The scan document of one provider's scan is not the estate's: the agent
            // serves /findings instead.
            SinkSetup::Report(r) => {
                tracing::warn!(
                    sink = r.name(),
                    "a `format = \"json\"` file sink is written by `scan` only; the agent skips it"
                );
                None
            }
        })
        .collect();
    let loaded = Loaded {
        config: prepared.config,
        providers: prepared.providers,
        sources: prepared.sources,
        ignore: prepared.ignore,
        governance: Mutex::new(prepared.governance),
        states: Arc::new(scan::StateCache::new()),
        _plugins: prepared.plugins,
    };
    Ok((loaded, sinks))
}

fn interval_of(config: &Config, name: &str) -> Duration {
    config
        .agent
        .intervals
        .get(name)
        .and_then(|d| humantime::parse_duration(d).ok())
        .unwrap_or(config.agent.interval)
        .max(Duration::from_millis(10))
}

fn jittered(d: Duration, jitter: f64) -> Duration {
    d.mul_f64(1.0 + jitter * (2.0 * fastrand::f64() - 1.0))
}

/// One scan of one provider with the parts of the current config load: stages 1 to 5 of
/// the scan pipeline, the states read only when they changed.
async fn evaluate_provider(
    loaded: &Loaded,
    entry: &ComponentEntry,
) -> Result<(scan::Evaluated, usize), String> {
    let provider = loaded
        .providers
        .iter()
        .find(|p| p.entry.name == entry.name)
        .ok_or_else(|| format!("provider `{}` is not in the loaded config", entry.name))?;
    let started = scan::Started::now();
    let hidden =
        indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden());
    let declared = {
        let (sources, states, hidden) = (
            loaded.sources.clone(),
            loaded.states.clone(),
            hidden.clone(),
        );
        tokio::spawn(async move { scan::read_declared(sources, Some(states), &hidden).await })
    };
    let collected = scan::collect(
        std::slice::from_ref(provider),
        loaded.config.scan.batch_size,
        &hidden,
    )
    .await
    .map_err(|e| e.to_string())?;
    let declared = declared
        .await
        .map_err(|e| format!("state reader: {e}"))?
        .map_err(|e| e.to_string())?;
    let mut governance = loaded.governance.lock().unwrap_or_else(|p| p.into_inner());
    // Exceptions and break-glass records are written during incidents: each scan reads
    // them afresh, as `scan` does, while the compiled policies stay.
    governance
        .reload_records(&loaded.config.governance, &loaded.config.dir)
        .map_err(|e| e.to_string())?;
    let evaluated = scan::evaluate(
        declared,
        collected,
        &loaded.ignore,
        &mut governance,
        &started,
    )
    .map_err(|e| e.to_string())?;
    let in_force = governance.in_force(time::OffsetDateTime::now_utc());
    Ok((evaluated, in_force))
}

/// One scan of one provider: scan, record in the store, publish what changed.
async fn scan_provider(
    loaded: &Loaded,
    entry: &ComponentEntry,
    shared: &Shared,
) -> Result<(), String> {
    let (evaluated, exceptions_active) = evaluate_provider(loaded, entry).await?;
    if let Some(e) = &evaluated.audit_error {
        // The findings are still recorded and published; only the audit trail is missing.
        tracing::error!(provider = %entry.name, error = %e, "audit log not written");
    }
    let report = evaluated.report;
    let p = report.summary.providers.first();
    let complete = !report.summary.partial;
    let now = scan::now_rfc3339();
    let mut findings = report.findings.clone();
    let transition = shared
        .store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .record(&entry.name, &mut findings, &now, complete)
        .map_err(|e| e.to_string())?;
    let scan_id = events::new_scan_id();
    let mut out: Vec<SinkEvent> = Vec::new();
    for (kind, list) in [
        (EventKind::DriftDetected, &transition.detected),
        (EventKind::DriftResolved, &transition.resolved),
    ] {
        for f in list {
            out.push(SinkEvent {
                id: events::event_id(&scan_id, kind, &f.id),
                kind,
                time: now.clone(),
                scan_id: scan_id.clone(),
                finding: Some(f.clone()),
                scan: None,
            });
        }
    }
    out.push(events::scan_completed(&report, &scan_id, exceptions_active));
    tracing::info!(
        provider = %entry.name,
        detected = transition.detected.len(),
        resolved = transition.resolved.len(),
        open = transition.open,
        "scan recorded"
    );
    // Announced only once every sink's spool holds the events: a transition whose events
    // were not kept is handed back by the next scan's record.
    let published = match &*shared.delivery.read().await {
        Some(d) => d.publish(out).await.map_err(|e| e.to_string()),
        None => match &*shared.delivery_error.lock().unwrap() {
            Some(e) => Err(format!("the sinks are not running: {e}")),
            None => Ok(()),
        },
    };
    let announced = match published {
        Ok(()) => shared
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .mark_announced(&transition)
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!(
            "{e}; the drift events are announced again after the next scan"
        )),
    };
    let api_calls = p.map_or(0, |p| p.api_calls);
    if let Some(s) = shared.providers.lock().unwrap().get_mut(&entry.name) {
        s.api_calls = api_calls;
    }
    announced?;
    match p {
        Some(p) if p.status != "ok" => Err(p
            .error
            .clone()
            .unwrap_or_else(|| "the provider failed".into())),
        _ if !complete => Err("the scan is partial; nothing was resolved".into()),
        _ => Ok(()),
    }
}

/// Starts one task per enabled provider.
fn schedule(
    loaded: Arc<Loaded>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    abort: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let config = &loaded.config;
    let mut tasks = Vec::new();
    {
        let mut p = shared.providers.lock().unwrap();
        p.retain(|name, _| {
            config
                .providers
                .iter()
                .any(|e| &e.name == name && e.enabled)
        });
        for e in config.providers.iter().filter(|e| e.enabled) {
            p.entry(e.name.clone()).or_insert_with(|| ProviderState {
                status: "pending".into(),
                ..Default::default()
            });
        }
    }
    for entry in config.providers.iter().filter(|e| e.enabled).cloned() {
        let (loaded, shared, stop, abort) =
            (loaded.clone(), shared.clone(), stop.clone(), abort.clone());
        tasks.push(tokio::spawn(async move {
            let config = &loaded.config;
            let every = interval_of(config, &entry.name);
            // A fleet restarted at once spreads its first scans over the jitter window.
            let mut wait = every.mul_f64(config.agent.jitter * fastrand::f64());
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                let span = tracing::info_span!("scan", provider = %entry.name);
                let began = Instant::now();
                {
                    let mut p = shared.providers.lock().unwrap();
                    let s = p.entry(entry.name.clone()).or_default();
                    if s.running {
                        s.overlaps_refused += 1;
                        continue;
                    }
                    s.running = true;
                }
                let result = tokio::select! {
                    r = tracing::Instrument::instrument(scan_provider(&loaded, &entry, &shared), span) => Some(r),
                    _ = abort.cancelled() => None,
                };
                {
                    let mut p = shared.providers.lock().unwrap();
                    let s = p.entry(entry.name.clone()).or_default();
                    s.running = false;
                    s.duration_seconds = began.elapsed().as_secs_f64();
                    s.last_scan = Some(scan::now_rfc3339());
                    match &result {
                        Some(Ok(())) => {
                            s.status = "ok".into();
                            s.error = None;
                            s.scans_ok += 1;
                        }
                        Some(Err(e)) => {
                            tracing::error!(provider = %entry.name, error = %e, "scan failed; the next one runs on schedule");
                            s.status = "failed".into();
                            s.error = Some(e.clone());
                            s.scans_failed += 1;
                        }
                        None => {
                            tracing::warn!(provider = %entry.name, "scan abandoned at shutdown");
                            s.scans_failed += 1;
                        }
                    }
                }
                if result.is_none() {
                    break;
                }
                // The next start keeps its cadence from this one's start; a scan longer
                // than the interval is followed by the next at once, never overlapped.
                wait = jittered(every, config.agent.jitter).saturating_sub(began.elapsed());
            }
        }));
    }
    tasks
}

/// Waits for the tasks, abandoning running scans once `deadline` has passed.
async fn wind_down(
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: CancellationToken,
    abort: CancellationToken,
    deadline: Duration,
) {
    stop.cancel();
    let all = futures::future::join_all(tasks);
    tokio::pin!(all);
    tokio::select! {
        _ = &mut all => {}
        _ = tokio::time::sleep(deadline) => {
            abort.cancel();
            all.await;
        }
    }
}

/// Runs the agent with the parts in `components` until SIGTERM or SIGINT.
pub async fn run(config_path: PathBuf, components: Components) -> Result<(), AgentError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (loaded, sinks) = check(&config_path, &components)?;
    let config = &loaded.config;
    let state_path = config.dir.join(&config.agent.state);
    let store = Store::open(&state_path)?;
    let delivery = Delivery::start(sinks, &config.spool_root())?;
    let shared = Arc::new(Shared {
        store: Mutex::new(store),
        providers: Mutex::new(BTreeMap::new()),
        delivery: RwLock::new(Some(delivery)),
        delivery_error: Mutex::new(None),
        started: Instant::now(),
        reloads: Mutex::new((0, 0)),
        components,
    });
    let listener = tokio::net::TcpListener::bind(&config.agent.listen)
        .await
        .map_err(|source| AgentError::Listen {
            addr: config.agent.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AgentError::Listen {
        addr: config.agent.listen.clone(),
        source,
    })?;
    let server_stop = CancellationToken::new();
    let server = {
        let (shared, stop) = (shared.clone(), server_stop.clone());
        tokio::spawn(async move {
            let app = http::router(shared);
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        })
    };
    let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AgentError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(AgentError::Signals)?;
    tracing::info!(listen = %addr, state = %state_path.display(), providers = config.providers.len(), "agent started");

    let mut loaded = Arc::new(loaded);
    let (mut stop, mut abort) = (CancellationToken::new(), CancellationToken::new());
    let mut tasks = schedule(loaded.clone(), shared.clone(), stop.clone(), abort.clone());
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match check(&config_path, &shared.components) {
                    Err(e) => {
                        shared.reloads.lock().unwrap().1 += 1;
                        tracing::error!(error = %e, "config reload refused; the running config stays");
                    }
                    Ok((new, sinks)) => {
                        let config = &loaded.config;
                        if new.config.agent.listen != config.agent.listen || new.config.agent.state != config.agent.state {
                            tracing::warn!("agent.listen and agent.state take effect at the next start");
                        }
                        let old = std::mem::take(&mut tasks);
                        wind_down(old, stop.clone(), abort.clone(), config.agent.shutdown_timeout).await;
                        let sinks_changed = new.config.sinks.iter().map(|s| (&s.kind, &s.name, &s.settings, s.enabled)).ne(
                            config.sinks.iter().map(|s| (&s.kind, &s.name, &s.settings, s.enabled)));
                        if sinks_changed {
                            let mut slot = shared.delivery.write().await;
                            if let Some(d) = slot.take() {
                                d.finish().await;
                            }
                            match Delivery::start(sinks, &new.config.spool_root()) {
                                Ok(d) => {
                                    *slot = Some(d);
                                    *shared.delivery_error.lock().unwrap() = None;
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot start the new sinks");
                                    *shared.delivery_error.lock().unwrap() = Some(e.to_string());
                                }
                            }
                        }
                        loaded = Arc::new(new);
                        stop = CancellationToken::new();
                        abort = CancellationToken::new();
                        tasks = schedule(loaded.clone(), shared.clone(), stop.clone(), abort.clone());
                        shared.reloads.lock().unwrap().0 += 1;
                        tracing::info!("config reloaded");
                    }
                }
            }
        }
    }
    tracing::info!("shutting down: finishing running scans");
    wind_down(tasks, stop, abort, loaded.config.agent.shutdown_timeout).await;
    if let Some(d) = shared.delivery.write().await.take() {
        for r in d.finish().await {
            tracing::info!(sink = %r.name, sent = r.sent, spooled = r.spooled, dropped = r.dropped, "sink flushed");
        }
    }
    server_stop.cancel();
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}
