//! The AWS provider against a fixture server that pages with a small page size, throttles
//! on demand and fails on demand: every page is followed, throttling is retried, and a
//! listing that keeps failing marks only its own scope incomplete.

use driftwatch_plugin_sdk::{CollectContext, Emit, Provider, ProviderError, Resource};
use driftwatch_provider_aws::AwsProvider;
use driftwatch_tests::aws_fixture::{AwsFixture, Spec};
use driftwatch_tests::moto::Moto;
use serde_json::json;
use std::collections::HashMap;

#[derive(Default)]
struct Gather(Vec<Resource>);

impl Emit for Gather {
    fn emit(&mut self, batch: Vec<Resource>) -> Result<(), ProviderError> {
        self.0.extend(batch);
        Ok(())
    }
}

fn collect(
    endpoint: &str,
    max_attempts: u32,
) -> (Vec<Resource>, driftwatch_plugin_sdk::CollectReport) {
    Moto::fake_credentials();
    let mut p = AwsProvider::default();
    p.configure(&json!({
        "regions": ["us-east-1"],
        "endpoint_url": endpoint,
        "max_attempts": max_attempts,
        "rate_limit": 1000,
    }))
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut out = Gather::default();
    let report = rt
        .block_on(p.collect(&CollectContext::new(100), &mut out))
        .unwrap();
    (out.0, report)
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
