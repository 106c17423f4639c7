//! Against a real moto server: states read from `s3://` locations (globs, exact keys,
//! missing and broken objects), and one provider entry listing several accounts through
//! assumed roles.

use aws_config::{BehaviorVersion, Region};
use driftwatch_core::config::Config;
use driftwatch_core::iac::remote::load;
use driftwatch_core::scan;
use driftwatch_plugin_sdk::{FindingKind, ScanReport};
use driftwatch_tests::moto::Moto;
use indicatif::{MultiProgress, ProgressDrawTarget};
use serde_json::json;
use std::path::Path;

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .load()
        .await
}

fn s3(conf: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build(),
    )
}

fn bucket_state(bucket: &str) -> String {
    json!({"version": 4, "terraform_version": "1.9.8", "serial": 1, "lineage": "s3",
        "outputs": {}, "resources": [
        {"mode": "managed", "type": "aws_s3_bucket", "name": "b",
         "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
         "instances": [{"schema_version": 0, "attributes": {"id": bucket, "bucket": bucket,
            "tags": {}}}]}]})
    .to_string()
}

fn scan_with(dir: &Path, text: &str, rt: &tokio::runtime::Runtime) -> ScanReport {
    let path = dir.join("driftwatch.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::parse(&path, text, &|_| None).unwrap();
    let prepared = scan::prepare(config, &driftwatch::components(), &[]).unwrap();
    let hidden = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
    rt.block_on(scan::run(prepared, &hidden)).unwrap().report
}

#[test]
fn states_are_read_from_s3_locations() {
    Moto::fake_credentials();
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conf = rt.block_on(sdk(&moto.endpoint));
    let client = s3(&conf);
    rt.block_on(async {
        client
            .create_bucket()
            .bucket("acme-tfstate")
            .send()
            .await
            .unwrap();
        for (key, body) in [
            ("envs/prod/main.tfstate", bucket_state("acme-tfstate")),
            ("envs/staging/eu/net.tfstate", bucket_state("acme-staging")),
            ("envs/prod/main.tfstate.backup", "not a state".into()),
            ("envs/README.md", "notes".into()),
            (
                "broken/main.tfstate",
                "{\"version\": 4, \"resources\": [".into(),
            ),
        ] {
            client
                .put_object()
                .bucket("acme-tfstate")
                .key(key)
                .body(body.into_bytes().into())
                .send()
                .await
                .unwrap();
        }
    });
    let backend = driftwatch_tests::backends(
        "s3",
        json!({"endpoint_url": moto.endpoint, "region": "us-east-1"}),
    );
    let read = |urls: &[&str]| {
        let locs: Vec<_> = urls.iter().map(|u| driftwatch_tests::location(u)).collect();
        rt.block_on(load(&locs, &backend))
    };
    let files = read(&["s3://acme-tfstate/envs/**/*.tfstate"]).unwrap();
    let sources: Vec<(&str, usize)> = files
        .iter()
        .map(|f| (&*f.source, f.resources.len()))
        .collect();
    assert_eq!(
        sources,
        vec![
            ("s3://acme-tfstate/envs/prod/main.tfstate", 1),
            ("s3://acme-tfstate/envs/staging/eu/net.tfstate", 1),
        ]
    );
    let exact = read(&[
        "s3://acme-tfstate/envs/prod/main.tfstate",
        "s3://acme-tfstate/envs/*/main.tfstate",
    ])
    .unwrap();
    assert_eq!(exact.len(), 1, "the same object named twice is read once");

    let missing = read(&["s3://acme-tfstate/envs/dev/main.tfstate"])
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("s3://acme-tfstate/envs/dev/main.tfstate")
            && missing.contains("NoSuchKey"),
        "{missing}"
    );
    let none = read(&["s3://acme-tfstate/nothing/**/*.tfstate"])
        .unwrap_err()
        .to_string();
    assert!(none.contains("no object matches"), "{none}");
    let broken = read(&["s3://acme-tfstate/broken/main.tfstate"])
        .unwrap_err()
        .to_string();
    assert!(
        broken.starts_with("s3://acme-tfstate/broken/main.tfstate:"),
        "{broken}"
    );
    let no_bucket = read(&["s3://acme-absent/x.tfstate"])
        .unwrap_err()
        .to_string();
    assert!(no_bucket.contains("NoSuchBucket"), "{no_bucket}");

    // A whole scan whose state lives in the bucket it declares: in sync.
    let dir = tempfile::tempdir().unwrap();
    let report = scan_with(
        dir.path(),
        &format!(
            "[iac]\nstates = [\"s3://acme-tfstate/envs/prod/*.tfstate\"]\n\n[iac.s3]\nendpoint_url = \"{0}\"\nregion = \"us-east-1\"\n\n\
             [[providers]]\nkind = \"aws\"\nregions = [\"us-east-1\"]\nendpoint_url = \"{0}\"\n",
            moto.endpoint
        ),
        &rt,
    );
    assert_eq!(report.findings.len(), 0, "{:#?}", report.findings);
    assert_eq!(
        report.summary.states[0].source,
        "s3://acme-tfstate/envs/prod/main.tfstate"
    );
}

#[test]
fn one_entry_lists_several_accounts() {
    Moto::fake_credentials();
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conf = rt.block_on(sdk(&moto.endpoint));
    // Seed a VPC inside account 222222222222, as the role the provider will assume there.
    let vpc = rt.block_on(async {
        let creds = aws_sdk_sts::Client::new(&conf)
            .assume_role()
            .role_arn("arn:aws:iam::222222222222:role/seed")
            .role_session_name("seed")
            .send()
            .await
            .unwrap()
            .credentials
            .unwrap();
        let other = conf
            .clone()
            .into_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new(
                        creds.access_key_id(),
                        creds.secret_access_key(),
                        Some(creds.session_token().to_string()),
                        None,
                        "seed",
                    ),
                ),
            )
            .build();
        aws_sdk_ec2::Client::new(&other)
            .create_vpc()
            .cidr_block("10.9.0.0/16")
            .send()
            .await
            .unwrap()
            .vpc
            .unwrap()
            .vpc_id
            .unwrap()
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
        "[iac]\nstates = [\"empty.tfstate\"]\n\n[[providers]]\nkind = \"aws\"\nregions = [\"us-east-1\"]\nendpoint_url = \"{}\"\n\
         accounts = [\n  {{ role_arn = \"arn:aws:iam::111111111111:role/audit\" }},\n  {{ role_arn = \"arn:aws:iam::222222222222:role/audit\", external_id = \"x\" }},\n]\n",
        moto.endpoint
    );
    let report = scan_with(dir.path(), &text, &rt);
    let got: Vec<(FindingKind, &str, Option<&str>)> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.kind,
                f.resource.key.id.as_str(),
                f.resource.account.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(FindingKind::Unmanaged, vpc.as_str(), Some("222222222222"))],
        "each account's default VPC is a cloud default; the seeded one is unmanaged"
    );
    let accounts: std::collections::BTreeSet<&str> = report
        .summary
        .coverage
        .failed_scopes
        .iter()
        .filter_map(|s| s.account.as_deref())
        .collect();
    assert!(
        accounts.is_empty(),
        "{:?}",
        report.summary.coverage.failed_scopes
    );
    assert!(!report.summary.partial);
}
