//! The AWS provider against a fixture server that pages with a small page size, throttles
//! on demand and fails on demand: every page is followed, throttling is retried, and a
//! listing that keeps failing marks only its own scope incomplete.

use driftwatch_plugin_sdk::DynProviderFactory;
use driftwatch_plugin_sdk::{CollectContext, CollectReport, Emit, ProviderError, Resource};
use driftwatch_provider_aws::AwsFactory;
use driftwatch_tests::aws_fixture::{AwsFixture, Spec};
use driftwatch_tests::moto::Moto;
use serde_json::{json, Value};
use std::collections::HashMap;

#[derive(Default)]
struct Gather(Vec<Resource>);

impl Emit for Gather {
    fn emit(&mut self, batch: Vec<Resource>) -> Result<(), ProviderError> {
        self.0.extend(batch);
        Ok(())
    }
}

fn collect(endpoint: &str, max_attempts: u32) -> (Vec<Resource>, CollectReport) {
    collect_with(json!({
        "regions": ["us-east-1"],
        "endpoint_url": endpoint,
        "max_attempts": max_attempts,
        "rate_limit": 1000,
    }))
    .unwrap()
}

fn collect_with(config: Value) -> Result<(Vec<Resource>, CollectReport), ProviderError> {
    Moto::fake_credentials();
    let p = AwsFactory.create(&config).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut out = Gather::default();
    let report = rt.block_on(p.collect(&CollectContext::new(100), &mut out))?;
    Ok((out.0, report))
}

fn count(rs: &[Resource], ty: &str) -> usize {
    rs.iter().filter(|r| r.key.r#type == ty).count()
}

#[test]
fn every_page_is_followed_and_throttling_is_retried() {
    let fixture = AwsFixture::start(Spec {
        security_groups: 7,
        vpcs: 5,
        roles: 3,
        page: 2,
        throttle: HashMap::from([("DescribeVpcs".to_string(), 2)]),
        fail: vec![],
    });
    let (resources, report) = collect(&fixture.endpoint, 6);
    assert!(
        report.scopes.iter().all(|s| s.complete),
        "{:?}",
        report.scopes
    );
    assert_eq!(count(&resources, "aws_security_group"), 7);
    assert_eq!(count(&resources, "aws_vpc"), 5);
    assert_eq!(count(&resources, "aws_iam_role"), 3);
    // Pages of 2: 4 for 7 groups, 3 for 5 VPCs (plus the 2 throttled attempts), 2 for 3 roles.
    assert_eq!(fixture.calls("DescribeSecurityGroups"), 4);
    assert_eq!(fixture.calls("DescribeVpcs"), 3 + 2);
    assert_eq!(fixture.calls("ListRoles"), 2);
    assert_eq!(fixture.calls("ListRoleTags"), 3);
    assert_eq!(fixture.calls("ListAttachedRolePolicies"), 3);
    // The reported count is every attempt the server saw, retries included.
    let expected = 1 + 4 + (3 + 2) + 1 + 1 + 1 + 2 + 3 + 3 + 1;
    assert_eq!(fixture.requests(), expected);
    assert_eq!(report.api_calls, expected);
}

#[test]
fn a_listing_that_keeps_failing_marks_only_its_scope() {
    let fixture = AwsFixture::start(Spec {
        security_groups: 3,
        vpcs: 1,
        roles: 1,
        page: 2,
        throttle: HashMap::new(),
        fail: vec!["DescribeSubnets".to_string()],
    });
    let (resources, report) = collect(&fixture.endpoint, 2);
    let failed: Vec<(&str, Option<&str>)> = report
        .scopes
        .iter()
        .filter(|s| !s.complete)
        .map(|s| (s.r#type.as_str(), s.region.as_deref()))
        .collect();
    assert_eq!(failed, vec![("aws_subnet", Some("us-east-1"))]);
    let err = report.scopes.iter().find(|s| !s.complete).unwrap();
    assert!(
        err.error
            .as_deref()
            .unwrap()
            .contains("ec2:DescribeSubnets"),
        "{:?}",
        err.error
    );
    assert_eq!(
        fixture.calls("DescribeSubnets"),
        2,
        "retried up to max_attempts"
    );
    assert_eq!(count(&resources, "aws_security_group"), 3);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
}

#[test]
fn an_account_that_cannot_be_reached_withholds_judgement_only() {
    let fixture = AwsFixture::start(Spec {
        security_groups: 2,
        vpcs: 1,
        roles: 0,
        page: 10,
        ..Spec::default()
    });
    let config = |accounts: Value| {
        json!({
            "regions": ["us-east-1"],
            "endpoint_url": fixture.endpoint,
            "max_attempts": 2,
            "accounts": accounts,
        })
    };
    let (resources, report) = collect_with(config(json!([
        {"role_arn": "arn:aws:iam::123456789012:role/audit"},
        {"role_arn": "arn:aws:iam::999999999999:role/denied", "external_id": "x"},
    ])))
    .unwrap();
    assert_eq!(count(&resources, "aws_security_group"), 2);
    let failed: Vec<_> = report.scopes.iter().filter(|s| !s.complete).collect();
    assert_eq!(failed.len(), 9, "every type, in every account: {failed:?}");
    assert!(failed.iter().all(|s| s.account.is_none()));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("role/denied") && w.contains("AccessDenied")),
        "{:?}",
        report.warnings
    );
    let all_denied = collect_with(config(json!([
        {"role_arn": "arn:aws:iam::999999999999:role/denied"},
    ])))
    .unwrap_err()
    .to_string();
    assert!(all_denied.contains("AccessDenied"), "{all_denied}");
}
