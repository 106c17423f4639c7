//! One scan as a pipeline of stages with narrow types at their seams:
//!
//! ```text
//! prepare (once per config load)      Prepared: providers, sinks, state sources, rules
//!   1 read_declared   StateSources -> DeclaredEstate     (declared.rs; cached by the agent)
//!   2 collect         providers    -> Collected          (collect.rs; concurrently with 1)
//!   3-5 evaluate      both         -> Evaluated          (evaluate.rs: diff, classify and
//!                                                         record, assemble the document)
//!   6 deliver         ScanReport   -> Delivered          (deliver.rs)
//! ```
//!
//! `scan` runs them all once; the agent keeps the prepared parts and the declared estate
//! between scans and runs stages 1 to 5 per provider.

mod collect;
mod declared;
mod deliver;
mod evaluate;

pub use crate::clock::now_rfc3339;
pub use collect::{collect, Collected, PreparedProvider};
pub use declared::{read_declared, DeclaredEstate, StateCache, StateSources};
pub use deliver::{deliver, Delivered};
pub use evaluate::{evaluate, Evaluated, Started};

use crate::components::{Components, SinkSetup};
use crate::config::{Config, ConfigError, ConfigProblem};
use crate::deliver::ConfiguredSink;
use crate::diff::ignore::DriftIgnore;
use crate::govern::Governance;
use crate::iac::remote;
use crate::iac::{self, IacError};
use crate::plugin::Plugin;
use driftwatch_plugin_sdk::{ProviderError, ScanReport, SinkPart};
use indicatif::MultiProgress;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A config turned into runnable parts: every problem in it has been found before any
/// provider runs.
pub struct Prepared {
    /// The config it came from.
    pub config: Config,
    /// Configured providers with their entries and what their kind is.
    pub providers: Vec<PreparedProvider>,
    /// Configured sinks.
    pub sinks: Vec<SinkSetup>,
    /// Where the declared estate comes from.
    pub sources: StateSources,
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
                Ok(p) => providers.push(PreparedProvider {
                    entry: entry.clone(),
                    info: factory.describe(),
                    provider: Arc::from(p),
                }),
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
        sources: StateSources {
            local: states,
            remote: remote_states,
            backends,
        },
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

/// Runs a prepared scan, stage by stage; `progress` shows per-provider and per-state
/// progress (hidden when not on a terminal).
pub async fn run(prepared: Prepared, progress: &MultiProgress) -> Result<ScanOutcome, ScanError> {
    let started = Started::now();
    let Prepared {
        config,
        providers,
        sinks,
        sources,
        ignore,
        mut governance,
        ..
    } = prepared;
    let declared = {
        let progress = progress.clone();
        tokio::spawn(async move { read_declared(sources, None, &progress).await })
    };
    let collected = collect(&providers, config.scan.batch_size, progress).await?;
    tracing::info!(
        elapsed_ms = started.clock.elapsed().as_millis() as u64,
        "providers done"
    );
    let declared = declared
        .await
        .map_err(|e| ScanError::Internal(format!("state reader: {e}")))??;
    tracing::info!(
        elapsed_ms = started.clock.elapsed().as_millis() as u64,
        "states read"
    );
    let Evaluated {
        report,
        audit_error,
    } = evaluate(declared, collected, &ignore, &mut governance, &started)?;
    let in_force = governance.in_force(time::OffsetDateTime::now_utc());
    let delivered = deliver(&report, sinks, &config, in_force).await;
    Ok(ScanOutcome {
        report,
        sink_errors: delivered.errors,
        sinks: delivered.sinks,
        exceptions_active: in_force,
        audit_error,
    })
}
