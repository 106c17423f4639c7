//! The quickstart estate end to end through the library: the exact findings it must
//! produce, the cross-cloud facets, and what must never show up.

use driftwatch_core::config::Config;
use driftwatch_core::scan;
use driftwatch_plugin_sdk::{FindingKind, ScanReport};
use driftwatch_tests::repo_root;
use indicatif::{MultiProgress, ProgressDrawTarget};
use std::path::Path;

fn scan_config(path: &Path, out: &Path) -> ScanReport {
    let text = std::fs::read_to_string(path).unwrap();
    let out = out.display().to_string();
    let lookup = move |k: &str| (k == "DRIFTWATCH_OUT").then(|| out.clone());
    let config = Config::parse(path, &text, &lookup).unwrap();
    let prepared = scan::prepare(config, &driftwatch::components(), &[]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hidden = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
    let outcome = rt.block_on(scan::run(prepared, &hidden)).unwrap();
    assert!(outcome.sink_errors.is_empty(), "{:?}", outcome.sink_errors);
    outcome.report
}

#[test]
fn quickstart_reports_exactly_the_planted_drift() {
    let out = tempfile::tempdir().unwrap();
    let report = scan_config(
        &repo_root().join("examples/quickstart/driftwatch.toml"),
        out.path(),
    );
    let got: Vec<(FindingKind, &str, &str, Vec<&str>)> = report
        .findings
        .iter()
        .map(|f| {
            let id = f.resource.key.id.rsplit('/').next().unwrap();
            let paths = f.changes.iter().map(|c| c.path.as_str()).collect();
            (f.kind, f.resource.key.r#type.as_str(), id, paths)
        })
        .collect();
    use FindingKind::*;
    let want: Vec<(FindingKind, &str, &str, Vec<&str>)> = vec![
        // AdministratorAccess attached from the console.
        (
            Changed,
            "aws_iam_role",
            "prod-app",
            vec!["managed_policy_arns"],
        ),
        (
            Changed,
            "aws_instance",
            "i-0123456789abcdef0",
            vec!["instance_type"],
        ),
        // SSH opened to the world; the VPN rule declared as a separate resource is not drift.
        (
            Changed,
            "aws_security_group",
            "sg-0b4571095c1e2d3f4",
            vec!["ingress"],
        ),
        (
            Changed,
            "aws_vpc",
            "vpc-0a1b2c3d4e5f60718",
            vec!["tags.env"],
        ),
        (
            Changed,
            "azurerm_network_security_group",
            "nsg-prod-web",
            vec!["security_rule"],
        ),
        (
            Changed,
            "azurerm_storage_account",
            "acmeprodstate01",
            vec!["min_tls_version"],
        ),
        (
            Changed,
            "google_storage_bucket",
            "acme-prod-backups",
            vec!["labels.data-class"],
        ),
        (Missing, "aws_s3_bucket", "acme-old-build-artifacts", vec![]),
        (Missing, "azurerm_subnet", "snet-data", vec![]),
        (
            Missing,
            "google_compute_firewall",
            "prod-allow-health-checks",
            vec![],
        ),
        (
            Unmanaged,
            "aws_s3_bucket",
            "acme-marketing-site-assets",
            vec![],
        ),
        (
            Unmanaged,
            "azurerm_storage_account",
            "acmesandboxshare",
            vec![],
        ),
        (
            Unmanaged,
            "google_compute_firewall",
            "prod-allow-ssh-debug",
            vec![],
        ),
    ];
    assert_eq!(got, want);

    let s = &report.summary;
    assert!(!s.partial && !s.in_sync);
    // Default VPC + SG (AWS), default network + 2 default-allow rules (GCP).
    assert_eq!(s.resources.cloud_defaults, 5);
    // The vnet's cost-center tag is in .driftignore.
    assert_eq!(s.resources.ignored, 1);
    assert_eq!(s.coverage.uncovered_types.get("aws_db_instance"), Some(&1));

    // The changed SG rule carries the exact atom that was added live.
    let sg = &report.findings[2];
    assert_eq!(
        sg.changes[0].actual,
        serde_json::json!([{"description": "incident 4711 debug", "from_port": 22,
            "protocol": "tcp", "source": "0.0.0.0/0", "to_port": 22}])
    );
    assert_eq!(sg.changes[0].expected, serde_json::json!([]));
    assert_eq!(
        sg.resource.address.as_deref(),
        Some("module.network.aws_security_group.bastion")
    );

    // One question, three clouds: SSH open to the world is visible in the same facet.
    let ssh_open: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| {
            f.facets
                .network
                .as_ref()
                .is_some_and(|n| n.ingress.iter().any(|r| r.opens_to_world(22)))
        })
        .map(|f| f.resource.key.provider.as_str())
        .collect();
    assert_eq!(ssh_open, ["aws", "azure", "gcp"]);
    let public: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.facets.storage.as_ref().is_some_and(|s| s.public))
        .map(|f| f.resource.key.id.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(public, ["acme-marketing-site-assets", "acmesandboxshare"]);

    // Ids are stable across scans.
    let again = scan_config(
        &repo_root().join("examples/quickstart/driftwatch.toml"),
        out.path(),
    );
    let ids = |r: &ScanReport| r.findings.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&report), ids(&again));

    // Nothing secret left the states.
    let text = std::fs::read_to_string(out.path().join("last-scan.json")).unwrap();
    for secret in [
        "correct-horse-battery-staple",
        "c2VjcmV0LWtleS1kby1ub3Qtc2hvdw",
        "AccountKey=",
    ] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
}

/// `major.minor` of a version string such as `1.91` or `1.91.0`.
fn major_minor(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The container image must build: its Rust toolchain is at least the workspace's
/// `rust-version` (the image once pinned 1.89 while the SDK crates required 1.91).
#[test]
fn dockerfile_toolchain_meets_the_workspace_rust_version() {
    let root = repo_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let required = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version"))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"'))
        .expect("the workspace sets rust-version");
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let images: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FROM "))
        .filter_map(|l| l.trim().strip_prefix("rust:"))
        .collect();
    assert!(
        !images.is_empty(),
        "the Dockerfile builds FROM a rust: image"
    );
    for image in images {
        let tag = image.split_whitespace().next().unwrap();
        let version = tag.split('-').next().unwrap();
        assert!(
            version.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "rust:{tag} must pin a version, not a moving tag"
        );
        assert!(
            major_minor(version) >= major_minor(required),
            "Dockerfile builds with rust:{tag} but the workspace requires rust-version {required}"
        );
    }
}
