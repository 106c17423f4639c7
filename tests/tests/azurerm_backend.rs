//! The azurerm state backend against a real Azurite Blob service: a glob over a container
//! reads exactly the states it matches, a scan of the ARM fixture estate against them finds
//! nothing, and a blob that does not exist is an error naming it.

use azure_storage::{CloudLocation, StorageCredentials};
use azure_storage_blobs::prelude::ClientBuilder;
use driftwatch_core::iac::remote::load;
use driftwatch_tests::arm_fixture::{terraform_state, ArmFixture, ArmSpec};
use driftwatch_tests::azurite::{Azurite, ACCOUNT, KEY};
use driftwatch_tests::scan_config;
use serde_json::json;

#[test]
fn states_are_read_from_blob_storage() {
    let azurite = Azurite::start();
    // Terraform's azurerm backend reads the account key from the same variable.
    std::env::set_var("ARM_ACCESS_KEY", KEY);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let container = ClientBuilder::with_location(
            CloudLocation::Custom {
                account: ACCOUNT.into(),
                uri: format!("{}/{ACCOUNT}", azurite.origin),
            },
            StorageCredentials::access_key(ACCOUNT, KEY),
        )
        .container_client("tfstate");
        container.create().await.unwrap();
        let empty = json!({"version": 4, "terraform_version": "1.9.8", "serial": 1,
            "lineage": "dev", "outputs": {}, "resources": []});
        for (name, body) in [
            ("envs/prod/network.tfstate", terraform_state().to_string()),
            ("envs/dev/empty.tfstate", empty.to_string()),
            // Neither matches the glob.
            (
                "envs/prod/network.tfstate.backup",
                "not a state".to_string(),
            ),
            ("other/stray.tfstate", "not a state".to_string()),
        ] {
            container
                .blob_client(name)
                .put_block_blob(body.into_bytes())
                .await
                .unwrap();
        }
    });
    let backends =
        driftwatch_tests::backends("azurerm", json!({"endpoint": azurite.endpoint_template()}));
    let glob = format!("azurerm://{ACCOUNT}/tfstate/envs/**/*.tfstate");
    let files = rt
        .block_on(load(&[driftwatch_tests::location(&glob)], &backends))
        .unwrap();
    let got: Vec<(&str, usize)> = files
        .iter()
        .map(|f| (&*f.source, f.resources.len()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "azurerm://devstoreaccount1/tfstate/envs/dev/empty.tfstate",
                0
            ),
            (
                "azurerm://devstoreaccount1/tfstate/envs/prod/network.tfstate",
                10
            ),
        ]
    );

    // A whole scan: the ARM fixture's estate against the states in Blob storage.
    let fixture = ArmFixture::start(ArmSpec::examples());
    ArmFixture::credentials_env();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[iac]\nstates = [\"{glob}\"]\n\n[iac.azurerm]\nendpoint = \"{}\"\n\n\
         [[providers]]\nkind = \"azure\"\n{}",
        azurite.endpoint_template(),
        fixture.provider_settings()
    );
    let report = scan_config(dir.path(), &text);
    assert!(!report.summary.partial);
    assert_eq!(report.findings.len(), 0, "{:?}", report.findings);
    assert_eq!(report.summary.resources.declared, 10);

    // A state that is not there.
    let missing = format!("azurerm://{ACCOUNT}/tfstate/envs/prod/gone.tfstate");
    let err = rt
        .block_on(load(&[driftwatch_tests::location(&missing)], &backends))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&missing), "{err}");
    assert!(err.contains("404") || err.contains("BlobNotFound"), "{err}");
}
