//! The azure provider as a plugin (`driftwatch-plugin-azure`), loaded through the plugin
//! host and run against the ARM fixture server: the estate in sync gives no finding through
//! the C ABI either.

use driftwatch_tests::arm_fixture::{terraform_state, ArmFixture, ArmSpec};
use driftwatch_tests::{plugin_lib, scan_config};

#[test]
fn the_azure_plugin_lists_the_fixture_through_the_abi() {
    let lib = plugin_lib("driftwatch_plugin_azure");

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
