//! Governance benchmark: classifies 100,000 findings with the shipped policy library and
//! reports findings per second; then measures the share of a 100,000-resource scan's time
//! that classification takes, as the scan with the library against the same scan without
//! it, in the same run.
//!
//! `cargo bench -p driftwatch-core --bench classify_100k`; `cargo test` runs it at 2,000.

use driftwatch_core::govern::{Governance, GovernanceSection};
use driftwatch_plugin_sdk::Finding;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;

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
        let mut findings: Vec<Finding> = (0..n).map(common::finding).collect();
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
