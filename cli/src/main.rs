//! The `driftwatch` command line.

use clap::{Parser, Subcommand};
use driftwatch_core::config::Config;
use driftwatch_core::output::{self, Format};
use driftwatch_core::plugin::{self, Mode, Plugin, PluginEntry};
use driftwatch_core::{govern, iac, scan};
use driftwatch_plugin_sdk::{FindingStatus, Risk};
use indicatif::{MultiProgress, ProgressDrawTarget};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

// A scan builds and frees millions of small JSON nodes on several threads at once; glibc's
// allocator spends more time in its arenas than the scan does in its own code (measured in
// benches/scan_100k.rs), mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code: the live estate matches the declared one.
const EXIT_IN_SYNC: u8 = 0;
/// Exit code: something failed (bad input, a provider or sink error, a partial scan).
const EXIT_ERROR: u8 = 1;
/// Exit code: drift found (as `terraform plan -detailed-exitcode`).
const EXIT_DRIFT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "driftwatch",
    version,
    about = "Finds drift between Terraform state and the live cloud (AWS, Azure, GCP)."
)]
struct Cli {
    /// Log filter for diagnostics on stderr (e.g. `info`, `driftwatch_core=debug`).
    #[arg(long, global = true, env = "DRIFTWATCH_LOG", default_value = "warn")]
    log: String,
    /// Log line format: `text` for people, `json` for log pipelines.
    #[arg(
        long,
        global = true,
        env = "DRIFTWATCH_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run as a long-lived agent: scan each provider on a schedule, keep findings in a
    /// state store, stream detected and resolved drift to the sinks, serve /healthz,
    /// /readyz, /metrics and /findings. SIGTERM or SIGINT stop it (exit 0); SIGHUP
    /// reloads the config.
    Agent {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Compare live resources with the declared ones and report drift.
    ///
    /// Exit codes: 0 in sync, 2 drift found, 1 error or partial scan.
    Scan {
        /// The config file.
        #[arg(long, short, default_value = "driftwatch.toml")]
        config: PathBuf,
        /// Output format [default: table on a terminal, else json; or from --output's extension].
        #[arg(long, short, value_enum)]
        format: Option<Format>,
        /// Write the output to this file (atomically) instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Extra ignore file in driftctl's `.driftignore` syntax (repeatable).
        #[arg(long)]
        driftignore: Vec<PathBuf>,
        /// Never show progress bars.
        #[arg(long, short)]
        quiet: bool,
        /// Exit 2 only for findings that are: `violation`s, of `high` risk or above (and not
        /// allowed), or `any` finding not allowed [default: any].
        #[arg(long, value_enum, default_value = "any")]
        fail_on: FailOn,
    },
    /// Rego policies: run their unit tests.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Record a time-boxed override for drift made during an incident.
    BreakGlass {
        /// The config file (its `[governance] breakglass` names the record file).
        #[arg(long, short, default_value = "driftwatch.toml")]
        config: PathBuf,
        /// `TYPE.ID` of the resource (globs allowed), or a finding id.
        #[arg(long)]
        resource: String,
        /// Why the glass was broken.
        #[arg(long)]
        reason: String,
        /// How long the override lasts (`4h`, `90m`, `2d`).
        #[arg(long)]
        ttl: String,
        /// Who broke it [default: $USER].
        #[arg(long)]
        by: Option<String>,
    },
    /// The post-incident review queue.
    Review {
        #[command(subcommand)]
        command: ReviewCommand,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check a config file and report every problem with its line.
    Validate {
        /// The config file.
        #[arg(long, short, default_value = "driftwatch.toml")]
        config: PathBuf,
    },
    /// Inspect what the IaC declares.
    Iac {
        #[command(subcommand)]
        command: IacCommand,
    },
    /// Inspect provider plugins.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Internal: serve one plugin over stdin/stdout for an isolated provider.
    #[command(hide = true)]
    PluginHost {
        /// The plugin library.
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Run every `test_*` rule of the `*_test.rego` files under the given paths.
    Test {
        /// Policy files or folders.
        #[arg(default_value = "policies")]
        paths: Vec<PathBuf>,
        /// Accept Rego written before OPA 1.0.
        #[arg(long)]
        rego_v0: bool,
    },
}

#[derive(Subcommand)]
enum ReviewCommand {
    /// Break-glass overrides that expired: each is due a post-incident review.
    List {
        /// The config file.
        #[arg(long, short, default_value = "driftwatch.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain and the checkpoint: detects edited, deleted, reordered and
    /// truncated records.
    Verify {
        /// The log [default: the config's `[governance] audit_log`].
        #[arg(long)]
        file: Option<PathBuf>,
        /// The config file, when --file is not given.
        #[arg(long, short, default_value = "driftwatch.toml")]
        config: PathBuf,
        /// The checkpoint [default: the log's path plus `.checkpoint`].
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
}

/// Which findings make `scan` exit 2.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FailOn {
    /// A finding a policy denied.
    Violation,
    /// A finding of high or critical risk that is not allowed.
    High,
    /// Any finding that is not allowed.
    Any,
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// The plugins a config loads, checked (pin, magic, ABI) and described.
    List {
        /// The config file.
        #[arg(long, short, default_value = "driftwatch.toml")]
        config: PathBuf,
    },
    /// Describe one plugin library: name, version, ABI, resource types, config schema.
    Inspect {
        /// The library file.
        path: PathBuf,
        /// Load it into this process instead of a child process.
        #[arg(long)]
        in_process: bool,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "table")]
        format: ListFormat,
    },
}

#[derive(Subcommand)]
enum IacCommand {
    /// List the managed resources the given states declare.
    List {
        /// State files or globs (repeatable).
        #[arg(long = "state", short, required = true)]
        states: Vec<String>,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "table")]
        format: ListFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

/// Set once `main` has its exit code: any earlier exit came from code that is not ours.
static FINISHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs at `exit()`: an in-process plugin that calls `exit(0)` mid-scan must not end the
/// process with a success code and no report, which a CI gate would read as "in sync".
extern "C" fn exit_guard() {
    if !FINISHED.load(std::sync::atomic::Ordering::SeqCst) {
        let msg = b"error: the process was told to exit before the report was complete (an in-process plugin called exit?); run the plugin with mode = \"isolated\"\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe and need no Rust state.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(i32::from(EXIT_ERROR));
        }
    }
}

fn main() -> ExitCode {
    // Parsed first: `--help` and usage errors exit from inside clap, and rightly so.
    let cli = Cli::parse();
    // SAFETY: registers a plain extern "C" function with no captured state.
    unsafe {
        libc::atexit(exit_guard);
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let code = match cli.command {
        Command::Agent { config } => cmd_agent(config),
        Command::Scan {
            config,
            format,
            output,
            driftignore,
            quiet,
            fail_on,
        } => cmd_scan(config, format, output, driftignore, quiet, fail_on),
        Command::Policy {
            command: PolicyCommand::Test { paths, rego_v0 },
        } => cmd_policy_test(paths, rego_v0),
        Command::BreakGlass {
            config,
            resource,
            reason,
            ttl,
            by,
        } => cmd_break_glass(config, resource, reason, ttl, by),
        Command::Review {
            command: ReviewCommand::List { config },
        } => cmd_review_list(config),
        Command::Audit {
            command:
                AuditCommand::Verify {
                    file,
                    config,
                    checkpoint,
                },
        } => cmd_audit_verify(file, config, checkpoint),
        Command::Validate { config } => cmd_validate(config),
        Command::Iac {
            command: IacCommand::List { states, format },
        } => cmd_iac_list(states, format),
        Command::Plugins {
            command: PluginsCommand::List { config },
        } => cmd_plugins_list(config),
        Command::Plugins {
            command:
                PluginsCommand::Inspect {
                    path,
                    in_process,
                    format,
                },
        } => cmd_plugins_inspect(path, in_process, format),
        Command::PluginHost { path } => match plugin::isolated::serve(&path) {
            Ok(()) => EXIT_IN_SYNC,
            Err(e) => fail(format!("plugin host for {}: {e}", path.display())),
        },
    };
    FINISHED.store(true, std::sync::atomic::Ordering::SeqCst);
    ExitCode::from(code)
}

fn cmd_agent(config: PathBuf) -> u8 {
    // With transparent huge pages the allocator's few touched pages become 2 MiB ones: the
    // idle agent held 21 MB of anonymous memory with them and 6 MB without
    // (benches/agent_idle.rs). Batch scans keep them: they help large heaps.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(driftwatch_core::agent::run(
        config,
        driftwatch::components(),
    )) {
        Ok(()) => EXIT_IN_SYNC,
        Err(e) => fail(e),
    }
}

/// The one async runtime of every command: the scan's providers, the agent's schedules and
/// remote state reads run on it.
fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the async runtime: {e}")))
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    EXIT_ERROR
}

fn load(config: &std::path::Path, extra_ignore: &[PathBuf]) -> Result<scan::Prepared, u8> {
    let cfg = Config::load(config).map_err(fail)?;
    scan::prepare(cfg, &driftwatch::components(), extra_ignore).map_err(fail)
}

fn cmd_validate(config: PathBuf) -> u8 {
    match load(&config, &[]) {
        Ok(p) => {
            println!(
                "{}: ok ({} state file(s), {} provider(s), {} sink(s), {} ignore rule(s))",
                config.display(),
                p.sources.local.len() + p.sources.remote.len(),
                p.providers.len(),
                p.sinks.len(),
                p.ignore.len()
            );
            EXIT_IN_SYNC
        }
        Err(code) => code,
    }
}

fn cmd_scan(
    config: PathBuf,
    format: Option<Format>,
    output: Option<PathBuf>,
    driftignore: Vec<PathBuf>,
    quiet: bool,
    fail_on: FailOn,
) -> u8 {
    // In-process plugins run in this process: whatever they print must not land inside
    // the report, so the report gets standard output to itself.
    let mut report_out = match driftwatch_core::plugin::isolated::private_stdout() {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot set up standard output: {e}")),
    };
    let stdout_is_terminal = report_out.is_terminal();
    let prepared = match load(&config, &driftignore) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let format = format
        .or_else(|| output.as_deref().and_then(Format::from_extension))
        .unwrap_or(if output.is_none() && stdout_is_terminal {
            Format::Table
        } else {
            Format::Json
        });
    let progress = if !quiet && std::io::stderr().is_terminal() {
        MultiProgress::new()
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let outcome = match runtime.block_on(scan::run(prepared, &progress)) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let _ = progress.clear();
    let bytes = output::render(&outcome.report, format, &scan::display_path(&config));
    match &output {
        Some(path) => {
            if let Err(e) = driftwatch_plugin_sdk::files::write_atomic(path, &bytes) {
                return fail(format!("cannot write {}: {e}", path.display()));
            }
        }
        None => {
            let out = &mut report_out;
            if let Err(e) = out.write_all(&bytes).and_then(|_| out.flush()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return fail(format!("cannot write to stdout: {e}"));
                }
            }
        }
    }
    if !quiet {
        for r in &outcome.sinks {
            eprintln!(
                "sink `{}` ({}): sent {}, failed {}, retried {}, spooled {}, dropped {}",
                r.name, r.kind, r.sent, r.failed, r.retried, r.spooled, r.dropped
            );
        }
    }
    let summary = &outcome.report.summary;
    let failing = outcome.report.findings.iter().any(|f| match fail_on {
        FailOn::Violation => f.status == FindingStatus::Violation,
        FailOn::High => f.status != FindingStatus::Allowed && f.risk >= Risk::High,
        FailOn::Any => f.status != FindingStatus::Allowed,
    });
    let mut code = if failing { EXIT_DRIFT } else { EXIT_IN_SYNC };
    for p in summary.providers.iter().filter(|p| p.status != "ok") {
        eprintln!(
            "error: provider `{}` failed: {} (the scan is partial: resources of its types were not judged)",
            p.name,
            p.error.as_deref().unwrap_or("unknown error")
        );
        code = EXIT_ERROR;
    }
    // A listing that failed for one region or type leaves resources unjudged: a CI gate
    // must not read that as "in sync" or as a complete verdict.
    let failed_scopes: Vec<_> = summary
        .coverage
        .failed_scopes
        .iter()
        .filter(|s| !s.error.as_deref().unwrap_or("").starts_with("provider `"))
        .collect();
    for s in &failed_scopes {
        let mut at = String::new();
        for part in [s.account.as_deref(), s.region.as_deref()]
            .into_iter()
            .flatten()
        {
            at.push_str(&format!(" {part}"));
        }
        eprintln!(
            "error: listing {} {}{at} failed: {} (the scan is partial: its declared resources were not judged)",
            s.provider,
            s.r#type,
            s.error.as_deref().unwrap_or("no reason given")
        );
    }
    if summary.partial {
        code = EXIT_ERROR;
    }
    for (name, e) in &outcome.sink_errors {
        eprintln!("error: sink `{name}` failed: {e}");
        code = EXIT_ERROR;
    }
    if let Some(e) = &outcome.audit_error {
        eprintln!("error: {e} (the report is complete; this scan's decisions were not logged)");
        code = EXIT_ERROR;
    }
    code
}

fn cmd_iac_list(states: Vec<String>, format: ListFormat) -> u8 {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let components = driftwatch::components();
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for s in states {
        match iac::remote::parse_location(&s, &components) {
            Ok(Some(r)) => remote.push(r),
            Ok(None) => local.push(s),
            Err(e) => return fail(e),
        }
    }
    let files = match iac::expand_locations(&local, &cwd) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let mut all = Vec::new();
    for f in &files {
        match iac::read_state_file(f, &scan::display_path(f)) {
            Ok(s) => all.extend(s.resources),
            Err(e) => return fail(e),
        }
    }
    let mut count = files.len();
    if !remote.is_empty() {
        let runtime = match runtime() {
            Ok(rt) => rt,
            Err(code) => return code,
        };
        // Without a config file, `s3://` uses the standard chain; AWS_ENDPOINT_URL_S3 or
        // AWS_ENDPOINT_URL points it at an emulator, as DRIFTWATCH_AZURERM_ENDPOINT and
        // DRIFTWATCH_GCS_ENDPOINT do for `azurerm://` and `gcs://`.
        let env = |k: &str| std::env::var(k).ok().map(serde_json::Value::String);
        let settings = |scheme: &str| match scheme {
            "s3" => serde_json::json!({
                "endpoint_url": env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")),
            }),
            "azurerm" => serde_json::json!({"endpoint": env("DRIFTWATCH_AZURERM_ENDPOINT")}),
            "gcs" => serde_json::json!({"endpoint": env("DRIFTWATCH_GCS_ENDPOINT")}),
            _ => serde_json::json!({}),
        };
        let mut backends = iac::remote::Backends::new();
        for scheme in components.schemes() {
            let factory = components.backend(scheme).expect("listed");
            match factory.create(Some(&settings(scheme)), &cwd) {
                Ok(b) => {
                    backends.insert(scheme.to_string(), b);
                }
                Err(e) => return fail(format!("[iac.{scheme}]: {e}")),
            }
        }
        match runtime.block_on(iac::remote::load(&remote, &backends)) {
            Ok(fs) => {
                count += fs.len();
                all.extend(fs.into_iter().flat_map(|f| f.resources));
            }
            Err(e) => return fail(e),
        }
    }
    let mut out = std::io::stdout().lock();
    let res = match format {
        ListFormat::Json => serde_json::to_writer_pretty(&mut out, &all)
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(out)),
        ListFormat::Table => {
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::NOTHING)
                .set_header(vec!["PROVIDER", "TYPE", "ID", "ADDRESS", "SOURCE"]);
            for d in &all {
                t.add_row(vec![
                    d.key.provider.as_str(),
                    d.key.r#type.as_str(),
                    d.key.id.as_str(),
                    d.address.as_str(),
                    &d.source,
                ]);
            }
            writeln!(
                out,
                "{t}\n{} resource(s) in {} state file(s)",
                all.len(),
                count
            )
        }
    };
    match res {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            fail(format!("cannot write to stdout: {e}"))
        }
        _ => EXIT_IN_SYNC,
    }
}

fn describe(p: &Plugin) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "path": p.path.display().to_string(),
        "mode": match p.mode { Mode::InProcess => "in-process", Mode::Isolated => "isolated" },
        "version": p.hello.version,
        "abi": format!("{}.{}", p.hello.abi.0, p.hello.abi.1),
        "sdk_version": p.hello.sdk_version,
        "resource_types": p.info.resource_types,
        "config_schema": p.info.config_schema,
    })
}

fn print_plugin(v: &serde_json::Value) {
    println!("{}", v["name"].as_str().unwrap_or(""));
    for key in ["path", "mode", "version", "abi", "sdk_version"] {
        println!("  {key:<15} {}", v[key].as_str().unwrap_or(""));
    }
    let types: Vec<&str> = v["resource_types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .collect();
    println!("  {:<15} {}", "resource types", types.join(", "));
    match &v["config_schema"] {
        serde_json::Value::Null => println!("  {:<15} (none published)", "config schema"),
        schema => println!(
            "  {:<15} {}",
            "config schema",
            serde_json::to_string(schema).unwrap_or_default()
        ),
    }
}

fn cmd_plugins_inspect(path: PathBuf, in_process: bool, format: ListFormat) -> u8 {
    let entry = PluginEntry {
        name: None,
        path,
        sha256: None,
        mode: if in_process {
            Mode::InProcess
        } else {
            Mode::Isolated
        },
        timeout_secs: 30.0,
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match Plugin::load(&entry, &cwd) {
        Ok(p) => {
            let v = describe(&p);
            match format {
                ListFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())
                }
                ListFormat::Table => print_plugin(&v),
            }
            EXIT_IN_SYNC
        }
        Err(e) => fail(e),
    }
}

fn cmd_plugins_list(config: PathBuf) -> u8 {
    let cfg = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let mut code = EXIT_IN_SYNC;
    if cfg.plugins.is_empty() {
        println!("{}: no [[plugins]] configured", config.display());
    }
    for (i, entry) in &cfg.plugins {
        match Plugin::load(entry, &cfg.dir) {
            Ok(p) => print_plugin(&describe(&p)),
            Err(e) => {
                eprintln!("error: plugins[{i}] ({}): {e}", entry.path.display());
                code = EXIT_ERROR;
            }
        }
    }
    code
}

fn cmd_policy_test(paths: Vec<PathBuf>, rego_v0: bool) -> u8 {
    let mut set = match govern::policy::PolicySet::load(&paths, rego_v0) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let results = match set.run_tests() {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if results.is_empty() {
        return fail(format!(
            "no test_* rule in a *_test.rego file under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let failed = results.iter().filter(|(_, _, ok)| !ok).count();
    for (rule, file, ok) in &results {
        println!(
            "{} {rule} ({})",
            if *ok { "PASS" } else { "FAIL" },
            file.display()
        );
    }
    println!("{} passed, {failed} failed", results.len() - failed);
    if failed > 0 {
        EXIT_ERROR
    } else {
        EXIT_IN_SYNC
    }
}

fn governance_of(config: &std::path::Path) -> Result<(govern::GovernanceSection, PathBuf), u8> {
    let cfg = Config::load(config).map_err(fail)?;
    Ok((cfg.governance, cfg.dir))
}

fn cmd_break_glass(
    config: PathBuf,
    resource: String,
    reason: String,
    ttl: String,
    by: Option<String>,
) -> u8 {
    let (g, dir) = match governance_of(&config) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let ttl = match govern::breakglass::parse_ttl(&ttl) {
        Ok(t) => t,
        Err(e) => return fail(format!("--ttl: {e}")),
    };
    if reason.trim().is_empty() {
        return fail("--reason: say why the glass was broken");
    }
    let Some(by) = by
        .or_else(|| std::env::var("USER").ok())
        .filter(|b| !b.is_empty())
    else {
        return fail("--by: who broke the glass (no $USER to default to)");
    };
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let id = {
        use sha2::Digest;
        let h = sha2::Sha256::digest(format!("{resource}\n{by}\n{}", fmt(now)).as_bytes());
        format!("bg-{}", &hex::encode(h)[..10])
    };
    let record = govern::breakglass::BreakGlass {
        id: id.clone(),
        resource,
        reason,
        by,
        created_at: fmt(now),
        expires_at: fmt(now + ttl),
    };
    let path = dir.join(&g.breakglass);
    if let Err(e) = govern::breakglass::record(&path, &record) {
        return fail(e);
    }
    println!(
        "{id}: {} allowed until {} (recorded in {})",
        record.resource,
        record.expires_at,
        path.display()
    );
    EXIT_IN_SYNC
}

fn cmd_review_list(config: PathBuf) -> u8 {
    let (g, dir) = match governance_of(&config) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let records = match govern::breakglass::load(&dir.join(&g.breakglass)) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let now = time::OffsetDateTime::now_utc();
    let due: Vec<_> = records.iter().filter(|r| !r.active(now)).collect();
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_header(vec!["ID", "RESOURCE", "BY", "EXPIRED", "REASON"]);
    for r in &due {
        t.add_row(vec![&r.id, &r.resource, &r.by, &r.expires_at, &r.reason]);
    }
    println!(
        "{t}\n{} break-glass override(s) due a post-incident review",
        due.len()
    );
    EXIT_IN_SYNC
}

fn cmd_audit_verify(log: Option<PathBuf>, config: PathBuf, checkpoint: Option<PathBuf>) -> u8 {
    let log = match log {
        Some(l) => l,
        None => match governance_of(&config) {
            Ok((g, dir)) => match g.audit_log {
                Some(a) => dir.join(a),
                None => {
                    return fail(format!(
                        "{} sets no `[governance] audit_log`; pass --file",
                        config.display()
                    ))
                }
            },
            Err(code) => return code,
        },
    };
    let checkpoint = checkpoint.unwrap_or_else(|| govern::audit::checkpoint_path(&log));
    match govern::audit::verify(&log, &checkpoint) {
        Err(e) => fail(e),
        Ok(Ok(n)) => {
            println!("{}: intact, {n} record(s)", log.display());
            EXIT_IN_SYNC
        }
        Ok(Err(problems)) => {
            for p in &problems {
                match p.line {
                    Some(l) => eprintln!("{}:{l}: {}", log.display(), p.message),
                    None => eprintln!("{}: {}", log.display(), p.message),
                }
            }
            eprintln!(
                "error: {}: {} problem(s): the log was tampered with",
                log.display(),
                problems.len()
            );
            EXIT_ERROR
        }
    }
}
