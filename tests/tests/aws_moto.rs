//! The AWS provider against a real moto server: an estate in sync gives no finding (moto's
//! default VPC, subnets and security groups included), and each kind of console drift
//! gives exactly its finding.

use aws_config::{BehaviorVersion, Region};
use driftwatch_core::config::Config;
use driftwatch_core::scan;
use driftwatch_plugin_sdk::{FindingKind, ScanReport};
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
    let iam = aws_sdk_iam::Client::new(conf);
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
    Seeded {
        api,
        vpc,
        subnet,
        web,
        old,
        instance,
    }
}

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
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
    json!({"version": 4, "terraform_version": "1.9.8", "serial": 1, "lineage": "moto",
        "outputs": {}, "resources": [
        res("aws_vpc", "prod", json!({"id": s.vpc, "cidr_block": "10.1.0.0/16",
            "tags": {"Name": "prod", "env": "prod"}})),
        res("aws_subnet", "a", json!({"id": s.subnet, "vpc_id": s.vpc,
            "cidr_block": "10.1.1.0/24", "availability_zone": "us-east-1a", "tags": {}})),
        res("aws_security_group", "web", json!({"id": s.web, "name": "web",
            "description": "web tier", "vpc_id": s.vpc, "tags": {},
            "ingress": [rule(443, "10.0.0.0/8", "https")],
            "egress": [{"protocol": "-1", "from_port": 0, "to_port": 0,
                "cidr_blocks": ["0.0.0.0/0"], "ipv6_cidr_blocks": [], "prefix_list_ids": [],
                "security_groups": [], "self": false, "description": ""}]})),
        res("aws_security_group", "old", json!({"id": s.old, "name": "old",
            "description": "old tier", "vpc_id": s.vpc, "tags": {}})),
        res("aws_security_group", "api", json!({"id": s.api, "name": "api",
            "description": "api tier", "vpc_id": s.vpc, "tags": {}})),
        // Rules of `api` declared as separate resources of both generations.
        res("aws_security_group_rule", "api_8080", json!({"id": "sgrule-3141592653",
            "type": "ingress", "security_group_id": s.api, "protocol": "tcp",
            "from_port": 8080, "to_port": 8080, "cidr_blocks": ["10.0.0.0/8"]})),
        res("aws_vpc_security_group_ingress_rule", "api_9090", json!({"id": "sgr-0123456789abcdef0",
            "security_group_id": s.api, "ip_protocol": "tcp", "from_port": 9090,
            "to_port": 9090, "cidr_ipv4": "192.168.0.0/16"})),
        res("aws_iam_role", "app", json!({"id": "app", "name": "app", "path": "/",
            "assume_role_policy": TRUST, "tags": {"team": "platform"}})),
        // Terraform makes the attachment's id up; role and policy identify it.
        res("aws_iam_role_policy_attachment", "app_read", json!({
            "id": "app-20240101000000000000000001", "role": "app", "policy_arn": READ_ONLY})),
        res("aws_instance", "app", json!({"id": s.instance, "instance_type": "t3.small",
            "subnet_id": s.subnet, "tags": {}})),
        res("aws_s3_bucket", "logs", json!({"id": "acme-logs", "bucket": "acme-logs",
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
    let prepared = scan::prepare(config, &[]).unwrap();
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
