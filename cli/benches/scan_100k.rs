//! Scan benchmark: a 100,000-resource state against a matching 100,000-item AWS Config
//! snapshot with 1% drift. Reports the scan's wall time as a ratio to serde_json alone
//! parsing the same two files, measured in the same run, and the scan's peak memory.
//!
//! `cargo bench -p driftwatch-core --bench scan_100k` (set `DRIFTWATCH_BENCH_N` for another size).

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;

/// Peak resident memory of a running process in KiB, from /proc (VmHWM only grows).
fn vm_hwm_kib(pid: u32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the binary once; returns its wall time, peak resident memory in KiB, and exit code.
///
/// The peak is sampled from /proc while the scan runs: `ru_maxrss` from `wait4` would
/// report this benchmark's own (much larger) footprint, which the child inherits at fork.
fn scan_once(dir: &Path) -> (Duration, i64, i32) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .current_dir(dir)
        .args([
            "scan",
            "--quiet",
            "--format",
            "json",
            "--output",
            "report.json",
        ])
        .spawn()
        .expect("driftwatch starts");
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(pid) {
            peak = peak.max(kib);
        }
        match child.try_wait().expect("wait for driftwatch") {
            Some(status) => break status,
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let elapsed = started.elapsed();
    (elapsed, peak, status.code().unwrap_or(-1))
}

fn main() {
    let (_, n, runs) = common::settings();
    let dir = tempfile::tempdir().unwrap();
    // DRIFTWATCH_BENCH_DIR keeps the generated estate for profiling by hand.
    let dir_path = std::env::var_os("DRIFTWATCH_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::create_dir_all(&dir_path).unwrap();
    let dir = (dir, dir_path);
    let t = Instant::now();
    common::generate(&dir.1, n);
    let state_mb = std::fs::metadata(dir.1.as_path().join("big.tfstate"))
        .unwrap()
        .len() as f64
        / 1e6;
    let snap_mb = std::fs::metadata(dir.1.as_path().join("snapshot.json"))
        .unwrap()
        .len() as f64
        / 1e6;
    println!(
        "generated {n} resources: state {state_mb:.1} MB, snapshot {snap_mb:.1} MB ({:.1}s)",
        t.elapsed().as_secs_f64()
    );

    let mut baseline = Vec::new();
    let mut scans = Vec::new();
    let mut peak = 0;
    for _ in 0..runs {
        // Baseline: read both files and let serde_json parse them, nothing else.
        let t = Instant::now();
        for f in ["big.tfstate", "snapshot.json"] {
            let bytes = std::fs::read(dir.1.as_path().join(f)).unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            std::hint::black_box(v);
        }
        baseline.push(t.elapsed());
        let (wall, rss, code) = scan_once(dir.1.as_path());
        assert_eq!(code, 2, "the scan should report the drift it was given");
        scans.push(wall);
        peak = peak.max(rss);
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.1.as_path().join("report.json")).unwrap())
            .unwrap();
    let f = &report["summary"]["findings"];
    let (b, s) = (common::median(baseline), common::median(scans));
    println!(
        "findings: {} changed, {} missing, {} unmanaged (of {n})",
        f["changed"], f["missing"], f["unmanaged"]
    );
    println!(
        "serde_json parse of both files (baseline): {:>8.1} ms",
        b.as_secs_f64() * 1e3
    );
    println!(
        "driftwatch scan, whole process:            {:>8.1} ms",
        s.as_secs_f64() * 1e3
    );
    println!(
        "ratio scan / baseline: {:.2}x   peak RSS of the scan: {:.1} MiB   (median of {runs})",
        s.as_secs_f64() / b.as_secs_f64(),
        peak as f64 / 1024.0
    );
}
