//! Regional EC2 listings: security groups, VPCs, subnets and instances.

use crate::client::Clients;
use crate::{api_error, map, Listed};
use driftwatch_plugin_sdk::Resource;

/// The largest page each EC2 Describe call accepts: fewer pages, fewer calls.
const PAGE: i32 = 1000;

/// Regions enabled for the account.
pub async fn enabled_regions(c: &Clients) -> Result<Vec<String>, String> {
    c.take("ec2").await;
    let out = c
        .ec2()
        .describe_regions()
        .send()
        .await
        .map_err(|e| api_error("ec2:DescribeRegions (listing the enabled regions)", e))?;
    Ok(out
        .regions
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.region_name)
        .collect())
}

/// Lists one region's EC2 resources; each type is its own scope.
pub async fn list_region(c: &Clients) -> Listed {
    let client = c.ec2();
    let mut listed = Listed::new();
    let (sgs, vpcs, subnets, instances) = tokio::join!(
        security_groups(c, &client),
        vpcs(c, &client),
        subnets(c, &client),
        instances(c, &client),
    );
    let (account, region) = (c.account.as_str(), Some(c.region.as_str()));
    listed.record(account, region, "aws_security_group", sgs);
    listed.record(account, region, "aws_vpc", vpcs);
    listed.record(account, region, "aws_subnet", subnets);
    listed.record(account, region, "aws_instance", instances);
    listed
}

async fn security_groups(c: &Clients, ec2: &aws_sdk_ec2::Client) -> Result<Vec<Resource>, String> {
    list_all!(
        c,
        "ec2",
        "ec2:DescribeSecurityGroups",
        ec2.describe_security_groups()
            .max_results(PAGE)
            .into_paginator()
            .send(),
        |page| page
            .security_groups()
            .iter()
            .map(|sg| map::security_group(sg, &c.account, &c.region))
    )
}

async fn vpcs(c: &Clients, ec2: &aws_sdk_ec2::Client) -> Result<Vec<Resource>, String> {
    list_all!(
        c,
        "ec2",
        "ec2:DescribeVpcs",
        ec2.describe_vpcs()
            .max_results(PAGE)
            .into_paginator()
            .send(),
        |page| page
            .vpcs()
            .iter()
            .map(|v| map::vpc(v, &c.account, &c.region))
    )
}

async fn subnets(c: &Clients, ec2: &aws_sdk_ec2::Client) -> Result<Vec<Resource>, String> {
    list_all!(
        c,
        "ec2",
        "ec2:DescribeSubnets",
        ec2.describe_subnets()
            .max_results(PAGE)
            .into_paginator()
            .send(),
        |page| page
            .subnets()
            .iter()
            .map(|s| map::subnet(s, &c.account, &c.region))
    )
}

async fn instances(c: &Clients, ec2: &aws_sdk_ec2::Client) -> Result<Vec<Resource>, String> {
    list_all!(
        c,
        "ec2",
        "ec2:DescribeInstances",
        ec2.describe_instances()
            .max_results(PAGE)
            .into_paginator()
            .send(),
        |page| page
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| map::instance(i, &c.account, &c.region))
    )
}
