//! One scan, end to end: read the states, run the providers, diff, and build the document.

use crate::components::{Components, SinkSetup};
use crate::config::{ComponentEntry, Config, ConfigError, ConfigProblem};
use crate::deliver::ConfiguredSink;
use crate::diff::{self, ignore::DriftIgnore, DiffOptions};
use crate::govern::Governance;
use crate::iac::remote::{self, RemoteLocation};
use crate::iac::{self, Declared, IacError, StateFile};
use crate::plugin::Plugin;
use driftwatch_plugin_sdk::report::{
    KindCounts, ProviderSummary, ScanInfo, StateSummary, Summary, Tool,
};
use driftwatch_plugin_sdk::{
    CollectContext, Emit, FindingKind, Provider, ProviderError, ProviderInfo, Resource, ScanReport,
    Scope, SinkPart, SCAN_SCHEMA,
};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A config turned into runnable parts: every problem in it has been found before any
/// provider runs.
pub struct Prepared {
    /// The config it came from.
    pub config: Config,
    /// Configured providers with their entries and what their kind is.
    pub providers: Vec<(ComponentEntry, ProviderInfo, Arc<dyn Provider>)>,
    /// Configured sinks.
    pub sinks: Vec<SinkSetup>,
    /// Configured state backends, by scheme.
    pub backends: remote::Backends,
    /// Local state files to read.
    pub states: Vec<PathBuf>,
    /// Remote state locations to list and read.
    pub remote_states: Vec<RemoteLocation>,
    /// Ignore rules.
    pub ignore: DriftIgnore,
    /// Plugins loaded from `[[plugins]]`.
    pub plugins: Vec<Plugin>,
    /// Policies, exceptions and break-glass records.
    pub governance: Governance,
}

/// Why a scan could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The config is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A state file is unreadable or invalid.
    #[error(transparent)]
    Iac(#[from] IacError),
    /// Policies could not be evaluated or the audit log written.
    #[error("governance: {0}")]
    Governance(String),
    /// A task failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The outcome of a scan that ran: the document, and what went wrong on the way.
pub struct ScanOutcome {
    /// The scan document.
    pub report: ScanReport,
    /// Sinks that failed to deliver, with why.
    pub sink_errors: Vec<(String, String)>,
    /// Each streaming sink's counters after the flush.
    pub sinks: Vec<crate::deliver::SinkReport>,
    /// Exceptions and break-glass overrides in force when the scan ran.
    pub exceptions_active: usize,
    /// Why the decisions could not be appended to the audit log: the report is complete,
    /// but the scan failed.
    pub audit_error: Option<String>,
}

/// Checks a config completely (structure, component settings, state locations, ignore
/// files) and builds the parts of a scan from the factories in `components`.
pub fn prepare(
    config: Config,
    components: &Components,
    extra_ignore: &[PathBuf],
) -> Result<Prepared, ConfigError> {
    let loc = config.locator();
    let mut problems: Vec<ConfigProblem> = Vec::new();
    let mut plugins: Vec<Plugin> = Vec::new();
    for (i, entry) in &config.plugins {
        match Plugin::load(entry, &config.dir) {
            Ok(p) => {
                if components.provider_kinds().contains(&p.name.as_str())
                    || plugins.iter().any(|q| q.name == p.name)
                {
                    problems.push(loc.problem(
                        &format!("plugins[{i}]"),
                        format!(
                            "a provider kind `{}` exists already: give this plugin another `name`",
                            p.name
                        ),
                    ));
                } else {
                    plugins.push(p);
                }
            }
            Err(e) => problems.push(loc.problem(&format!("plugins[{i}].path"), e.to_string())),
        }
    }
    let mut providers = Vec::new();
    for entry in config.providers.iter().filter(|p| p.enabled) {
        let at = format!("providers[{}]", entry.index);
        match components.provider(&entry.kind, &plugins) {
            None => problems.push(loc.problem(
                &format!("{at}.kind"),
                format!(
                    "unknown provider kind `{}` (available: {})",
                    entry.kind,
                    components
                        .provider_kinds()
                        .into_iter()
                        .map(|s| s.to_string())
                        .chain(plugins.iter().map(|p| p.name.clone()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            Some(factory) => match factory.create(&entry.settings) {
                Ok(p) => providers.push((entry.clone(), factory.info(), Arc::from(p))),
                Err(ProviderError::Config { path, message }) => {
                    let full = if path.is_empty() {
                        at.clone()
                    } else {
                        format!("{at}.{path}")
                    };
                    problems.push(loc.problem(&full, message))
                }
                Err(e) => problems.push(loc.problem(&at, e.to_string())),
            },
        }
    }
    let mut sinks: Vec<SinkSetup> = Vec::new();
    for entry in config.sinks.iter().filter(|s| s.enabled) {
        let at = format!("sinks[{}]", entry.index);
        let Some(factory) = components.sink(&entry.kind) else {
            problems.push(loc.problem(
                &format!("{at}.kind"),
                format!(
                    "unknown sink kind `{}` (available: {})",
                    entry.kind,
                    components.sink_kinds().join(", ")
                ),
            ));
            continue;
        };
        match factory.create(&entry.name, &entry.settings) {
            Ok(SinkPart::Report(r)) => sinks.push(SinkSetup::Report(r)),
            Ok(SinkPart::Stream { sink, delivery }) => {
                sinks.push(SinkSetup::Stream(ConfiguredSink {
                    sink,
                    kind: entry.kind.clone(),
                    policy: delivery,
                }))
            }
            Err(e) => {
                let full = if e.path.is_empty() {
                    at.clone()
                } else {
                    format!("{at}.{}", e.path)
                };
                problems.push(loc.problem(&full, e.message))
            }
        }
    }
    let mut backends = remote::Backends::new();
    for scheme in config.iac.backends.keys() {
        if components.backend(scheme).is_none() {
            problems.push(loc.problem(
                &format!("iac.{scheme}"),
                format!(
                    "unknown state backend `{scheme}` (available: {})",
                    components.schemes().join(", ")
                ),
            ));
        }
    }
    for scheme in components.schemes() {
        let factory = components.backend(scheme).expect("listed");
        match factory.create(config.iac.backends.get(scheme), &config.dir) {
            Ok(b) => {
                backends.insert(scheme.to_string(), b);
            }
            Err(e) => {
                let full = if e.path.is_empty() {
                    format!("iac.{scheme}")
                } else {
                    format!("iac.{scheme}.{}", e.path)
                };
                problems.push(loc.problem(&full, e.message))
            }
        }
    }
    let mut states = Vec::new();
    let mut remote_states = Vec::new();
    for (i, pattern) in config.iac.states.iter().enumerate() {
        match remote::parse_location(pattern, components) {
            Ok(Some(r)) => {
                remote_states.push(r);
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                problems.push(loc.problem(&format!("iac.states[{i}]"), e.to_string()));
                continue;
            }
        }
        match iac::expand_locations(std::slice::from_ref(pattern), &config.dir) {
            Ok(found) => states.extend(found),
            Err(e) => problems.push(loc.problem(&format!("iac.states[{i}]"), e.to_string())),
        }
    }
    states.sort();
    states.dedup();
    let mut ignore = DriftIgnore::default();
    let mut ignore_files: Vec<(Option<String>, PathBuf)> = Vec::new();
    match &config.scan.driftignore {
        Some(list) => {
            for (i, f) in list.iter().enumerate() {
                ignore_files.push((Some(format!("scan.driftignore[{i}]")), config.dir.join(f)));
            }
        }
        None => {
            let default = config.dir.join(".driftignore");
            if default.is_file() {
                ignore_files.push((None, default));
            }
        }
    }
    for f in extra_ignore {
        ignore_files.push((None, f.clone()));
    }
    for (at, path) in ignore_files {
        if let Err(e) = ignore.load(&path) {
            problems.push(match at {
                Some(at) => loc.problem(&at, e.to_string()),
                None => ConfigProblem {
                    line: None,
                    path: String::new(),
                    message: e.to_string(),
                },
            });
        }
    }
    let governance = match Governance::load(&config.governance, &config.dir) {
        Ok(g) => Some(g),
        Err(e) => {
            problems.push(loc.problem("governance", e.to_string()));
            None
        }
    };
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.line.unwrap_or(0));
        return Err(ConfigError {
            file: config.file.clone(),
            problems,
        });
    }
    Ok(Prepared {
        config,
        providers,
        sinks,
        backends,
        states,
        remote_states,
        ignore,
        plugins,
        governance: governance.expect("no problem means governance loaded"),
    })
}

/// Shows a path relative to the working folder when it lies below it.
pub fn display_path(p: &Path) -> String {
    if let Ok(cwd) = std::env::current_dir() {
        if let Ok(rel) = p.strip_prefix(&cwd) {
            return rel.display().to_string();
        }
        if let (Ok(c), Ok(pc)) = (std::fs::canonicalize(&cwd), std::fs::canonicalize(p)) {
            if let Ok(rel) = pc.strip_prefix(c) {
                return rel.display().to_string();
            }
        }
    }
    p.display().to_string()
}

/// RFC 3339 UTC time, to the second.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

struct Collector {
    items: Vec<Resource>,
    bar: ProgressBar,
}

impl Emit for Collector {
    fn emit(&mut self, batch: Vec<Resource>) -> Result<(), ProviderError> {
        self.bar.inc(batch.len() as u64);
        self.items.extend(batch);
        Ok(())
    }
}

fn spinner(mp: &MultiProgress, msg: String) -> ProgressBar {
    let bar = mp.add(ProgressBar::new_spinner());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} resources ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(msg);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Cloud of a Terraform type, for scopes a failed provider leaves unjudged.
fn cloud_of_type(ty: &str) -> String {
    iac::tfstate::normalise_provider(ty.split('_').next().unwrap_or(ty)).to_string()
}

/// A live resource hides what its declared side hides (a tag marked sensitive, a nested
/// password): policies, risk rules and sinks see live attributes too.
fn mask_matched_live(declared: &[Declared], live: &mut [Resource]) {
    let masked: std::collections::HashMap<String, &[String]> = declared
        .iter()
        .filter(|d| !d.masked.is_empty())
        .map(|d| {
            let id = diff::canon::declared_id(&d.key.r#type, &d.key.id, &d.attributes);
            (
                diff::key_string(&d.key.provider, &d.key.r#type, &id),
                d.masked.as_slice(),
            )
        })
        .collect();
    if masked.is_empty() {
        return;
    }
    for r in live {
        if let Some(paths) =
            masked.get(&diff::key_string(&r.key.provider, &r.key.r#type, &r.key.id))
        {
            iac::secrets::mask_paths(&mut r.attributes, paths);
            // The tag map the provider reports beside the attributes mirrors them.
            for p in paths.iter() {
                for map in ["tags.", "tags_all.", "labels.", "effective_labels."] {
                    if let Some(v) = p.strip_prefix(map).and_then(|k| r.tags.get_mut(k)) {
                        *v = iac::secrets::MASK.to_string();
                    }
                }
                if matches!(
                    p.as_str(),
                    "tags" | "tags_all" | "labels" | "effective_labels"
                ) {
                    for v in r.tags.values_mut() {
                        *v = iac::secrets::MASK.to_string();
                    }
                }
            }
        }
    }
}

/// Which provider emitted each live resource key first, to refuse overlaps.
struct KeyOwners {
    /// Off with a single provider: nothing can overlap.
    enabled: bool,
    owners: std::collections::HashMap<String, Arc<str>>,
}

impl KeyOwners {
    fn new(providers: usize) -> Self {
        KeyOwners {
            enabled: providers > 1,
            owners: std::collections::HashMap::new(),
        }
    }

    fn key(r: &Resource) -> String {
        diff::key_string(&r.key.provider, &r.key.r#type, &r.key.id)
    }

    /// Records `provider`'s keys, or says which keys another provider already emitted.
    fn claim(&mut self, provider: &str, items: &[Resource]) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let mut clashes: Vec<String> = Vec::new();
        let mut count = 0usize;
        for r in items {
            if let Some(first) = self.owners.get(&Self::key(r)) {
                if &**first != provider {
                    count += 1;
                    if clashes.len() < 3 {
                        clashes.push(format!("{}.{} (from `{first}`)", r.key.r#type, r.key.id));
                    }
                }
            }
        }
        if count > 0 {
            return Err(format!(
                "{count} resource(s) it reports are also reported by another provider: {}{}; \
                 two providers must not list the same resources (overlapping exports or a \
                 plugin shadowing a built-in provider): narrow their paths, accounts or \
                 types so that each resource comes from one provider",
                clashes.join(", "),
                if count > clashes.len() { ", ..." } else { "" }
            ));
        }
        let name: Arc<str> = Arc::from(provider);
        for r in items {
            self.owners
                .entry(Self::key(r))
                .or_insert_with(|| name.clone());
        }
        Ok(())
    }
}

/// Runs a prepared scan; `progress` shows per-provider and per-state progress (hidden
/// when not on a terminal).
pub async fn run(prepared: Prepared, progress: &MultiProgress) -> Result<ScanOutcome, ScanError> {
    let started_at = now_rfc3339();
    let started = Instant::now();
    let Prepared {
        config,
        providers,
        sinks,
        backends,
        states,
        remote_states,
        ignore,
        mut governance,
        ..
    } = prepared;

    let state_bar = spinner(progress, format!("reading {} state file(s)", states.len()));
    let state_task = {
        let bar = state_bar.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<StateFile>, IacError> {
            let mut out = Vec::with_capacity(states.len());
            for path in &states {
                let f = iac::read_state_file(path, &display_path(path))?;
                bar.inc(f.resources.len() as u64);
                out.push(f);
            }
            Ok(out)
        })
    };

    let remote_task = tokio::spawn(async move { remote::load(&remote_states, &backends).await });

    let mut tasks = Vec::new();
    for (entry, info, provider) in providers {
        let bar = spinner(progress, format!("provider {}", entry.name));
        let ctx = CollectContext::new(config.scan.batch_size);
        tasks.push(tokio::spawn(async move {
            let mut sink = Collector {
                items: Vec::new(),
                bar: bar.clone(),
            };
            let result = provider.collect(&ctx, &mut sink).await;
            bar.finish_and_clear();
            (entry, info, result, sink.items)
        }));
    }

    let mut live = Vec::new();
    let mut scopes: Vec<Scope> = Vec::new();
    let mut provider_summaries = Vec::new();
    let mut owners = KeyOwners::new(tasks.len());
    for t in tasks {
        let (entry, info, result, items) = t
            .await
            .map_err(|e| ScanError::Internal(format!("provider task: {e}")))?;
        let count = items.len();
        // Two providers reporting one resource is an overlap in the config (two exports of
        // one account, a plugin shadowing a built-in provider): neither copy can be trusted
        // to be the live view, so the later provider fails instead of being merged.
        let result = match result {
            Ok(report) => match owners.claim(&entry.name, &items) {
                Ok(()) => Ok(report),
                Err(message) => Err(ProviderError::other(message)),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(report) => {
                let mut items = items;
                // Live listings have no `sensitive_attributes`: mask by name and type, as
                // the state reader does, before any finding, policy or sink sees them.
                for r in &mut items {
                    iac::secrets::mask_live(&r.key.r#type, &mut r.attributes);
                }
                live.extend(items);
                scopes.extend(report.scopes);
                provider_summaries.push(ProviderSummary {
                    name: entry.name,
                    kind: entry.kind,
                    resources: count,
                    api_calls: report.api_calls,
                    status: "ok".into(),
                    error: None,
                    warnings: report.warnings,
                });
            }
            Err(e) => {
                tracing::error!(provider = %entry.name, error = %e, "provider failed");
                // Its resources cannot be trusted to be complete: judge none of its types.
                for ty in &info.resource_types {
                    scopes.push(Scope {
                        provider: cloud_of_type(ty),
                        r#type: ty.clone(),
                        account: None,
                        region: None,
                        complete: false,
                        error: Some(format!("provider `{}` failed: {e}", entry.name)),
                    });
                }
                provider_summaries.push(ProviderSummary {
                    name: entry.name,
                    kind: entry.kind,
                    resources: 0,
                    api_calls: 0,
                    status: "failed".into(),
                    error: Some(e.to_string()),
                    warnings: Vec::new(),
                });
            }
        }
    }

    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "providers done"
    );
    let mut state_files = state_task
        .await
        .map_err(|e| ScanError::Internal(format!("state reader: {e}")))??;
    state_files.extend(
        remote_task
            .await
            .map_err(|e| ScanError::Internal(format!("remote state reader: {e}")))??,
    );
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "states read"
    );
    state_bar.finish_and_clear();
    let state_summaries: Vec<StateSummary> = state_files
        .iter()
        .map(|f| StateSummary {
            source: f.source.to_string(),
            resources: f.resources.len(),
            terraform_version: f.terraform_version.clone(),
        })
        .collect();
    let declared: Vec<Declared> = state_files.into_iter().flat_map(|f| f.resources).collect();
    mask_matched_live(&declared, &mut live);

    let result = diff::diff(
        &declared,
        &live,
        &scopes,
        &DiffOptions {
            ignore: &ignore,
            now: &started_at,
        },
    );
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "diff done"
    );
    let mut result = result;
    let classified = governance
        .classify(&mut result.findings, &declared, &live, &started_at)
        .map_err(|e| ScanError::Governance(e.to_string()))?;
    let audit_error = classified.audit_error.map(|e| e.to_string());
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "classified"
    );
    // Freeing millions of JSON nodes takes a tenth of a large scan; nothing waits for it.
    std::thread::spawn(move || drop((declared, live)));
    let mut kinds = KindCounts {
        total: result.findings.len(),
        ..KindCounts::default()
    };
    for f in &result.findings {
        match f.kind {
            FindingKind::Changed => kinds.changed += 1,
            FindingKind::Missing => kinds.missing += 1,
            FindingKind::Unmanaged => kinds.unmanaged += 1,
        }
    }
    let partial = !result.coverage.failed_scopes.is_empty()
        || provider_summaries.iter().any(|p| p.status != "ok");
    let report = ScanReport {
        schema: SCAN_SCHEMA.into(),
        tool: Tool {
            name: "driftwatch".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        scan: ScanInfo {
            started_at,
            finished_at: now_rfc3339(),
            duration_ms: started.elapsed().as_millis() as u64,
        },
        summary: Summary {
            in_sync: kinds.total == 0 && !partial,
            partial,
            findings: kinds,
            statuses: classified.statuses,
            risks: classified.risks,
            unowned: classified.unowned,
            resources: result.counts,
            coverage: result.coverage,
            providers: provider_summaries,
            states: state_summaries,
        },
        findings: result.findings,
    };
    let mut sink_errors = Vec::new();
    let mut streams = Vec::new();
    for s in sinks {
        match s {
            SinkSetup::Report(file) => {
                if let Err(e) = file.write(&report) {
                    tracing::error!(sink = file.name(), error = %e, "sink failed");
                    sink_errors.push((file.name().to_string(), e));
                }
            }
            SinkSetup::Stream(c) => streams.push(c),
        }
    }
    let mut sink_reports = Vec::new();
    let in_force = governance.in_force(time::OffsetDateTime::now_utc());
    if !streams.is_empty() {
        let flush: Vec<_> = streams
            .iter()
            .map(|c| (c.sink.name().to_string(), c.policy.flush_timeout))
            .collect();
        let spool_root = config.spool_root();
        match crate::deliver::Delivery::start(streams, &spool_root) {
            Ok(delivery) => {
                let scan_id = crate::deliver::events::new_scan_id();
                if let Err(e) = delivery
                    .publish(crate::deliver::events::scan_events(
                        &report, &scan_id, in_force,
                    ))
                    .await
                {
                    sink_errors.extend(e.by_sink());
                }
                sink_reports = delivery.finish().await;
            }
            Err(e) => sink_errors.push(("spool".into(), e.to_string())),
        }
        for r in &sink_reports {
            let spool = spool_root.join(crate::deliver::spool_folder(&r.name));
            if let crate::deliver::Health::Disabled { reason } = &r.health {
                sink_errors.push((
                    r.name.clone(),
                    format!(
                        "disabled by its receiver ({reason}); {} events wait in {}: delete {} to send them again",
                        r.spooled,
                        spool.display(),
                        spool.join("DISABLED").display()
                    ),
                ));
            } else if r.spooled > 0 {
                let t = flush
                    .iter()
                    .find(|(n, _)| *n == r.name)
                    .map(|f| f.1)
                    .unwrap_or_default();
                let last = match &r.health {
                    crate::deliver::Health::Retrying { error } => format!(" (last error: {error})"),
                    _ => String::new(),
                };
                sink_errors.push((
                    r.name.clone(),
                    format!(
                        "{} events not delivered within flush_timeout {}{last}; they are kept in {} and sent on the next run",
                        r.spooled,
                        humantime::format_duration(t),
                        spool.display()
                    ),
                ));
            }
            if r.dropped > 0 {
                sink_errors.push((
                    r.name.clone(),
                    format!(
                        "{} events were rejected or could not be spooled; rejected batches are kept in {}",
                        r.dropped,
                        spool.join("rejected").display()
                    ),
                ));
            }
        }
    }
    Ok(ScanOutcome {
        report,
        sink_errors,
        sinks: sink_reports,
        exceptions_active: in_force,
        audit_error,
    })
}
