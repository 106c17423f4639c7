//! The `Provider` contract: config validation, file resolution, batching and cancellation.

mod common;

use common::data;
use driftwatch_plugin_sdk::{
    CollectContext, DynProviderFactory, Emit, Provider, ProviderError, ProviderFactory, Resource,
};
use driftwatch_provider_inventory::{Format, InventoryFactory};
use serde_json::{json, Value};
use std::path::Path;

/// Records batches; optionally cancels the scan after the n-th one.
struct Recorder {
    batches: Vec<Vec<Resource>>,
    cancel_after: Option<(usize, CollectContext)>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            batches: Vec::new(),
            cancel_after: None,
        }
    }

    fn total(&self) -> usize {
        self.batches.iter().map(Vec::len).sum()
    }
}

impl Emit for Recorder {
    fn emit(&mut self, batch: Vec<Resource>) -> Result<(), ProviderError> {
        self.batches.push(batch);
        if let Some((n, ctx)) = &self.cancel_after {
            if self.batches.len() == *n {
                ctx.cancel();
            }
        }
        Ok(())
    }
}

fn configured(config: Value) -> Box<dyn Provider> {
    InventoryFactory.create(&config).expect("valid config")
}

fn config_err(config: Value) -> (String, String) {
    match InventoryFactory.create(&config).err() {
        Some(ProviderError::Config { path, message }) => (path, message),
        other => panic!("{config}: expected a config error, got {other:?}"),
    }
}

/// Copies fixtures into a temporary config folder, under the given relative names.
fn workspace(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (fixture, rel) in files {
        let dest = dir.path().join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(data(fixture), dest).unwrap();
    }
    dir
}

fn dir_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn info_describes_the_provider() {
    let info = InventoryFactory.info();
    assert_eq!(info.name, "inventory");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.resource_types.len(), 18);
    for t in [
        "aws_security_group",
        "aws_s3_bucket_public_access_block",
        "aws_iam_role",
        "azurerm_network_security_group",
        "azurerm_subnet",
        "google_compute_firewall",
        "google_storage_bucket",
    ] {
        assert!(info.resource_types.iter().any(|x| x == t), "{t}");
    }
    let schema = info.config_schema.expect("schema");
    assert_eq!(schema["required"], json!(["format", "paths"]));
    assert_eq!(schema["additionalProperties"], json!(false));
    assert_eq!(
        schema["properties"]["format"]["enum"],
        json!(["aws-config", "gcp-asset-inventory", "azure-resource-graph"])
    );
}

#[test]
fn formats_round_trip_their_names() {
    for f in Format::ALL {
        assert_eq!(f.as_str().parse::<Format>(), Ok(f));
        assert_eq!(f.to_string(), f.as_str());
    }
    assert!("aws".parse::<Format>().is_err());
}

#[test]
fn config_errors_name_the_key() {
    let cases = [
        (
            json!({"format": "aws-config", "paths": ["a"], "pathz": 1}),
            "pathz",
            "unknown key",
        ),
        (json!({"paths": ["a"]}), "format", "missing"),
        (
            json!({"format": 3, "paths": ["a"]}),
            "format",
            "expected a string, found a number",
        ),
        (
            json!({"format": "aws", "paths": ["a"]}),
            "format",
            "unknown format `aws`",
        ),
        (json!({"format": "aws-config"}), "paths", "missing"),
        (
            json!({"format": "aws-config", "paths": "a.json"}),
            "paths",
            "expected a list of strings",
        ),
        (
            json!({"format": "aws-config", "paths": []}),
            "paths",
            "is empty",
        ),
        (
            json!({"format": "aws-config", "paths": ["a", 3]}),
            "paths[1]",
            "expected a string",
        ),
        (
            json!({"format": "aws-config", "paths": ["a", ""]}),
            "paths[1]",
            "empty string",
        ),
        (
            json!({"format": "aws-config", "paths": ["[a"]}),
            "paths[0]",
            "invalid glob",
        ),
        (
            json!({"format": "aws-config", "paths": ["a"], "config_dir": 5}),
            "config_dir",
            "expected a string",
        ),
        (json!(["not", "a", "table"]), "", "expected a table"),
    ];
    for (config, path, message) in cases {
        let (p, m) = config_err(config.clone());
        assert_eq!(p, path, "{config}");
        assert!(m.contains(message), "{config}: {m}");
    }
}

#[tokio::test]
async fn relative_globs_resolve_against_config_dir() {
    let dir = workspace(&[
        ("aws/config-snapshot.json", "exports/eu/snapshot.json"),
        (
            "aws/batch-get-resource-config.json",
            "exports/us/batch.json",
        ),
        ("aws/config-history.jsonl", "history/us.jsonl"),
    ]);
    let p = configured(json!({
        "format": "aws-config",
        "paths": ["exports/**/*.json", "history/us.jsonl", "exports/eu/snapshot.json"],
        "config_dir": dir_str(dir.path()),
    }));
    let mut out = Recorder::new();
    let report = p
        .collect(&CollectContext::default(), &mut out)
        .await
        .unwrap();
    // 12 from the snapshot, 3 from batch-get, 1 live VPC from the history; the snapshot
    // named twice is read once.
    assert_eq!(out.total(), 16);
    assert_eq!(report.api_calls, 0);
    let accounts: std::collections::BTreeSet<_> = report
        .scopes
        .iter()
        .filter_map(|s| s.account.clone())
        .collect();
    assert_eq!(
        accounts.into_iter().collect::<Vec<_>>(),
        ["123456789012", "210987654321"]
    );
    assert_eq!(
        report.scopes.len(),
        11,
        "(account, type) pairs with records"
    );
    assert!(report.scopes.iter().all(|s| s.complete));
    assert!(report
        .warnings
        .iter()
        .any(|w| w.contains("AWS::Lambda::Function")));
}

#[tokio::test]
async fn absolute_paths_ignore_config_dir() {
    let p = configured(json!({
        "format": "gcp-asset-inventory",
        "paths": [dir_str(&data("gcp/assets.jsonl"))],
        "config_dir": "/nonexistent/elsewhere",
    }));
    let mut out = Recorder::new();
    p.collect(&CollectContext::default(), &mut out)
        .await
        .unwrap();
    assert_eq!(out.total(), 11);
}

#[tokio::test]
async fn batches_never_exceed_batch_size() {
    let dir = workspace(&[("aws/config-snapshot.json", "s.json")]);
    let p = configured(json!({
        "format": "aws-config", "paths": ["s.json"], "config_dir": dir_str(dir.path()),
    }));
    let mut ctx = CollectContext::default();
    ctx.batch_size = 5;
    let mut out = Recorder::new();
    p.collect(&ctx, &mut out).await.unwrap();
    let sizes: Vec<usize> = out.batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [5, 5, 2]);

    ctx.batch_size = 0;
    let mut out = Recorder::new();
    p.collect(&ctx, &mut out).await.unwrap();
    assert_eq!(
        out.batches.len(),
        12,
        "a zero batch size still makes progress"
    );
}

#[tokio::test]
async fn cancellation_stops_between_batches() {
    let dir = workspace(&[("azure/resource-graph.json", "graph.json")]);
    let p = configured(json!({
        "format": "azure-resource-graph", "paths": ["graph.json"], "config_dir": dir_str(dir.path()),
    }));
    let mut ctx = CollectContext::default();
    ctx.batch_size = 2;
    let mut out = Recorder::new();
    out.cancel_after = Some((1, ctx.clone()));
    let err = p.collect(&ctx, &mut out).await.unwrap_err();
    assert_eq!(err, ProviderError::Cancelled);
    assert_eq!(out.batches.len(), 1);

    let ctx = CollectContext::default();
    ctx.cancel();
    let mut out = Recorder::new();
    let err = p.collect(&ctx, &mut out).await.unwrap_err();
    assert_eq!(err, ProviderError::Cancelled);
    assert!(out.batches.is_empty());
}

#[tokio::test]
async fn emit_errors_stop_the_collection() {
    struct Refuse;
    impl Emit for Refuse {
        fn emit(&mut self, _: Vec<Resource>) -> Result<(), ProviderError> {
            Err(ProviderError::Cancelled)
        }
    }
    let p = configured(json!({
        "format": "gcp-asset-inventory", "paths": [dir_str(&data("gcp/assets.jsonl"))],
    }));
    let err = p
        .collect(&CollectContext::default(), &mut Refuse)
        .await
        .unwrap_err();
    assert_eq!(err, ProviderError::Cancelled);
}

async fn collect_err(format: &str, paths: Value, dir: &Path) -> (String, String) {
    let p = configured(json!({"format": format, "paths": paths, "config_dir": dir_str(dir)}));
    match p
        .collect(&CollectContext::default(), &mut Recorder::new())
        .await
    {
        Err(ProviderError::Input {
            source_name,
            message,
        }) => (source_name, message),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_files_and_empty_globs_are_input_errors() {
    let dir = workspace(&[("gcp/assets.jsonl", "assets/a.jsonl")]);
    let (source, message) = collect_err("aws-config", json!(["nope/*.json"]), dir.path()).await;
    assert_eq!(source, "nope/*.json");
    assert!(
        message.starts_with("no file matches this pattern"),
        "{message}"
    );

    let (source, message) = collect_err("aws-config", json!(["missing.json"]), dir.path()).await;
    assert_eq!(source, dir_str(&dir.path().join("missing.json")));
    assert!(message.starts_with("file not found"), "{message}");

    let (source, message) = collect_err("aws-config", json!(["assets"]), dir.path()).await;
    assert_eq!(source, dir_str(&dir.path().join("assets")));
    assert!(message.contains("is a folder"), "{message}");
}

#[tokio::test]
async fn malformed_files_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.json"),
        "{\n  \"data\": [\n    {\"id\": 1,}\n",
    )
    .unwrap();
    let (source, message) =
        collect_err("azure-resource-graph", json!(["broken.json"]), dir.path()).await;
    assert_eq!(source, dir_str(&dir.path().join("broken.json")));
    assert!(message.starts_with("invalid JSON"), "{message}");
    assert!(message.contains("line 3"), "{message}");

    let good = r#"{"name":"//compute.googleapis.com/projects/p/global/networks/n","asset_type":"compute.googleapis.com/Network","resource":{"data":{"name":"n"}}}"#;
    std::fs::write(
        dir.path().join("assets.jsonl"),
        format!("{good}\n{good}\n{{\"name\": \"x\", \"asset_type\": \n{good}\n"),
    )
    .unwrap();
    let (source, message) =
        collect_err("gcp-asset-inventory", json!(["*.jsonl"]), dir.path()).await;
    assert_eq!(source, dir_str(&dir.path().join("assets.jsonl")));
    assert!(
        message.starts_with("line 3: invalid JSON record"),
        "{message}"
    );
}

#[tokio::test]
async fn config_dir_with_glob_characters_is_taken_literally() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("team [prod]");
    std::fs::create_dir_all(odd.join("x")).unwrap();
    std::fs::copy(data("gcp/assets.jsonl"), odd.join("x/a.jsonl")).unwrap();
    let p = configured(json!({
        "format": "gcp-asset-inventory", "paths": ["x/*.jsonl"], "config_dir": dir_str(&odd),
    }));
    let mut out = Recorder::new();
    p.collect(&CollectContext::default(), &mut out)
        .await
        .unwrap();
    assert_eq!(out.total(), 11);
}
