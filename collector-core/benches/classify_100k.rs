//! Governance benchmark: classifies 100,000 findings with the shipped policy library and
//! reports findings per second; then measures the share of a 100,000-resource scan's time
//! that classification takes, as the scan with the library against the same scan without
//! it, in the same run.
//!
//! `cargo bench -p driftwatch-core --bench classify_100k`; `cargo test` runs it at 2,000.

use driftwatch_core::govern::{Governance, GovernanceSection};
use driftwatch_plugin_sdk::Finding;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;

/// A finding of one of five shapes: SSH open to the world, a public bucket, a resized
/// instance, tag noise, and a missing subnet.
fn finding(i: usize) -> Finding {
    let (ty, kind, changes, facets) = match i % 5 {
        0 => (
            "aws_security_group",
            "changed",
            json!([{"path": "ingress", "expected": [], "actual": [{"protocol": "tcp", "from_port": 22, "to_port": 22, "source": "0.0.0.0/0"}]}]),
            json!({"network": {"ingress": [{"protocol": "tcp", "ports": [{"from": 22, "to": 22}], "sources": ["0.0.0.0/0"], "action": "allow"}]}}),
        ),
        1 => (
            "aws_s3_bucket",
            "unmanaged",
            json!([]),
            json!({"storage": {"public": i % 2 == 0, "encrypted": true}}),
        ),
        2 => (
            "aws_instance",
            "changed",
            json!([{"path": "instance_type", "expected": "t3.small", "actual": "m5.large"}]),
            json!({}),
        ),
        3 => (
            "aws_vpc",
            "changed",
            json!([{"path": "tags.env", "expected": "prod", "actual": "staging"}]),
            json!({}),
        ),
        _ => ("aws_subnet", "missing", json!([]), json!({})),
    };
    serde_json::from_value(json!({
        "id": format!("f{i:08}"), "kind": kind,
        "resource": {"provider": "aws", "type": ty, "id": format!("r-{i}"),
                     "account": "123456789012", "region": "eu-west-1"},
        "changes": changes, "status": "review", "policies": [],
        "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-01T00:00:00Z",
        "facets": facets,
    }))
    .expect("a valid finding")
}

fn policies() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("policies")
        .display()
        .to_string()
}

fn scan(dir: &Path, config: &str) -> Duration {
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .current_dir(dir)
        .args([
            "scan",
            "-q",
            "-f",
            "json",
            "-o",
            "report.json",
            "-c",
            config,
        ])
        .status()
        .expect("driftwatch runs");
    assert_eq!(status.code(), Some(2), "the scan reports its drift");
    started.elapsed()
}

fn main() {
    let (_, n, runs) = common::settings();
    let section = GovernanceSection {
        policies: vec![policies()],
        ..GovernanceSection::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut times = Vec::new();
    let mut counts = None;
    for _ in 0..runs {
        let mut findings: Vec<Finding> = (0..n).map(finding).collect();
        let mut g = Governance::load(&section, dir.path()).expect("the library loads");
        let t = Instant::now();
        let c = g
            .classify(&mut findings, &[], &[], "2026-01-01T00:00:00Z")
            .expect("classification runs");
        times.push(t.elapsed());
        counts = Some(c.statuses);
    }
    let t = common::median(times);
    let c = counts.unwrap();
    println!(
        "classified {n} findings in {:.1} ms: {:.0} findings/s ({} violation, {} allowed, {} review; median of {runs})",
        t.as_secs_f64() * 1e3,
        n as f64 / t.as_secs_f64(),
        c.violation,
        c.allowed,
        c.review
    );
    assert_eq!(
        c.violation,
        n / 5 + n / 10,
        "SSH and public buckets are violations"
    );

    // Its share of a scan: the same estate scanned with and without the library.
    common::generate(dir.path(), n);
    let plain = std::fs::read_to_string(dir.path().join("driftwatch.toml")).unwrap();
    std::fs::write(
        dir.path().join("governed.toml"),
        format!("{plain}\n[governance]\npolicies = [{:?}]\n", policies()),
    )
    .unwrap();
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        without.push(scan(dir.path(), "driftwatch.toml"));
        with.push(scan(dir.path(), "governed.toml"));
    }
    let (a, b) = (common::median(without), common::median(with));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    println!(
        "scan of {n} resources ({} findings): {:.1} ms without policies, {:.1} ms with; classification is {:.1}% of the scan",
        report["summary"]["findings"]["total"],
        a.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        100.0 * (b.as_secs_f64() - a.as_secs_f64()).max(0.0) / b.as_secs_f64()
    );
}
