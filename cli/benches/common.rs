//! Estate generator shared by the benchmarks: a Terraform state and a matching AWS Config
//! snapshot of any size, with 1% drift.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

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
pub fn generate(dir: &Path, n: usize) {
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

/// Full size under `cargo bench`, a smoke-test size under `cargo test`:
/// (full, resources, runs). `DRIFTWATCH_BENCH_N` overrides the size.
pub fn settings() -> (bool, usize, usize) {
    let full = std::env::args().any(|a| a == "--bench");
    let n = std::env::var("DRIFTWATCH_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 100_000 } else { 2_000 });
    (full, n, if full { 5 } else { 1 })
}

/// The median of some timings.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A finding of one of five shapes: SSH open to the world, a public bucket, a resized
/// instance, tag noise, and a missing subnet.
pub fn finding(i: usize) -> driftwatch_plugin_sdk::Finding {
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
            json!({"storage": {"public": i.is_multiple_of(2), "encrypted": true}}),
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
