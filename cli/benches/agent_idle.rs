//! Agent footprint benchmark: `driftwatch agent` on the quickstart's three providers, left
//! idle after its first scans, sampled from /proc for 60 s: resident memory (peak and at
//! the end) and CPU time as a share of one core, set against the targets (30 MB, 1% of a
//! core) and against the same process's peak while its first scans ran.
//!
//! `cargo bench -p driftwatch-core --bench agent_idle`; `cargo test` samples 3 s.

#[path = "../tests/common/mod.rs"]
mod tcommon;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A `kB` line of /proc/PID/status (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// User plus system CPU time, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(") ").unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn ready(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = write!(s, "GET /readyz HTTP/1.0\r\n\r\n");
    let mut t = String::new();
    let _ = s.read_to_string(&mut t);
    t.starts_with("HTTP/1.0 200") || t.starts_with("HTTP/1.1 200")
}

fn main() {
    let secs = if std::env::args().any(|a| a == "--bench") {
        60
    } else {
        3
    };
    let port = tcommon::receivers::free_port();
    let dir = tcommon::quickstart(&format!(
        "[agent]\ninterval = \"1h\"\njitter = 0.0\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let mut child = tcommon::bin(dir.path())
        .args(["agent", "--config", "driftwatch.toml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let t = Instant::now();
    while !ready(port) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the agent never became ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let scan_peak = status_kib(pid, "VmHWM");
    // Let the first scans' allocations settle before measuring idleness.
    std::thread::sleep(Duration::from_secs(1));
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let (c0, t0) = (cpu_ticks(pid), Instant::now());
    let mut peak = 0;
    for _ in 0..secs {
        std::thread::sleep(Duration::from_secs(1));
        peak = peak.max(status_kib(pid, "VmRSS"));
    }
    let (c1, wall) = (cpu_ticks(pid), t0.elapsed().as_secs_f64());
    let end = status_kib(pid, "VmRSS");
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "the agent exited with {status}");
    let cpu_pct = 100.0 * (c1 - c0) as f64 / tick / wall;
    let mb = |k: u64| k as f64 / 1024.0;
    println!("agent_idle: 3 providers (quickstart), idle {secs} s after the first scans");
    println!(
        "  resident memory: {:.1} MB at the end, {:.1} MB peak while idle ({:.2}x the 30 MB target); {:.1} MB peak during the first scans",
        mb(end),
        mb(peak),
        mb(peak) / 30.0,
        mb(scan_peak)
    );
    println!(
        "  CPU: {:.3}% of one core ({:.2}x the 1% target; {} ticks of 1/{} s in {:.1} s)",
        cpu_pct,
        cpu_pct / 1.0,
        c1 - c0,
        tick,
        wall
    );
}
