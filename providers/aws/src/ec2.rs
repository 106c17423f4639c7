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

async fn security_groups(
    c: &aws_sdk_ec2::Client,
    account: &str,
    region: &str,
    calls: &Calls,
) -> Result<Vec<Resource>, String> {
    let mut out = Vec::new();
    let mut pages = c.describe_security_groups().into_paginator().send();
    while let Some(page) = pages.next().await {
        calls.add();
        let page = page.map_err(|e| api_error("ec2:DescribeSecurityGroups", e))?;
        for sg in page.security_groups.unwrap_or_default() {
            out.push(map::security_group(&sg, account, region));
        }
    }
    Ok(out)
}

async fn vpcs(
    c: &aws_sdk_ec2::Client,
    account: &str,
    region: &str,
    calls: &Calls,
) -> Result<Vec<Resource>, String> {
    let mut out = Vec::new();
    let mut pages = c.describe_vpcs().into_paginator().send();
    while let Some(page) = pages.next().await {
        calls.add();
        let page = page.map_err(|e| api_error("ec2:DescribeVpcs", e))?;
        for v in page.vpcs.unwrap_or_default() {
            out.push(map::vpc(&v, account, region));
        }
    }
    Ok(out)
}

async fn subnets(
    c: &aws_sdk_ec2::Client,
    account: &str,
    region: &str,
    calls: &Calls,
) -> Result<Vec<Resource>, String> {
    let mut out = Vec::new();
    let mut pages = c.describe_subnets().into_paginator().send();
    while let Some(page) = pages.next().await {
        calls.add();
        let page = page.map_err(|e| api_error("ec2:DescribeSubnets", e))?;
        for s in page.subnets.unwrap_or_default() {
            out.push(map::subnet(&s, account, region));
        }
    }
    Ok(out)
}

async fn instances(
    c: &aws_sdk_ec2::Client,
    account: &str,
    region: &str,
    calls: &Calls,
) -> Result<Vec<Resource>, String> {
    let mut out = Vec::new();
    let mut pages = c.describe_instances().into_paginator().send();
    while let Some(page) = pages.next().await {
        calls.add();
        let page = page.map_err(|e| api_error("ec2:DescribeInstances", e))?;
        for r in page.reservations.unwrap_or_default() {
            for i in r.instances.unwrap_or_default() {
                if let Some(res) = map::instance(&i, account, region) {
                    out.push(res);
                }
            }
        }
    }
    Ok(out)
}
