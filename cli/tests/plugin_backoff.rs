//! An isolated plugin that crashes is started afresh on the next collection, but only
//! after a backoff. One test in its own binary: it sets the plugin-host variable for the
//! whole process.

use driftwatch_core::plugin::{Mode, Plugin, PluginEntry};
use driftwatch_plugin_sdk::{CollectContext, DynProviderFactory, Emit, ProviderError, Resource};
use std::path::Path;
use std::process::Command;

struct Sink;

impl Emit for Sink {
    fn emit(&mut self, _: Vec<Resource>) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[test]
fn a_crashed_plugin_restarts_after_a_backoff() {
    std::env::set_var("DRIFTWATCH_PLUGIN_HOST", env!("CARGO_BIN_EXE_driftwatch"));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libsegv.so");
    let ok = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-DDW_SEGFAULT", "-I"])
        .arg(repo.join("plugin-sdk/include"))
        .arg("-o")
        .arg(&lib)
        .arg(repo.join("cli/tests/plugins/c/hello.c"))
        .status()
        .expect("cc runs")
        .success();
    assert!(ok);
    let plugin = Plugin::load(
        &PluginEntry {
            name: None,
            path: lib,
            sha256: None,
            mode: Mode::Isolated,
            timeout_secs: 10.0,
        },
        dir.path(),
    )
    .unwrap();
    let provider = plugin.create(&serde_json::json!({"count": 3})).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let collect = || {
        rt.block_on(provider.collect(&CollectContext::new(10), &mut Sink))
            .unwrap_err()
            .to_string()
    };
    let first = collect();
    assert!(
        first.contains("crashed") && first.contains("SIGSEGV"),
        "{first}"
    );
    // Right after the crash: no new process, a clear word on when it will be tried again.
    let second = collect();
    assert!(second.contains("failed 1 time(s) in a row"), "{second}");
    assert!(second.contains("started afresh in"), "{second}");
    // After the first backoff (1 s) a fresh process is started, and crashes again.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let third = collect();
    assert!(third.contains("SIGSEGV"), "{third}");
    // The second consecutive failure doubles the wait.
    let fourth = collect();
    assert!(fourth.contains("failed 2 time(s) in a row"), "{fourth}");
}
