//! `gcs://` state locations read with google-cloud-storage from a real gcp-storage-emulator,
//! through the Cloud Storage gateway (gRPC listing, HTTP media download), and a whole scan
//! whose state lives there; the gcp provider as a plugin, through the C ABI.

use driftwatch_core::iac::remote::{load, Backends};
use driftwatch_tests::gce_fixture::{bucket_state, terraform_state, GceFixture, GceSpec, PROJECT};
use driftwatch_tests::gcs::{BucketSeed, GcsEmulator, GcsGateway};
use driftwatch_tests::{plugin_lib, scan_config};
use serde_json::json;

fn backends(gateway: &GcsGateway) -> Backends {
    driftwatch_tests::backends(
        "gcs",
        json!({"endpoint": gateway.endpoint, "anonymous": true}),
    )
}

fn empty_state(serial: u64) -> Vec<u8> {
    json!({"version": 4, "terraform_version": "1.9.8", "serial": serial, "lineage": "l",
           "outputs": {}, "resources": []})
    .to_string()
    .into_bytes()
}

#[test]
fn a_glob_reads_exactly_the_matching_objects_and_a_missing_one_says_so() {
    let emulator = GcsEmulator::start();
    emulator.seed(&BucketSeed::private("acme-tfstate", json!({})));
    for (name, bytes) in [
        ("envs/prod/default.tfstate", empty_state(1)),
        ("envs/staging/default.tfstate", empty_state(2)),
        ("envs/prod/notes.txt", b"not a state".to_vec()),
        ("other/default.tfstate", empty_state(3)),
    ] {
        emulator.upload("acme-tfstate", name, &bytes);
    }
    // One object a page: the listing must follow its page tokens.
    let gateway = GcsGateway::start(&emulator, 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let loc = driftwatch_tests::location("gcs://acme-tfstate/envs/**/*.tfstate");
    let files = rt.block_on(load(&[loc], &backends(&gateway))).unwrap();
    let sources: Vec<&str> = files.iter().map(|f| &f.source[..]).collect();
    assert_eq!(
        sources,
        vec![
            "gcs://acme-tfstate/envs/prod/default.tfstate",
            "gcs://acme-tfstate/envs/staging/default.tfstate"
        ]
    );
    // 3 objects under envs/ at one a page, and two downloads.
    assert_eq!(gateway.calls(), 3 + 2);

    let missing = driftwatch_tests::location("gcs://acme-tfstate/envs/dev/default.tfstate");
    let err = rt
        .block_on(load(&[missing], &backends(&gateway)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gcs://acme-tfstate/envs/dev/default.tfstate"),
        "{err}"
    );
    assert!(err.contains("404"), "{err}");

    let bad = driftwatch_tests::location("gcs://acme-tfstate/envs/prod/notes.txt");
    let err = rt
        .block_on(load(&[bad], &backends(&gateway)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("notes.txt"), "{err}");
}

#[test]
fn a_scan_reads_its_state_from_gcs() {
    let emulator = GcsEmulator::start();
    let tfstate = BucketSeed::private("acme-tfstate", json!({"env": "prod"}));
    emulator.seed(&tfstate);
    let state = terraform_state(&[bucket_state(&tfstate)]);
    emulator.upload(
        "acme-tfstate",
        "prod/default.tfstate",
        state.to_string().as_bytes(),
    );
    let gateway = GcsGateway::start(&emulator, 100);
    let compute = GceFixture::start(GceSpec::example());
    let dir = tempfile::tempdir().unwrap();
    let creds = compute.credentials_file(dir.path());
    let text = format!(
        "[iac]\nstates = [\"gcs://acme-tfstate/prod/*.tfstate\"]\n\n[iac.gcs]\nendpoint = \"{0}\"\n\
         anonymous = true\n\n[[providers]]\nkind = \"gcp\"\nprojects = [\"{PROJECT}\"]\n\
         credentials_file = \"{1}\"\ncompute_endpoint = \"{2}\"\nstorage_endpoint = \"{0}\"\n",
        gateway.endpoint,
        creds.display(),
        compute.endpoint
    );
    let report = scan_config(dir.path(), &text);
    assert!(!report.summary.partial, "{:?}", report.summary.coverage);
    assert_eq!(report.summary.resources.declared, 9);
    assert_eq!(report.findings.len(), 0, "{:?}", report.findings);
}

#[test]
fn the_gcp_plugin_lists_the_estate_through_the_abi() {
    let lib = plugin_lib("driftwatch_plugin_gcp");
    let emulator = GcsEmulator::start();
    let gateway = GcsGateway::start(&emulator, 100);
    let compute = GceFixture::start(GceSpec::example());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.tfstate"),
        terraform_state(&[]).to_string(),
    )
    .unwrap();
    let creds = compute.credentials_file(dir.path());
    let text = format!(
        "[iac]\nstates = [\"main.tfstate\"]\n\n[[plugins]]\nname = \"gcp-plugin\"\npath = \"{}\"\n\
         mode = \"in-process\"\n\n[[providers]]\nkind = \"gcp-plugin\"\nprojects = [\"{PROJECT}\"]\n\
         credentials_file = \"{}\"\ncompute_endpoint = \"{}\"\nstorage_endpoint = \"{}\"\n",
        lib.display(),
        creds.display(),
        compute.endpoint,
        gateway.endpoint
    );
    let report = scan_config(dir.path(), &text);
    let p = &report.summary.providers[0];
    assert_eq!((p.kind.as_str(), p.status.as_str()), ("gcp-plugin", "ok"));
    assert_eq!(p.api_calls as usize, compute.seen().len() + gateway.calls());
    assert!(!report.summary.partial, "{:?}", report.summary.coverage);
    assert_eq!(report.findings.len(), 0, "{:?}", report.findings);
}
