//! The azure provider built as a plugin (`--features plugin`), loaded through the plugin
//! host and run against the ARM fixture server: the estate in sync gives no finding through
//! the C ABI either.

use driftwatch_tests::arm_fixture::{terraform_state, ArmFixture, ArmSpec};
use driftwatch_tests::{repo_root, scan_config};
use std::process::Command;

#[test]
fn the_azure_plugin_lists_the_fixture_through_the_abi() {
    // A cargo run of its own, in a target folder of its own (shared with the aws plugin's
    // build): the outer cargo holds the lock on the workspace's.
    let target = repo_root().join("target/test-plugins");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(repo_root())
        .args(["build", "--locked", "--quiet", "--lib"])
        .args(["-p", "driftwatch-provider-azure", "--features", "plugin"])
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the azure plugin failed");
    let lib = target.join("debug/libdriftwatch_provider_azure.so");
    assert!(lib.is_file(), "{} was not built", lib.display());

    let fixture = ArmFixture::start(ArmSpec::examples());
    ArmFixture::credentials_env();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.tfstate"),
        terraform_state().to_string(),
    )
    .unwrap();
    let text = format!(
        "[iac]\nstates = [\"main.tfstate\"]\n\n[[plugins]]\nname = \"azure-plugin\"\npath = \"{}\"\nmode = \"in-process\"\n\n\
         [[providers]]\nkind = \"azure-plugin\"\n{}",
        lib.display(),
        fixture.provider_settings()
    );
    let report = scan_config(dir.path(), &text);
    let p = &report.summary.providers[0];
    assert_eq!((p.kind.as_str(), p.status.as_str()), ("azure-plugin", "ok"));
    assert_eq!(p.api_calls, fixture.seen().len() as u64);
    assert!(!report.summary.partial, "{:?}", report.summary.coverage);
    assert_eq!(report.findings.len(), 0, "{:?}", report.findings);
    assert_eq!(report.summary.resources.declared, 10);
}
