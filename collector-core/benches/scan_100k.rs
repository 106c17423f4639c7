//! Scan benchmark: a 100,000-resource state against a matching 100,000-item AWS Config
//! snapshot with 1% drift. Reports the scan's wall time as a ratio to serde_json alone
//! parsing the same two files, measured in the same run, and the scan's peak memory.
//!
//! `cargo bench -p driftwatch-core --bench scan_100k` (set `DRIFTWATCH_BENCH_N` for another size).

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";

fn tags(i: usize) -> Value {
    json!({"Name": format!("res-{i}"), "env": "prod", "team": format!("team-{}", i % 17)})
}

fn taglist(v: &Value) -> Value {
    Value::Array(
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

/// One declared resource and its live configuration item; `drift` changes the live side.
fn pair(i: usize, drift: bool) -> (Value, Value) {
    let t = tags(i);
    let mut live_tags = t.clone();
    match i % 4 {
        0 => {
            let id = format!("sg-{i:017x}");
            let ingress = json!([{"protocol": "tcp", "from_port": 443, "to_port": 443,
                "cidr_blocks": ["10.0.0.0/8"], "ipv6_cidr_blocks": [], "prefix_list_ids": [],
                "security_groups": [], "self": false, "description": "https"}]);
            let mut perms = vec![json!({"ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
                "ipv4Ranges": [{"cidrIp": "10.0.0.0/8", "description": "https"}],
                "ipv6Ranges": [], "prefixListIds": [], "userIdGroupPairs": []})];
            if drift {
                perms.push(json!({"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                    "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}], "ipv6Ranges": [],
                    "prefixListIds": [], "userIdGroupPairs": []}));
            }
            (
                json!({"type": "aws_security_group", "attrs": {"id": id, "name": format!("sg-{i}"),
                    "description": "bench", "vpc_id": "vpc-00000000000000001", "ingress": ingress,
                    "egress": [], "owner_id": ACCOUNT, "tags": t,
                    "arn": format!("arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/{id}")}}),
                json!({"resourceType": "AWS::EC2::SecurityGroup", "resourceId": id,
                    "configuration": {"groupId": id, "groupName": format!("sg-{i}"),
                        "description": "bench", "vpcId": "vpc-00000000000000001", "ownerId": ACCOUNT,
                        "ipPermissions": perms, "ipPermissionsEgress": [], "tags": taglist(&live_tags)},
                    "tags": live_tags}),
            )
        }
        1 => {
            let id = format!("i-{i:017x}");
            let itype = if drift { "m5.large" } else { "t3.small" };
            (
                json!({"type": "aws_instance", "attrs": {"id": id, "instance_type": "t3.small",
                    "ami": "ami-00000000000000001", "subnet_id": "subnet-00000000000000001",
                    "availability_zone": "eu-west-1a", "private_ip": "10.0.0.1", "ebs_optimized": false,
                    "monitoring": false, "vpc_security_group_ids": ["sg-00000000000000001"],
                    "instance_state": "running", "tags": t,
                    "arn": format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{id}")}}),
                json!({"resourceType": "AWS::EC2::Instance", "resourceId": id,
                    "configuration": {"instanceId": id, "instanceType": itype,
                        "imageId": "ami-00000000000000001", "subnetId": "subnet-00000000000000001",
                        "placement": {"availabilityZone": "eu-west-1a"}, "privateIpAddress": "10.0.0.1",
                        "ebsOptimized": false, "monitoring": {"state": "disabled"},
                        "securityGroups": [{"groupId": "sg-00000000000000001", "groupName": "x"}],
                        "state": {"code": 16, "name": "running"}, "tags": taglist(&live_tags)},
                    "tags": live_tags}),
            )
        }
        2 => {
            let id = format!("subnet-{i:017x}");
            if drift {
                live_tags["env"] = json!("staging");
            }
            (
                json!({"type": "aws_subnet", "attrs": {"id": id, "vpc_id": "vpc-00000000000000001",
                    "cidr_block": "10.1.0.0/24", "availability_zone": "eu-west-1b",
                    "map_public_ip_on_launch": false, "assign_ipv6_address_on_creation": false,
                    "tags": t, "arn": format!("arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/{id}")}}),
                json!({"resourceType": "AWS::EC2::Subnet", "resourceId": id,
                    "configuration": {"subnetId": id, "vpcId": "vpc-00000000000000001",
                        "cidrBlock": "10.1.0.0/24", "availabilityZone": "eu-west-1b",
                        "mapPublicIpOnLaunch": false, "assignIpv6AddressOnCreation": false,
                        "defaultForAz": false, "tags": taglist(&live_tags)},
                    "tags": live_tags}),
            )
        }
        _ => {
            let id = format!("vpc-{i:017x}");
            let cidr = if drift { "10.9.0.0/16" } else { "10.2.0.0/16" };
            (
                json!({"type": "aws_vpc", "attrs": {"id": id, "cidr_block": "10.2.0.0/16",
                    "instance_tenancy": "default", "tags": t,
                    "arn": format!("arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/{id}")}}),
                json!({"resourceType": "AWS::EC2::VPC", "resourceId": id,
                    "configuration": {"vpcId": id, "cidrBlock": cidr, "instanceTenancy": "default",
                        "isDefault": false, "tags": taglist(&live_tags)},
                    "tags": live_tags}),
            )
        }
    }
}

/// Writes the state and the snapshot: of every 100 resources, one drifts (changed, missing
/// or unmanaged in turn), so 1% of the estate has drift.
fn generate(dir: &Path, n: usize) {
    let mut resources = Vec::with_capacity(n);
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let drifting = i % 100 == 42;
        let (decl, mut item) = pair(i, drifting && (i / 100) % 3 == 0);
        let missing = drifting && (i / 100) % 3 == 1;
        let unmanaged = drifting && (i / 100) % 3 == 2;
        if !unmanaged {
            resources.push(json!({"mode": "managed", "type": decl["type"],
                "name": format!("r{i}"), "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
                "instances": [{"schema_version": 1, "attributes": decl["attrs"],
                    "sensitive_attributes": [], "private": "bnVsbA=="}]}));
        }
        if !missing {
            let m = item.as_object_mut().unwrap();
            m.insert("awsAccountId".into(), json!(ACCOUNT));
            m.insert("awsRegion".into(), json!(REGION));
            m.insert("configurationItemStatus".into(), json!("OK"));
            m.insert(
                "configurationItemCaptureTime".into(),
                json!("2026-11-21T00:00:00.000Z"),
            );
            items.push(item);
        }
    }
    let state = json!({"version": 4, "terraform_version": "1.9.8", "serial": 1,
        "lineage": "bench", "outputs": {}, "resources": resources});
    std::fs::write(dir.join("big.tfstate"), serde_json::to_vec(&state).unwrap()).unwrap();
    let snap =
        json!({"fileVersion": "1.0", "configSnapshotId": "bench", "configurationItems": items});
    std::fs::write(
        dir.join("snapshot.json"),
        serde_json::to_vec(&snap).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("driftwatch.toml"),
        "[iac]\nstates = [\"big.tfstate\"]\n\n[[providers]]\nkind = \"inventory\"\nformat = \"aws-config\"\npaths = [\"snapshot.json\"]\n",
    )
    .unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

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
    // `cargo test --benches` runs this with `--bench` absent: keep that a quick smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("DRIFTWATCH_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 100_000 } else { 2_000 });
    let runs = if full { 5 } else { 1 };
    let dir = tempfile::tempdir().unwrap();
    // DRIFTWATCH_BENCH_DIR keeps the generated estate for profiling by hand.
    let dir_path = std::env::var_os("DRIFTWATCH_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::create_dir_all(&dir_path).unwrap();
    let dir = (dir, dir_path);
    let t = Instant::now();
    generate(&dir.1, n);
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
    let (b, s) = (median(baseline), median(scans));
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
