//! The AWS provider against a real moto server: an estate in sync gives no finding (moto's
//! default VPC, subnets and security groups included), and each kind of console drift
//! gives exactly its finding.

use aws_config::{BehaviorVersion, Region};
use driftwatch_core::config::Config;
use driftwatch_core::scan;
use driftwatch_plugin_sdk::{FindingKind, ScanReport};
use driftwatch_tests::fixtures;
use driftwatch_tests::moto::Moto;
use indicatif::{MultiProgress, ProgressDrawTarget};
use serde_json::{json, Value};
use std::path::Path;

struct Seeded {
    api: String,
    vpc: String,
    subnet: String,
    web: String,
    old: String,
    instance: String,
}

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .load()
        .await
}

async fn seed(conf: &aws_config::SdkConfig) -> Seeded {
    use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
    let ec2 = aws_sdk_ec2::Client::new(conf);
    let tags = |kvs: &[(&str, &str)], rt: ResourceType| {
        let mut spec = TagSpecification::builder().resource_type(rt);
        for (k, v) in kvs {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        spec.build()
    };
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.1.0.0/16")
        .tag_specifications(tags(
            &[("Name", "prod"), ("env", "prod")],
            ResourceType::Vpc,
        ))
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.1.1.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
        .unwrap();
    let sg = |name: &'static str| {
        let ec2 = ec2.clone();
        let vpc = vpc.clone();
        async move {
            ec2.create_security_group()
                .group_name(name)
                .description(format!("{name} tier"))
                .vpc_id(vpc)
                .send()
                .await
                .unwrap()
                .group_id
                .unwrap()
        }
    };
    let web = sg("web").await;
    let old = sg("old").await;
    let api = sg("api").await;
    for (port, cidr) in [(8080, "10.0.0.0/8"), (9090, "192.168.0.0/16")] {
        ec2.authorize_security_group_ingress()
            .group_id(&api)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(port)
                    .to_port(port)
                    .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    // The usual "allow traffic within the group" rule, as `aws_security_group_rule` with
    // `self = true` declares it.
    ec2.authorize_security_group_ingress()
        .group_id(&api)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(0)
                .to_port(65535)
                .user_id_group_pairs(
                    aws_sdk_ec2::types::UserIdGroupPair::builder()
                        .group_id(&api)
                        .description("Test 1")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let iam = aws_sdk_iam::Client::new(conf);
    // A customer-managed policy of the driftctl corpus, tagged.
    let real = corpus("aws_iam_policy_multiple", "aws_iam_policy", "policy-0");
    iam.create_policy()
        .policy_name("policy-0")
        .path("/")
        .policy_document(real["policy"].as_str().unwrap())
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("team")
                .value("platform")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    iam.create_role()
        .role_name("app")
        .assume_role_policy_document(TRUST)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("team")
                .value("platform")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    iam.attach_role_policy()
        .role_name("app")
        .policy_arn(READ_ONLY)
        .send()
        .await
        .unwrap();
    ec2.authorize_security_group_ingress()
        .group_id(&web)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .ip_ranges(
                    IpRange::builder()
                        .cidr_ip("10.0.0.0/8")
                        .description("https")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let instance = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
        .subnet_id(&subnet)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap()
        .instances
        .unwrap()[0]
        .instance_id
        .clone()
        .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket("acme-logs").send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket("acme-logs")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // A bucket of the driftctl corpus, made public by its separate bucket policy, and
    // encrypted with S3's default as every bucket is since 2023.
    let bucket = "bucket-martin-test-drift2";
    s3.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest3)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let policy = corpus("aws_s3_full", "aws_s3_bucket_policy", bucket);
    s3.put_bucket_policy()
        .bucket(bucket)
        .policy(policy["policy"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    for name in ["acme-logs", bucket] {
        use aws_sdk_s3::types::{
            ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
            ServerSideEncryptionRule,
        };
        s3.put_bucket_encryption()
            .bucket(name)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(
                        ServerSideEncryptionRule::builder()
                            .apply_server_side_encryption_by_default(
                                ServerSideEncryptionByDefault::builder()
                                    .sse_algorithm(ServerSideEncryption::Aes256)
                                    .build()
                                    .unwrap(),
                            )
                            .bucket_key_enabled(false)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    Seeded {
        api,
        vpc,
        subnet,
        web,
        old,
        instance,
    }
}

/// The attributes of one resource of a state of the driftctl corpus (real Terraform-written
/// files), with the account rewritten to moto's.
fn corpus(file: &str, ty: &str, id_or_name: &str) -> Value {
    let text =
        std::fs::read_to_string(fixtures("tfstate/driftctl").join(format!("{file}.tfstate")))
            .unwrap()
            .replace("929327065333", "123456789012");
    let state: Value = serde_json::from_str(&text).unwrap();
    state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == ty)
        .flat_map(|r| r["instances"].as_array().unwrap().iter())
        .map(|i| i["attributes"].clone())
        .find(|a| a["id"] == id_or_name || a["name"] == id_or_name)
        .unwrap_or_else(|| panic!("{file}: no {ty} {id_or_name}"))
}

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
fn policy_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT}:policy/policy-0")
}

/// moto's account.
const ACCOUNT: &str = "123456789012";
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

/// The state Terraform would have written for the seeded estate.
fn state(s: &Seeded) -> Value {
    let res = |ty: &str, name: &str, attrs: Value| {
        json!({"mode": "managed", "type": ty, "name": name,
               "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
               "instances": [{"schema_version": 0, "attributes": attrs}]})
    };
    let rule = |port: i64, cidr: &str, desc: &str| {
        json!({"protocol": "tcp", "from_port": port, "to_port": port, "cidr_blocks": [cidr],
               "ipv6_cidr_blocks": [], "prefix_list_ids": [], "security_groups": [],
               "self": false, "description": desc})
    };
    let arn = |kind: &str, id: &str| format!("arn:aws:ec2:us-east-1:{ACCOUNT}:{kind}/{id}");
    // The self-referencing rule exactly as Terraform wrote it, moved onto `api`.
    let mut self_rule = corpus(
        "aws_vpc_security_group_rule",
        "aws_security_group_rule",
        "sgrule-3970541193",
    );
    self_rule["security_group_id"] = json!(s.api);
    self_rule["source_security_group_id"] = json!(s.api);
    assert_eq!(self_rule["self"], true);
    let mut policy = corpus("aws_iam_policy_multiple", "aws_iam_policy", "policy-0");
    policy["tags"] = json!({"team": "platform"});
    policy["tags_all"] = json!({"team": "platform"});
    let bucket = corpus("aws_s3_full", "aws_s3_bucket", "bucket-martin-test-drift2");
    assert_eq!(bucket["server_side_encryption_configuration"], json!([]));
    let bucket_policy = corpus(
        "aws_s3_full",
        "aws_s3_bucket_policy",
        "bucket-martin-test-drift2",
    );
    json!({"version": 4, "terraform_version": "1.9.8", "serial": 1, "lineage": "moto",
        "outputs": {}, "resources": [
        res("aws_vpc", "prod", json!({"id": s.vpc, "cidr_block": "10.1.0.0/16",
            "arn": arn("vpc", &s.vpc), "owner_id": ACCOUNT,
            "tags": {"Name": "prod", "env": "prod"}})),
        res("aws_subnet", "a", json!({"id": s.subnet, "vpc_id": s.vpc,
            "arn": arn("subnet", &s.subnet), "owner_id": ACCOUNT,
            "cidr_block": "10.1.1.0/24", "availability_zone": "us-east-1a", "tags": {}})),
        res("aws_security_group_rule", "api_self", self_rule),
        res("aws_iam_policy", "test_policy", policy),
        res("aws_s3_bucket", "bucket2", bucket),
        res("aws_s3_bucket_policy", "bucket2_policy", bucket_policy),
        res("aws_security_group", "web", json!({"id": s.web, "name": "web",
            "arn": arn("security-group", &s.web), "owner_id": ACCOUNT,
            "description": "web tier", "vpc_id": s.vpc, "tags": {},
            "ingress": [rule(443, "10.0.0.0/8", "https")],
            "egress": [{"protocol": "-1", "from_port": 0, "to_port": 0,
                "cidr_blocks": ["0.0.0.0/0"], "ipv6_cidr_blocks": [], "prefix_list_ids": [],
                "security_groups": [], "self": false, "description": ""}]})),
        res("aws_security_group", "old", json!({"id": s.old, "name": "old",
            "arn": arn("security-group", &s.old), "owner_id": ACCOUNT,
            "description": "old tier", "vpc_id": s.vpc, "tags": {}})),
        res("aws_security_group", "api", json!({"id": s.api, "name": "api",
            "arn": arn("security-group", &s.api), "owner_id": ACCOUNT,
            "description": "api tier", "vpc_id": s.vpc, "tags": {}})),
        // Rules of `api` declared as separate resources of both generations.
        res("aws_security_group_rule", "api_8080", json!({"id": "sgrule-3141592653",
            "type": "ingress", "security_group_id": s.api, "protocol": "tcp",
            "from_port": 8080, "to_port": 8080, "cidr_blocks": ["10.0.0.0/8"]})),
        res("aws_vpc_security_group_ingress_rule", "api_9090", json!({"id": "sgr-0123456789abcdef0",
            "security_group_id": s.api, "ip_protocol": "tcp", "from_port": 9090,
            "to_port": 9090, "cidr_ipv4": "192.168.0.0/16"})),
        res("aws_iam_role", "app", json!({"id": "app", "name": "app", "path": "/",
            "arn": format!("arn:aws:iam::{ACCOUNT}:role/app"),
            "assume_role_policy": TRUST, "tags": {"team": "platform"}})),
        // Terraform makes the attachment's id up; role and policy identify it.
        res("aws_iam_role_policy_attachment", "app_read", json!({
            "id": "app-20240101000000000000000001", "role": "app", "policy_arn": READ_ONLY})),
        res("aws_instance", "app", json!({"id": s.instance, "instance_type": "t3.small",
            "arn": arn("instance", &s.instance),
            "subnet_id": s.subnet, "tags": {}})),
        res("aws_s3_bucket", "logs", json!({"id": "acme-logs", "bucket": "acme-logs",
            "arn": "arn:aws:s3:::acme-logs", "region": "us-east-1", "acl": "private",
            "server_side_encryption_configuration": [],
            "tags": {}, "versioning": [{"enabled": true, "mfa_delete": false}]})),
    ]})
}

fn scan_now(dir: &Path, endpoint: &str, rt: &tokio::runtime::Runtime) -> ScanReport {
    let text = format!(
        "[iac]\nstates = [\"main.tfstate\"]\n\n[[providers]]\nkind = \"aws\"\nregions = [\"us-east-1\"]\nendpoint_url = \"{endpoint}\"\n"
    );
    let path = dir.join("driftwatch.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&path, &text, &|_| None).unwrap();
    let prepared = scan::prepare(config, &driftwatch::components(), &[]).unwrap();
    let hidden = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
    rt.block_on(scan::run(prepared, &hidden)).unwrap().report
}

#[test]
fn moto_estate_in_sync_then_drifted() {
    Moto::fake_credentials();
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conf = rt.block_on(sdk(&moto.endpoint));
    let seeded = rt.block_on(seed(&conf));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.tfstate"), state(&seeded).to_string()).unwrap();

    let report = scan_now(dir.path(), &moto.endpoint, &rt);
    let summary = &report.summary;
    assert!(!summary.partial, "{:?}", summary.coverage.failed_scopes);
    assert_eq!(
        report
            .findings
            .iter()
            .map(|f| (&f.kind, &f.resource.key.id, &f.changes))
            .collect::<Vec<_>>(),
        vec![],
        "an estate in sync has no finding"
    );
    assert!(
        summary.resources.cloud_defaults >= 2,
        "moto's default VPC and SG are skipped"
    );
    assert!(summary.providers[0].api_calls > 0);

    // Console drift: SSH opened to the world, a group deleted, an unmanaged bucket, a tag
    // changed, an instance resized.
    rt.block_on(async {
        use aws_sdk_ec2::types::{AttributeValue, IpPermission, IpRange, Tag};
        let ec2 = aws_sdk_ec2::Client::new(&conf);
        ec2.authorize_security_group_ingress()
            .group_id(&seeded.web)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(22)
                    .to_port(22)
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        ec2.delete_security_group()
            .group_id(&seeded.old)
            .send()
            .await
            .unwrap();
        ec2.create_tags()
            .resources(&seeded.vpc)
            .tags(Tag::builder().key("env").value("staging").build())
            .send()
            .await
            .unwrap();
        ec2.stop_instances()
            .instance_ids(&seeded.instance)
            .send()
            .await
            .unwrap();
        ec2.modify_instance_attribute()
            .instance_id(&seeded.instance)
            .instance_type(AttributeValue::builder().value("t3.large").build())
            .send()
            .await
            .unwrap();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket("acme-unmanaged")
            .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
            .send()
            .await
            .unwrap();
        ec2.revoke_security_group_ingress()
            .group_id(&seeded.api)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(9090)
                    .to_port(9090)
                    .ip_ranges(IpRange::builder().cidr_ip("192.168.0.0/16").build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        // A managed bucket made public through its ACL, and another made private by
        // deleting its bucket policy: neither is an attribute of `aws_s3_bucket`.
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        );
        s3.put_bucket_acl()
            .bucket("acme-logs")
            .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
            .send()
            .await
            .unwrap();
        s3.delete_bucket_policy()
            .bucket("bucket-martin-test-drift2")
            .send()
            .await
            .unwrap();
        // The policy edited from the console: a new default version.
        aws_sdk_iam::Client::new(&conf)
            .create_policy_version()
            .policy_arn(policy_arn())
            .policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"EC2Admin","Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            )
            .set_as_default(true)
            .send()
            .await
            .unwrap();
        aws_sdk_iam::Client::new(&conf)
            .attach_role_policy()
            .role_name("app")
            .policy_arn(ADMIN)
            .send()
            .await
            .unwrap();
    });
    let report = scan_now(dir.path(), &moto.endpoint, &rt);
    let got: Vec<(FindingKind, String, Vec<String>)> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.kind,
                f.resource.key.id.clone(),
                f.changes.iter().map(|c| c.path.clone()).collect(),
            )
        })
        .collect();
    let mut want = vec![
        (
            FindingKind::Changed,
            seeded.instance.clone(),
            vec!["instance_type".to_string()],
        ),
        (
            FindingKind::Changed,
            seeded.web.clone(),
            vec!["ingress".to_string()],
        ),
        (
            FindingKind::Changed,
            seeded.vpc.clone(),
            vec!["tags.env".to_string()],
        ),
        // A rule declared as its own resource and revoked from the console shows on its
        // group, where the rules are reconciled.
        (
            FindingKind::Changed,
            seeded.api.clone(),
            vec!["ingress".to_string()],
        ),
        (
            FindingKind::Changed,
            policy_arn(),
            vec!["policy".to_string()],
        ),
        (
            FindingKind::Changed,
            "acme-logs".to_string(),
            vec!["facets.storage.public".to_string()],
        ),
        (
            FindingKind::Changed,
            "bucket-martin-test-drift2".to_string(),
            vec!["facets.storage.public".to_string()],
        ),
        (FindingKind::Missing, seeded.old.clone(), vec![]),
        (FindingKind::Unmanaged, format!("app/{ADMIN}"), vec![]),
        (FindingKind::Unmanaged, "acme-unmanaged".to_string(), vec![]),
    ];
    want.sort();
    let mut got = got;
    got.sort();
    assert_eq!(got, want);
    let api = report
        .findings
        .iter()
        .find(|f| f.resource.key.id == seeded.api)
        .unwrap();
    assert_eq!(
        (&api.changes[0].expected, &api.changes[0].actual),
        (
            &json!([{"protocol": "tcp", "from_port": 9090, "to_port": 9090, "source": "192.168.0.0/16"}]),
            &json!([])
        ),
        "{:?}",
        api.changes
    );
    let bucket = report
        .findings
        .iter()
        .find(|f| f.resource.key.id == "acme-unmanaged")
        .unwrap();
    assert!(
        bucket.facets.storage.as_ref().is_some_and(|s| s.public),
        "a public-read ACL makes the bucket public: {:?}",
        bucket.facets
    );
    let web = report
        .findings
        .iter()
        .find(|f| f.resource.key.id == seeded.web)
        .unwrap();
    assert_eq!(
        web.changes[0].actual,
        json!([{"protocol": "tcp", "from_port": 22, "to_port": 22, "source": "0.0.0.0/0"}])
    );
}
