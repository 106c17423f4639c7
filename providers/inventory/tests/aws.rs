//! AWS Config exports mapped into Terraform's AWS provider shapes.

mod common;

use common::{bytes, find, keys};
use driftwatch_plugin_sdk::{PortRange, ProviderError, RuleAction};
use driftwatch_provider_inventory::{parse_export, ExportReader, Format, Parsed};
use serde_json::json;

const ACCOUNT: &str = "123456789012";

fn snapshot() -> Parsed {
    parse_export(
        Format::AwsConfig,
        "config-snapshot.json",
        &bytes("aws/config-snapshot.json"),
    )
    .expect("snapshot parses")
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn snapshot_emits_each_live_resource_once() {
    let p = snapshot();
    let expected = [
        ("aws_vpc", "vpc-0d3f5a1b2c4e6f701"),
        ("aws_vpc", "vpc-0a1b2c3d4e5f60718"),
        ("aws_subnet", "subnet-0f1e2d3c4b5a69788"),
        ("aws_subnet", "subnet-0123456789abcdef0"),
        ("aws_security_group", "sg-0d3f5a1b2c4e6f702"),
        ("aws_security_group", "sg-0a1b2c3d4e5f60719"),
        ("aws_instance", "i-0abc1234def567890"),
        ("aws_s3_bucket", "acme-public-assets"),
        ("aws_s3_bucket_public_access_block", "acme-public-assets"),
        ("aws_s3_bucket", "acme-logs-123456789012"),
        (
            "aws_s3_bucket_public_access_block",
            "acme-logs-123456789012",
        ),
        ("aws_iam_role", "app-web-role"),
    ];
    let want: Vec<(String, String)> = expected.iter().map(|(t, i)| (s(t), s(i))).collect();
    assert_eq!(keys(&p), want);
    for r in &p.resources {
        assert_eq!(r.key.provider, "aws");
        assert_eq!(r.account.as_deref(), Some(ACCOUNT));
    }
}

#[test]
fn snapshot_warns_about_skipped_items() {
    let p = snapshot();
    assert!(
        p.warnings.contains(&s(
            "skipped 1 item(s) of unsupported type AWS::Lambda::Function"
        )),
        "{:?}",
        p.warnings
    );
    assert!(p.warnings.contains(&s(
        "skipped 1 AWS::EC2::SecurityGroup item(s) with status ResourceDeleted (not live)"
    )));
    assert!(p
        .warnings
        .contains(&s("skipped 1 terminated AWS::EC2::Instance item(s)")));
    assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
}

#[test]
fn snapshot_scopes_cover_every_type_of_the_account() {
    let p = snapshot();
    let mut types: Vec<&str> = p.scopes.iter().map(|s| s.r#type.as_str()).collect();
    types.sort();
    assert_eq!(
        types,
        [
            "aws_iam_role",
            "aws_instance",
            "aws_s3_bucket",
            "aws_s3_bucket_public_access_block",
            "aws_security_group",
            "aws_subnet",
            "aws_vpc",
        ]
    );
    for s in &p.scopes {
        assert_eq!(s.provider, "aws");
        assert_eq!(s.account.as_deref(), Some(ACCOUNT));
        // A snapshot covers its own region; IAM is global.
        let region = (s.r#type != "aws_iam_role").then_some("eu-west-1");
        assert_eq!(s.region.as_deref(), region, "{s:?}");
        assert!(s.complete);
        assert_eq!(s.error, None);
    }
}

#[test]
fn a_snapshot_claims_its_region_only() {
    let item = |ty: &str, id: &str, region: &str, status: &str| {
        json!({"resourceType": ty, "resourceId": id, "awsAccountId": ACCOUNT,
               "awsRegion": region, "configurationItemStatus": status,
               "configuration": {"vpcId": id, "name": id, "roleName": id}})
    };
    let snapshot = json!({"configurationItems": [
        item("AWS::EC2::VPC", "vpc-1", "eu-west-1", "OK"),
        item("AWS::S3::Bucket", "b-1", "eu-west-1", "OK"),
        item("AWS::IAM::Role", "r-1", "global", "OK"),
        // A deleted subnet still shows its type is recorded there; a type that is not
        // recorded shows nothing.
        {"resourceType": "AWS::EC2::Subnet", "resourceId": "subnet-1", "awsAccountId": ACCOUNT,
         "awsRegion": "eu-west-1", "configurationItemStatus": "ResourceDeleted"},
        {"resourceType": "AWS::EC2::Instance", "resourceId": "i-1", "awsAccountId": ACCOUNT,
         "awsRegion": "eu-west-1", "configurationItemStatus": "ResourceNotRecorded"},
    ]});
    let p = parse_export(Format::AwsConfig, "s.json", snapshot.to_string().as_bytes()).unwrap();
    let mut got: Vec<(&str, Option<&str>, Option<&str>)> = p
        .scopes
        .iter()
        .map(|s| (s.r#type.as_str(), s.account.as_deref(), s.region.as_deref()))
        .collect();
    got.sort();
    let eu = Some("eu-west-1");
    assert_eq!(
        got,
        [
            ("aws_iam_role", Some(ACCOUNT), None),
            ("aws_s3_bucket", Some(ACCOUNT), eu),
            ("aws_s3_bucket_public_access_block", Some(ACCOUNT), eu),
            ("aws_subnet", Some(ACCOUNT), eu),
            ("aws_vpc", Some(ACCOUNT), eu),
        ]
    );
}

#[test]
fn vpcs_keep_the_latest_capture_and_flag_the_default() {
    let p = snapshot();
    let prod = find(&p, "aws_vpc", "vpc-0a1b2c3d4e5f60718");
    // The older capture comes later in the file and must not win.
    assert_eq!(prod.tags.get("env").map(String::as_str), Some("prod"));
    assert_eq!(prod.name.as_deref(), Some("prod-vpc"));
    assert_eq!(prod.region.as_deref(), Some("eu-west-1"));
    assert!(!prod.cloud_default);
    assert_eq!(
        serde_json::Value::Object(prod.attributes.clone()),
        json!({
            "cidr_block": "10.20.0.0/16",
            "instance_tenancy": "default",
            "dhcp_options_id": "dopt-0a9b8c7d6e5f40312",
            "owner_id": ACCOUNT,
            "enable_dns_support": true,
            "enable_dns_hostnames": true,
            "tags": {"Name": "prod-vpc", "env": "prod"},
        })
    );
    let default = find(&p, "aws_vpc", "vpc-0d3f5a1b2c4e6f701");
    assert!(default.cloud_default);
    assert_eq!(default.attributes["tags"], json!({}));
    assert!(!default.attributes.contains_key("enable_dns_support"));
    assert_eq!(default.name, None);
}

#[test]
fn subnets_including_a_string_encoded_configuration() {
    let p = snapshot();
    let private = find(&p, "aws_subnet", "subnet-0123456789abcdef0");
    assert_eq!(
        serde_json::Value::Object(private.attributes.clone()),
        json!({
            "vpc_id": "vpc-0a1b2c3d4e5f60718",
            "cidr_block": "10.20.1.0/24",
            "availability_zone": "eu-west-1b",
            "availability_zone_id": "euw1-az1",
            "map_public_ip_on_launch": false,
            "assign_ipv6_address_on_creation": false,
            "owner_id": ACCOUNT,
            "tags": {"Name": "prod-private-b", "tier": "private"},
        })
    );
    assert!(!private.cloud_default);
    let default = find(&p, "aws_subnet", "subnet-0f1e2d3c4b5a69788");
    assert!(default.cloud_default);
    assert_eq!(default.attributes["map_public_ip_on_launch"], json!(true));
}

fn rule(
    protocol: &str,
    from: i64,
    to: i64,
    source: (&str, &str),
    self_: bool,
    description: &str,
) -> serde_json::Value {
    let mut r = json!({
        "protocol": protocol, "from_port": from, "to_port": to,
        "cidr_blocks": [], "ipv6_cidr_blocks": [], "prefix_list_ids": [], "security_groups": [],
        "self": self_, "description": description,
    });
    if !source.0.is_empty() {
        r[source.0] = json!([source.1]);
    }
    r
}

#[test]
fn default_security_group() {
    let p = snapshot();
    let sg = find(&p, "aws_security_group", "sg-0d3f5a1b2c4e6f702");
    assert!(sg.cloud_default);
    assert_eq!(sg.attributes["name"], json!("default"));
    assert_eq!(sg.attributes["vpc_id"], json!("vpc-0d3f5a1b2c4e6f701"));
    assert_eq!(
        sg.attributes["ingress"],
        json!([rule("-1", 0, 0, ("", ""), true, "")])
    );
    // `ipRanges` repeats `ipv4Ranges` and must not double the rule.
    assert_eq!(
        sg.attributes["egress"],
        json!([rule("-1", 0, 0, ("cidr_blocks", "0.0.0.0/0"), false, "")])
    );
}

#[test]
fn security_group_rules_in_terraform_inline_shape() {
    let p = snapshot();
    let sg = find(&p, "aws_security_group", "sg-0a1b2c3d4e5f60719");
    assert!(!sg.cloud_default);
    assert_eq!(sg.name.as_deref(), Some("prod-web-sg"));
    assert_eq!(sg.attributes["name"], json!("prod-web"));
    assert_eq!(sg.attributes["description"], json!("Web tier"));
    assert_eq!(sg.attributes["owner_id"], json!(ACCOUNT));
    assert_eq!(
        sg.attributes["tags"],
        json!({"Name": "prod-web-sg", "env": "prod"})
    );
    assert_eq!(
        sg.attributes["ingress"],
        json!([
            rule(
                "tcp",
                443,
                443,
                ("cidr_blocks", "0.0.0.0/0"),
                false,
                "HTTPS from anywhere"
            ),
            rule(
                "tcp",
                443,
                443,
                ("ipv6_cidr_blocks", "::/0"),
                false,
                "HTTPS v6"
            ),
            rule(
                "tcp",
                22,
                22,
                ("cidr_blocks", "10.0.0.0/8"),
                false,
                "SSH from corp"
            ),
            rule(
                "tcp",
                22,
                22,
                ("security_groups", "sg-0b1a2s3t4i5o6n789"),
                false,
                "bastion"
            ),
            rule("tcp", 22, 22, ("", ""), true, ""),
            rule(
                "udp",
                53,
                53,
                ("security_groups", "999988887777/sg-0ffff00000000abcd"),
                false,
                "shared DNS"
            ),
        ])
    );
    assert_eq!(
        sg.attributes["egress"],
        json!([
            rule("-1", 0, 0, ("cidr_blocks", "0.0.0.0/0"), false, ""),
            rule(
                "tcp",
                443,
                443,
                ("prefix_list_ids", "pl-6da54004"),
                false,
                "S3"
            ),
        ])
    );
}

#[test]
fn security_group_network_facet() {
    let p = snapshot();
    let sg = find(&p, "aws_security_group", "sg-0a1b2c3d4e5f60719");
    let ingress = &sg.facets.network.as_ref().expect("network facet").ingress;
    assert_eq!(ingress.len(), 3);
    assert_eq!(ingress[0].protocol, "tcp");
    assert_eq!(ingress[0].ports, [PortRange { from: 443, to: 443 }]);
    assert_eq!(ingress[0].sources, ["0.0.0.0/0", "::/0"]);
    assert_eq!(ingress[0].action, RuleAction::Allow);
    assert!(ingress[0].opens_to_world(443));
    assert_eq!(
        ingress[1].sources,
        ["10.0.0.0/8", "sg-0b1a2s3t4i5o6n789", "sg-0a1b2c3d4e5f60719"]
    );
    assert!(!ingress[1].opens_to_world(22));
    assert_eq!(ingress[2].protocol, "udp");
    assert_eq!(ingress[2].ports, [PortRange { from: 53, to: 53 }]);

    let default = find(&p, "aws_security_group", "sg-0d3f5a1b2c4e6f702");
    let d = &default.facets.network.as_ref().unwrap().ingress;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].protocol, "all");
    assert!(d[0].ports.is_empty());
    assert_eq!(d[0].sources, ["sg-0d3f5a1b2c4e6f702"]);
}

#[test]
fn instance_attributes() {
    let p = snapshot();
    let i = find(&p, "aws_instance", "i-0abc1234def567890");
    assert_eq!(i.name.as_deref(), Some("web-1"));
    assert_eq!(i.region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        serde_json::Value::Object(i.attributes.clone()),
        json!({
            "instance_type": "t3.micro",
            "ami": "ami-0c1c30571d2dae5c9",
            "subnet_id": "subnet-0123456789abcdef0",
            "key_name": "ops-key",
            "availability_zone": "eu-west-1b",
            "tenancy": "default",
            "vpc_security_group_ids": ["sg-0a1b2c3d4e5f60719"],
            "private_ip": "10.20.1.15",
            "ebs_optimized": true,
            "source_dest_check": true,
            "monitoring": false,
            "iam_instance_profile": "web-profile",
            "instance_state": "running",
            "tags": {"Name": "web-1", "env": "prod"},
        })
    );
}

#[test]
fn public_bucket_with_its_access_block() {
    let p = snapshot();
    let b = find(&p, "aws_s3_bucket", "acme-public-assets");
    assert_eq!(b.attributes["bucket"], json!("acme-public-assets"));
    assert_eq!(b.attributes["tags"], json!({"team": "web"}));
    assert_eq!(
        b.attributes["versioning"],
        json!([{"enabled": true, "mfa_delete": false}])
    );
    assert_eq!(
        b.attributes["server_side_encryption_configuration"],
        json!([{"rule": [{
            "apply_server_side_encryption_by_default": [{
                "sse_algorithm": "aws:kms",
                "kms_master_key_id":
                    "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            }],
            "bucket_key_enabled": true,
        }]}])
    );
    let storage = b.facets.storage.as_ref().expect("storage facet");
    assert!(
        storage.public,
        "AllUsers READ grant and nothing blocking it"
    );
    assert_eq!(storage.encrypted, Some(true));
    assert_eq!(storage.versioning, Some(true));
    assert!(!b.cloud_default);

    let pab = find(
        &p,
        "aws_s3_bucket_public_access_block",
        "acme-public-assets",
    );
    assert_eq!(
        serde_json::Value::Object(pab.attributes.clone()),
        json!({
            "bucket": "acme-public-assets",
            "block_public_acls": false,
            "ignore_public_acls": false,
            "block_public_policy": false,
            "restrict_public_buckets": false,
        })
    );
    assert!(!pab.cloud_default);
    assert!(pab.tags.is_empty());
}

#[test]
fn blocked_bucket_is_not_public() {
    let p = snapshot();
    let b = find(&p, "aws_s3_bucket", "acme-logs-123456789012");
    assert_eq!(
        b.attributes["tags"],
        json!({"env": "prod", "data-class": "internal"})
    );
    assert_eq!(
        b.attributes["versioning"],
        json!([{"enabled": false, "mfa_delete": false}])
    );
    assert_eq!(
        b.attributes["server_side_encryption_configuration"][0]["rule"][0]
            ["apply_server_side_encryption_by_default"],
        json!([{"sse_algorithm": "AES256", "kms_master_key_id": ""}])
    );
    let storage = b.facets.storage.as_ref().unwrap();
    assert!(
        !storage.public,
        "the public policy is neutralised by the block"
    );
    assert_eq!(storage.versioning, Some(false));
    let pab = find(
        &p,
        "aws_s3_bucket_public_access_block",
        "acme-logs-123456789012",
    );
    assert!(pab.cloud_default, "all four flags on is S3's own default");
}

#[test]
fn iam_role() {
    let p = snapshot();
    let r = find(&p, "aws_iam_role", "app-web-role");
    assert_eq!(r.region, None, "IAM is global");
    assert_eq!(r.account.as_deref(), Some(ACCOUNT));
    assert_eq!(r.name.as_deref(), Some("app-web-role"));
    assert_eq!(
        serde_json::Value::Object(r.attributes.clone()),
        json!({
            "name": "app-web-role",
            "path": "/app/",
            "description": "Role for the web tier",
            "max_session_duration": 3600,
            "arn": "arn:aws:iam::123456789012:role/app/app-web-role",
            "unique_id": "AROAXAMPLEWEBROLE0001",
            "assume_role_policy": r#"{"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"}}],"Version":"2012-10-17"}"#,
            "inline_policy": [{
                "name": "read-assets",
                "policy": r#"{"Statement":[{"Action":["s3:GetObject","s3:ListBucket"],"Effect":"Allow","Resource":["arn:aws:s3:::acme-public-assets","arn:aws:s3:::acme-public-assets/*"]}],"Version":"2012-10-17"}"#,
            }],
            "managed_policy_arns": ["arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"],
            "permissions_boundary": "",
            "tags": {"team": "web"},
        })
    );
}

#[test]
fn batch_get_items_with_string_encoded_values() {
    let p = parse_export(
        Format::AwsConfig,
        "batch.json",
        &bytes("aws/batch-get-resource-config.json"),
    )
    .unwrap();
    let sg = find(&p, "aws_security_group", "sg-07e1d2c3b4a596870");
    // No item-level tags in batch-get output: the configuration's list is used.
    assert_eq!(
        sg.attributes["tags"],
        json!({"Name": "db-sg", "owner": "data"})
    );
    assert_eq!(sg.name.as_deref(), Some("db-sg"));
    assert_eq!(sg.account.as_deref(), Some("210987654321"));
    assert_eq!(sg.region.as_deref(), Some("us-east-1"));
    assert_eq!(sg.attributes["egress"], json!([]));

    let b = find(&p, "aws_s3_bucket", "acme-partner-drop");
    assert_eq!(
        b.attributes["versioning"],
        json!([{"enabled": false, "mfa_delete": false}])
    );
    assert!(!b
        .attributes
        .contains_key("server_side_encryption_configuration"));
    let storage = b.facets.storage.as_ref().unwrap();
    assert!(
        storage.public,
        "{{\"AWS\": \"*\"}} policy, restrictPublicBuckets off"
    );
    assert_eq!(storage.encrypted, None);
    let pab = find(&p, "aws_s3_bucket_public_access_block", "acme-partner-drop");
    assert_eq!(pab.attributes["block_public_policy"], json!(false));
    assert!(!pab.cloud_default);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn history_lines_merge_with_other_files_and_drop_deleted_resources() {
    let mut reader = ExportReader::new(Format::AwsConfig);
    reader
        .add("batch.json", &bytes("aws/batch-get-resource-config.json"))
        .unwrap();
    reader
        .add("history.jsonl", &bytes("aws/config-history.jsonl"))
        .unwrap();
    let p = reader.finish();
    let vpc = find(&p, "aws_vpc", "vpc-0c0ffee000000abcd");
    assert_eq!(vpc.name.as_deref(), Some("data-vpc"));
    assert!(!p
        .resources
        .iter()
        .any(|r| r.key.id == "vpc-0e1e2e3e4e5e6e7e8"));
    assert!(p.warnings.contains(&s(
        "skipped 1 AWS::EC2::VPC item(s) with status ResourceDeleted (not live)"
    )));
    // Only types with records are claimed complete.
    assert!(p.scopes.iter().any(|s| s.r#type == "aws_vpc" && s.complete));
}

#[test]
fn a_deletion_captured_earlier_does_not_hide_a_recreation() {
    let lines = concat!(
        r#"{"resourceType":"AWS::EC2::VPC","resourceId":"vpc-1","awsAccountId":"1","awsRegion":"r","configurationItemCaptureTime":"2024-05-02T00:00:00Z","configurationItemStatus":"ResourceDiscovered","configuration":{"vpcId":"vpc-1","cidrBlock":"10.0.0.0/16"}}"#,
        "\n",
        r#"{"resourceType":"AWS::EC2::VPC","resourceId":"vpc-1","awsAccountId":"1","awsRegion":"r","configurationItemCaptureTime":"2024-05-01T00:00:00Z","configurationItemStatus":"ResourceDeleted"}"#,
        "\n"
    );
    let p = parse_export(Format::AwsConfig, "h.jsonl", lines.as_bytes()).unwrap();
    assert_eq!(keys(&p), [(s("aws_vpc"), s("vpc-1"))]);
}

#[test]
fn bare_arrays_and_single_items_are_accepted() {
    let item = r#"{"resourceType":"AWS::EC2::Subnet","resourceId":"subnet-1","configuration":{"subnetId":"subnet-1","vpcId":"vpc-1"}}"#;
    let array = format!("[{item}]");
    for text in [array.as_str(), item] {
        let p = parse_export(Format::AwsConfig, "a.json", text.as_bytes()).unwrap();
        assert_eq!(keys(&p), [(s("aws_subnet"), s("subnet-1"))]);
        assert_eq!(p.resources[0].account, None);
        // No account anywhere: the one type seen is claimed for every account.
        assert_eq!(p.scopes.len(), 1);
        assert_eq!(p.scopes[0].r#type, "aws_subnet");
        assert!(p.scopes.iter().all(|s| s.account.is_none()));
    }
}

#[test]
fn empty_exports_are_not_errors() {
    for text in [
        "{\"configurationItems\": null}",
        "{\"baseConfigurationItems\": []}",
        "[]",
        "\n",
    ] {
        let p = parse_export(Format::AwsConfig, "e.json", text.as_bytes()).unwrap();
        assert!(p.resources.is_empty(), "{text}");
        // An export without records claims no listing complete.
        assert!(p.scopes.is_empty(), "{text}");
    }
}

#[test]
fn item_without_resource_type_is_an_input_error() {
    let text = r#"{"configurationItems": [
        {"resourceType": "AWS::EC2::VPC", "resourceId": "vpc-1", "configuration": {"vpcId": "vpc-1"}},
        {"resourceId": "vpc-2", "configuration": {"vpcId": "vpc-2"}}
    ]}"#;
    let err = parse_export(Format::AwsConfig, "snap.json", text.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        ProviderError::Input {
            source_name: s("snap.json"),
            message: s("configurationItems[1]: configuration item has no `resourceType`"),
        }
    );
}

#[test]
fn malformed_inputs_are_errors_not_panics() {
    let cases: &[(&str, &str)] = &[
        ("{\"configurationItems\": [", "invalid JSON"),
        ("{\"something\": 1}", "not an AWS Config export"),
        ("42", "not an AWS Config export"),
        (
            "{\"configurationItems\": 3}",
            "`configurationItems` must be an array",
        ),
        ("[1]", "$[0]: expected a configuration item object"),
        (
            r#"[{"resourceType":"AWS::EC2::VPC","resourceId":"v","configuration":"{not json"}]"#,
            "$[0]: `configuration` is a string but not valid JSON",
        ),
        (
            r#"[{"resourceType":"AWS::EC2::VPC","resourceId":"v"}]"#,
            "$[0]: live AWS::EC2::VPC item has no `configuration`",
        ),
        (
            r#"[{"resourceType":"AWS::EC2::VPC","configuration":{}}]"#,
            "$[0]: AWS::EC2::VPC item has no `resourceId`",
        ),
        (
            r#"[{"resourceType":"AWS::S3::Bucket","resourceId":"b","configuration":{},"supplementaryConfiguration":{"AccessControlList":"{oops"}}]"#,
            "$[0]: supplementaryConfiguration.AccessControlList is a string but not valid JSON",
        ),
    ];
    for (text, want) in cases {
        match parse_export(Format::AwsConfig, "bad.json", text.as_bytes()) {
            Err(ProviderError::Input {
                source_name,
                message,
            }) => {
                assert_eq!(source_name, "bad.json");
                assert!(message.contains(want), "{text}: {message}");
            }
            other => panic!("{text}: expected an input error, got {other:?}"),
        }
    }
}

#[test]
fn json_lines_errors_name_the_line() {
    let text = concat!(
        r#"{"resourceType":"AWS::EC2::VPC","resourceId":"vpc-1","configuration":{"vpcId":"vpc-1"}}"#,
        "\n\n",
        r#"{"resourceId":"vpc-2"}"#,
        "\n"
    );
    let err = parse_export(Format::AwsConfig, "h.jsonl", text.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "h.jsonl: line 3: configuration item has no `resourceType`"
    );
    let broken =
        "{\"resourceType\":\"AWS::Lambda::Function\",\"resourceId\":\"f\"}\n{\"resourceType\": }\n";
    let err = parse_export(Format::AwsConfig, "h.jsonl", broken.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

/// The driftctl corpus' `aws_iam_policy` (a real Terraform-written state), as an AWS Config
/// item would record it: the document URL-encoded in `policyVersionList`.
fn real_policy() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tfstate/driftctl/aws_iam_policy_multiple.tfstate");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    state["resources"][0]["instances"][0]["attributes"].clone()
}

fn policy_item(tags: serde_json::Value, default: &str) -> serde_json::Value {
    let real = real_policy();
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let edited =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    json!({
        "resourceType": "AWS::IAM::Policy",
        "resourceId": "ANPAEXAMPLE0000000001",
        "resourceName": "policy-0",
        "ARN": real["arn"],
        "awsRegion": "global",
        "awsAccountId": "929327065333",
        "configurationItemStatus": "OK",
        "tags": tags,
        "configuration": {
            "policyName": "policy-0",
            "policyId": "ANPAEXAMPLE0000000001",
            "arn": real["arn"],
            "path": "/",
            "defaultVersionId": default,
            "description": null,
            "policyVersionList": [
                {"document": encode(real["policy"].as_str().unwrap()), "versionId": "v1",
                 "isDefaultVersion": default == "v1"},
                {"document": encode(edited), "versionId": "v2", "isDefaultVersion": default == "v2"}
            ]
        }
    })
}

#[test]
fn iam_policies_carry_the_default_document_and_only_recorded_tags() {
    let real = real_policy();
    let doc = |p: &Parsed| {
        let r = find(p, "aws_iam_policy", real["arn"].as_str().unwrap());
        serde_json::from_str::<serde_json::Value>(r.attributes["policy"].as_str().unwrap()).unwrap()
    };
    let written: serde_json::Value =
        serde_json::from_str(real["policy"].as_str().unwrap()).unwrap();
    let item = policy_item(json!({"team": "platform"}), "v1");
    let p = parse_export(Format::AwsConfig, "p.json", item.to_string().as_bytes()).unwrap();
    assert_eq!(doc(&p), written, "the default version's document, decoded");
    let r = find(&p, "aws_iam_policy", real["arn"].as_str().unwrap());
    assert_eq!(r.attributes["tags"], json!({"team": "platform"}));
    assert_eq!(r.attributes["name"], "policy-0");
    assert!(p
        .scopes
        .iter()
        .any(|s| s.r#type == "aws_iam_policy" && s.region.is_none()));

    // A new default version edited from the console is what the document says.
    let p = parse_export(
        Format::AwsConfig,
        "p.json",
        policy_item(json!({}), "v2").to_string().as_bytes(),
    )
    .unwrap();
    assert_ne!(doc(&p), written);
    // An empty tag map is what an item without recorded tags has: not "untagged".
    let r = find(&p, "aws_iam_policy", real["arn"].as_str().unwrap());
    assert!(!r.attributes.contains_key("tags"), "{:?}", r.attributes);
}
