//! Benchmark: the aws provider against a moto server seeded with 5,000 resources over three
//! regions. Reports the API calls the scan made against the minimum number of calls
//! (list pages at each API's largest page size, plus the per-bucket and per-role calls no
//! list returns), and its wall time as a ratio to a plain boto3 script making the same
//! calls against the same server, measured in the same run.
//!
//! `cargo bench -p driftwatch-tests --bench aws_5k` runs the full size (median of 3);
//! `cargo test` runs it once at 150 resources as a smoke test. DRIFTWATCH_BENCH_N overrides.

use driftwatch_plugin_sdk::DynProviderFactory;
use driftwatch_plugin_sdk::{CollectContext, Emit, ProviderError, Resource};
use driftwatch_provider_aws::AwsFactory;
use driftwatch_tests::moto::Moto;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

const REGIONS: &[&str] = &["us-east-1", "eu-west-1", "ap-southeast-2"];

/// Resources listed per (region, type).
#[derive(Default)]
struct Count(BTreeMap<(String, String), u64>);

impl Emit for Count {
    fn emit(&mut self, batch: Vec<Resource>) -> Result<(), ProviderError> {
        for r in batch {
            let region = r.region.unwrap_or_default();
            *self.0.entry((region, r.key.r#type)).or_default() += 1;
        }
        Ok(())
    }
}

fn python(script: &str, args: &[&str]) -> Value {
    let path = format!("{}/benches/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pages(n: u64, size: u64) -> u64 {
    n.div_ceil(size).max(1)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("DRIFTWATCH_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 5_000 } else { 150 });
    let runs = if full { 3 } else { 1 };
    Moto::fake_credentials();
    let moto = Moto::start();
    let seeded_at = Instant::now();
    let counts = python("aws_seed.py", &[&moto.endpoint, &n.to_string()]);
    eprintln!("seeded {n} resources in {:.1?}", seeded_at.elapsed());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ours = Vec::new();
    let mut calls = 0;
    let mut listed = Count::default();
    for _ in 0..runs {
        let p = AwsFactory
            .create(&json!({
                "regions": REGIONS,
                "endpoint_url": moto.endpoint,
                // The baseline does not rate-limit; neither does this run (see docs/aws.md).
                "rate_limit": 100000,
            }))
            .unwrap();
        let mut out = Count::default();
        let started = Instant::now();
        let report = rt
            .block_on(p.collect(&CollectContext::new(500), &mut out))
            .unwrap();
        ours.push(started.elapsed());
        assert!(
            report.scopes.iter().all(|s| s.complete),
            "{:?}",
            report.warnings
        );
        calls = report.api_calls;
        listed = out;
    }
    // The fewest calls that return everything: one per page at the largest page size
    // (1000 for every list call here), the caller-identity call, and the six calls per
    // bucket and two per role that no list call answers.
    let got = |region: &str, ty: &str| {
        *listed
            .0
            .get(&(region.to_string(), ty.to_string()))
            .unwrap_or(&0)
    };
    let mut minimum = 1u64;
    for region in REGIONS {
        for ty in [
            "aws_security_group",
            "aws_vpc",
            "aws_subnet",
            "aws_instance",
        ] {
            minimum += pages(got(region, ty), 1000);
        }
    }
    let (buckets, roles) = (got("", "aws_s3_bucket"), got("", "aws_iam_role"));
    assert_eq!(
        (buckets, roles),
        (
            counts["buckets"].as_u64().unwrap(),
            counts["roles"].as_u64().unwrap()
        )
    );
    minimum += pages(buckets, 1000) + 6 * buckets + pages(roles, 1000) + 2 * roles + 1;
    let resources: u64 = listed.0.values().sum();
    let mut baseline = Vec::new();
    let mut baseline_calls = 0;
    for _ in 0..runs {
        let mut args = vec![moto.endpoint.as_str()];
        args.extend(REGIONS);
        let r = python("aws_list.py", &args);
        baseline.push(Duration::from_secs_f64(r["seconds"].as_f64().unwrap()));
        baseline_calls = r["calls"].as_u64().unwrap();
    }
    let (ours, baseline) = (median(ours), median(baseline));
    println!(
        "aws_5k: {resources} resources listed over {} regions",
        REGIONS.len()
    );
    println!(
        "api calls: {calls} (minimum {minimum}, ratio {:.2}); boto3 baseline made {baseline_calls}",
        calls as f64 / minimum as f64
    );
    println!(
        "wall time: driftwatch {:.2?}, boto3 {:.2?}, ratio {:.2}x (median of {runs})",
        ours,
        baseline,
        ours.as_secs_f64() / baseline.as_secs_f64()
    );
    assert!(
        resources >= n as u64,
        "every seeded resource is listed ({resources} < {n})"
    );
    // Fewer is possible: moto ignores some page sizes and answers in one page.
    assert!(calls <= minimum, "no call beyond the minimum");
}
