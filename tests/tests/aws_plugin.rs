//! The aws provider as a plugin (`driftwatch-plugin-aws`), loaded through the plugin host
//! and run against a real moto server: it lists the same estate as the linked-in
//! provider, through the C ABI.

use driftwatch_tests::moto::Moto;
use driftwatch_tests::{plugin_lib, scan_config};
use serde_json::json;

#[test]
fn the_aws_plugin_lists_moto_through_the_abi() {
    let lib = plugin_lib("driftwatch_plugin_aws");

    Moto::fake_credentials();
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&moto.endpoint)
            .load()
            .await;
        aws_sdk_ec2::Client::new(&conf)
            .create_vpc()
            .cidr_block("10.7.0.0/16")
            .send()
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("empty.tfstate"),
        json!({"version": 4, "terraform_version": "1.9.8", "serial": 1, "lineage": "e",
               "outputs": {}, "resources": []})
        .to_string(),
    )
    .unwrap();
    let text = format!(
        "[iac]\nstates = [\"empty.tfstate\"]\n\n[[plugins]]\nname = \"aws-plugin\"\npath = \"{}\"\nmode = \"in-process\"\n\n\
         [[providers]]\nkind = \"aws-plugin\"\nregions = [\"us-east-1\"]\nendpoint_url = \"{}\"\n",
        lib.display(),
        moto.endpoint
    );
    let report = scan_config(dir.path(), &text);
    let p = &report.summary.providers[0];
    assert_eq!((p.kind.as_str(), p.status.as_str()), ("aws-plugin", "ok"));
    assert!(p.api_calls > 0);
    assert!(!report.summary.partial, "{:?}", report.summary.coverage);
    let got: Vec<(&str, &str)> = report
        .findings
        .iter()
        .map(|f| (f.kind.as_str(), f.resource.key.r#type.as_str()))
        .collect();
    assert_eq!(got, vec![("unmanaged", "aws_vpc")], "the seeded VPC only");
}
