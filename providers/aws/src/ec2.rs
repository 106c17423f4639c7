//! Regional EC2 listings: security groups, VPCs, subnets and instances.

use crate::map;
use crate::{api_error, scope, Calls, Listed};
use aws_config::SdkConfig;
use driftwatch_plugin_sdk::{ProviderError, Resource};

/// Regions enabled for the account.
pub async fn enabled_regions(
    conf: &SdkConfig,
    calls: &Calls,
) -> Result<Vec<String>, ProviderError> {
    calls.add();
    let out = aws_sdk_ec2::Client::new(conf)
        .describe_regions()
        .send()
        .await
        .map_err(|e| ProviderError::Input {
            source_name: "ec2:DescribeRegions".into(),
            message: api_error("listing the enabled regions", e),
        })?;
    Ok(out
        .regions
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.region_name)
        .collect())
}

/// Records one listing: its resources on success, an incomplete scope on failure.
fn record(
    listed: &mut Listed,
    account: &str,
    region: &str,
    ty: &str,
    result: Result<Vec<Resource>, String>,
) {
    match result {
        Ok(rs) => {
            listed.resources.extend(rs);
            listed.scopes.push(scope(account, Some(region), ty, None));
        }
        Err(e) => listed
            .scopes
            .push(scope(account, Some(region), ty, Some(e))),
    }
}

/// Lists one region's EC2 resources; each type is its own scope.
pub async fn list_region(conf: &SdkConfig, account: &str, region: &str, calls: &Calls) -> Listed {
    let client = aws_sdk_ec2::Client::new(conf);
    let mut listed = Listed {
        resources: Vec::new(),
        scopes: Vec::new(),
    };
    let (sgs, vpcs, subnets, instances) = tokio::join!(
        security_groups(&client, account, region, calls),
        vpcs(&client, account, region, calls),
        subnets(&client, account, region, calls),
        instances(&client, account, region, calls),
    );
    record(&mut listed, account, region, "aws_security_group", sgs);
    record(&mut listed, account, region, "aws_vpc", vpcs);
    record(&mut listed, account, region, "aws_subnet", subnets);
    record(&mut listed, account, region, "aws_instance", instances);
    listed
}

/// Follows a paginated list call to the end, counting every page as an API call.
macro_rules! list_all {
    ($calls:expr, $op:literal, $pages:expr, |$page:ident| $each:expr) => {{
        let mut out: Vec<Resource> = Vec::new();
        let mut pages = $pages;
        while let Some(page) = pages.next().await {
            $calls.add();
            let $page = page.map_err(|e| api_error($op, e))?;
            out.extend($each);
        }
        Ok(out)
    }};
}

async fn security_groups(
    c: &aws_sdk_ec2::Client,
    account: &str,
    region: &str,
    calls: &Calls,
) -> Result<Vec<Resource>, String> {
    list_all!(
        calls,
        "ec2:DescribeSecurityGroups",
        c.describe_security_groups().into_paginator().send(),
        |page| page
            .security_groups()
            .iter()
            .map(|sg| map::security_group(sg, account, region))
    )
}

async fn vpcs(
    c: &aws_sdk_ec2::Client,
    account: &str,
    region: &str,
    calls: &Calls,
) -> Result<Vec<Resource>, String> {
    list_all!(
        calls,
        "ec2:DescribeVpcs",
        c.describe_vpcs().into_paginator().send(),
        |page| page.vpcs().iter().map(|v| map::vpc(v, account, region))
    )
}

async fn subnets(
    c: &aws_sdk_ec2::Client,
    account: &str,
    region: &str,
    calls: &Calls,
) -> Result<Vec<Resource>, String> {
    list_all!(
        calls,
        "ec2:DescribeSubnets",
        c.describe_subnets().into_paginator().send(),
        |page| page
            .subnets()
            .iter()
            .map(|s| map::subnet(s, account, region))
    )
}

async fn instances(
    c: &aws_sdk_ec2::Client,
    account: &str,
    region: &str,
    calls: &Calls,
) -> Result<Vec<Resource>, String> {
    list_all!(
        calls,
        "ec2:DescribeInstances",
        c.describe_instances().into_paginator().send(),
        |page| page
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| map::instance(i, account, region))
    )
}
