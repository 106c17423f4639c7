//! Plugin overhead benchmark: the inventory provider collects 100,000 resources linked into
//! the binary, as a plugin loaded in process, and as an isolated plugin in a child process.
//! Reports each mode's time as a ratio to the linked provider, measured in the same run.
//!
//! `cargo bench -p driftwatch-core --bench plugin_100k` (set `DRIFTWATCH_BENCH_N` for another size).

#[path = "common.rs"]
mod common;

use driftwatch_core::plugin::{Mode, Plugin, PluginEntry};
use driftwatch_plugin_sdk::{CollectContext, DynProviderFactory, Emit, ProviderError, Resource};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// As in the driftwatch binary, so the linked provider is measured as it runs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Count(usize);

impl Emit for Count {
    fn emit(&mut self, batch: Vec<Resource>) -> Result<(), ProviderError> {
        self.0 += batch.len();
        Ok(())
    }
}

fn collect(factory: &dyn DynProviderFactory, dir: &Path) -> (Duration, usize) {
    let config = serde_json::json!({
        "format": "aws-config",
        "paths": ["snapshot.json"],
        "config_dir": dir.display().to_string(),
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Instant::now();
    let provider = factory.create(&config).unwrap();
    let mut out = Count(0);
    rt.block_on(provider.collect(&CollectContext::new(1000), &mut out))
        .unwrap();
    (t.elapsed(), out.0)
}

fn main() {
    let (_, n, runs) = common::settings();
    // Isolated plugins re-execute driftwatch; from a benchmark that must be named.
    std::env::set_var("DRIFTWATCH_PLUGIN_HOST", env!("CARGO_BIN_EXE_driftwatch"));
    // the cli crate depends on the plugin crate for its benchmarks, so cargo built the
    // cdylib beside this executable, with the benchmark's profile.
    let exe = std::env::current_exe().unwrap();
    let lib: PathBuf = exe
        .parent()
        .unwrap()
        .join("libdriftwatch_plugin_inventory.so");
    assert!(lib.is_file(), "{} was not built", lib.display());
    let dir = tempfile::tempdir().unwrap();
    common::generate(dir.path(), n);
    let load = |mode| {
        let entry = PluginEntry {
            name: Some("inventory-plugin".into()),
            path: lib.clone(),
            sha256: None,
            mode,
            timeout_secs: 600.0,
        };
        Plugin::load(&entry, dir.path()).unwrap()
    };
    let in_process = load(Mode::InProcess);
    let isolated = load(Mode::Isolated);
    let (mut linked_t, mut inproc_t, mut iso_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut counts = (0, 0, 0);
    for _ in 0..runs {
        let (t, c) = collect(&driftwatch_provider_inventory::InventoryFactory, dir.path());
        linked_t.push(t);
        counts.0 = c;
        let (t, c) = collect(&in_process, dir.path());
        inproc_t.push(t);
        counts.1 = c;
        let (t, c) = collect(&isolated, dir.path());
        iso_t.push(t);
        counts.2 = c;
    }
    assert_eq!(
        counts.0, counts.1,
        "in-process plugin emitted another count"
    );
    assert_eq!(counts.0, counts.2, "isolated plugin emitted another count");
    let (l, p, i) = (
        common::median(linked_t),
        common::median(inproc_t),
        common::median(iso_t),
    );
    println!(
        "{} resources collected by the inventory provider (median of {runs})",
        counts.0
    );
    println!(
        "linked into the binary:   {:>8.1} ms",
        l.as_secs_f64() * 1e3
    );
    println!(
        "plugin, in-process:       {:>8.1} ms  ({:.2}x linked)",
        p.as_secs_f64() * 1e3,
        p.as_secs_f64() / l.as_secs_f64()
    );
    println!(
        "plugin, isolated process: {:>8.1} ms  ({:.2}x linked)",
        i.as_secs_f64() * 1e3,
        i.as_secs_f64() / l.as_secs_f64()
    );
}
