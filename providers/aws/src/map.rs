//! SDK types to driftwatch resources in the Terraform AWS provider's attribute shape.

use aws_sdk_ec2::types::{Instance, IpPermission, SecurityGroup, Subnet, Tag, Vpc};
use driftwatch_plugin_sdk::{
    Facets, IngressRule, NetworkFacet, PortRange, Resource, ResourceKey, RuleAction,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A resource of `ty` with its key, account, region, tags (also as the `tags` attribute)
/// and the Name tag as its name.
pub fn base(
    ty: &str,
    id: &str,
    account: &str,
    region: Option<&str>,
    tags: BTreeMap<String, String>,
) -> Resource {
    let mut r = Resource::new(ResourceKey::new("aws", ty, id));
    r.account = Some(account.to_string());
    r.region = region.map(str::to_string);
    r.name = tags.get("Name").cloned();
    r.attributes.insert("tags".into(), json!(tags));
    r.tags = tags;
    r
}

fn ec2_tags(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn put(attrs: &mut Map<String, Value>, key: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        attrs.insert(key.into(), v.into());
    }
}

/// Protocol names as Terraform stores them: `-1` for all, names for the common numbers.
fn protocol(p: Option<&str>) -> String {
    match p.unwrap_or("-1").to_ascii_lowercase().as_str() {
        "-1" | "all" => "-1".into(),
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        other => other.to_string(),
    }
}

/// One Terraform inline rule per source, so per-source descriptions survive.
fn rules(perms: &[IpPermission], own_id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for p in perms {
        let proto = protocol(p.ip_protocol());
        let (from, to) = if proto == "-1" {
            (0, 0)
        } else {
            (p.from_port().unwrap_or(0), p.to_port().unwrap_or(0))
        };
        let rule = |key: &str, source: Value, desc: Option<&str>, is_self: bool| {
            let mut m = json!({
                "protocol": proto, "from_port": from, "to_port": to,
                "cidr_blocks": [], "ipv6_cidr_blocks": [], "prefix_list_ids": [],
                "security_groups": [], "self": is_self,
                "description": desc.unwrap_or(""),
            });
            if !key.is_empty() {
                m[key] = json!([source]);
            }
            m
        };
        for r in p.ip_ranges() {
            out.push(rule(
                "cidr_blocks",
                json!(r.cidr_ip()),
                r.description(),
                false,
            ));
        }
        for r in p.ipv6_ranges() {
            out.push(rule(
                "ipv6_cidr_blocks",
                json!(r.cidr_ipv6()),
                r.description(),
                false,
            ));
        }
        for r in p.prefix_list_ids() {
            out.push(rule(
                "prefix_list_ids",
                json!(r.prefix_list_id()),
                r.description(),
                false,
            ));
        }
        for g in p.user_id_group_pairs() {
            if g.group_id() == Some(own_id) {
                out.push(rule("", Value::Null, g.description(), true));
            } else {
                out.push(rule(
                    "security_groups",
                    json!(g.group_id()),
                    g.description(),
                    false,
                ));
            }
        }
    }
    out
}

fn facet(perms: &[IpPermission]) -> NetworkFacet {
    let ingress = perms
        .iter()
        .map(|p| {
            let proto = protocol(p.ip_protocol());
            let ports = match (proto.as_str(), p.from_port(), p.to_port()) {
                ("-1", _, _) => vec![],
                (_, Some(f), Some(t)) if f >= 0 && t >= 0 && !(f == 0 && t == 65535) => {
                    vec![PortRange {
                        from: f.clamp(0, 65535) as u16,
                        to: t.clamp(0, 65535) as u16,
                    }]
                }
                _ => vec![],
            };
            let mut sources: Vec<String> = p
                .ip_ranges()
                .iter()
                .filter_map(|r| r.cidr_ip().map(str::to_string))
                .collect();
            sources.extend(
                p.ipv6_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ipv6().map(str::to_string)),
            );
            sources.extend(
                p.user_id_group_pairs()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_string)),
            );
            sources.extend(
                p.prefix_list_ids()
                    .iter()
                    .filter_map(|r| r.prefix_list_id().map(str::to_string)),
            );
            IngressRule {
                protocol: if proto == "-1" { "all".into() } else { proto },
                ports,
                sources,
                action: RuleAction::Allow,
                priority: None,
                name: None,
                cloud_default: false,
            }
        })
        .collect();
    NetworkFacet { ingress }
}

/// `aws_security_group`, with inline rules and the network facet.
pub fn security_group(sg: &SecurityGroup, account: &str, region: &str) -> Resource {
    let id = sg.group_id().unwrap_or_default();
    let mut r = base(
        "aws_security_group",
        id,
        account,
        Some(region),
        ec2_tags(sg.tags()),
    );
    if r.name.is_none() {
        r.name = sg.group_name().map(str::to_string);
    }
    let a = &mut r.attributes;
    put(a, "name", sg.group_name());
    put(a, "description", sg.description());
    put(a, "vpc_id", sg.vpc_id());
    put(a, "owner_id", sg.owner_id());
    a.insert(
        "ingress".into(),
        Value::Array(rules(sg.ip_permissions(), id)),
    );
    a.insert(
        "egress".into(),
        Value::Array(rules(sg.ip_permissions_egress(), id)),
    );
    r.facets = Facets {
        network: Some(facet(sg.ip_permissions())),
        storage: None,
    };
    r.cloud_default = sg.group_name() == Some("default");
    r
}

/// `aws_vpc`; the default VPC is a cloud default.
pub fn vpc(v: &Vpc, account: &str, region: &str) -> Resource {
    let mut r = base(
        "aws_vpc",
        v.vpc_id().unwrap_or_default(),
        account,
        Some(region),
        ec2_tags(v.tags()),
    );
    let a = &mut r.attributes;
    put(a, "cidr_block", v.cidr_block());
    put(
        a,
        "instance_tenancy",
        v.instance_tenancy().map(|t| t.as_str()),
    );
    put(a, "dhcp_options_id", v.dhcp_options_id());
    put(a, "owner_id", v.owner_id());
    r.cloud_default = v.is_default() == Some(true);
    r
}

/// `aws_subnet`; default subnets are cloud defaults.
pub fn subnet(s: &Subnet, account: &str, region: &str) -> Resource {
    let mut r = base(
        "aws_subnet",
        s.subnet_id().unwrap_or_default(),
        account,
        Some(region),
        ec2_tags(s.tags()),
    );
    let a = &mut r.attributes;
    put(a, "vpc_id", s.vpc_id());
    put(a, "cidr_block", s.cidr_block());
    put(a, "availability_zone", s.availability_zone());
    put(a, "availability_zone_id", s.availability_zone_id());
    put(a, "map_public_ip_on_launch", s.map_public_ip_on_launch());
    put(
        a,
        "assign_ipv6_address_on_creation",
        s.assign_ipv6_address_on_creation(),
    );
    put(a, "owner_id", s.owner_id());
    r.cloud_default = s.default_for_az() == Some(true);
    r
}

/// `aws_instance`; terminated instances are not live.
pub fn instance(i: &Instance, account: &str, region: &str) -> Option<Resource> {
    let state = i
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string());
    if state.as_deref() == Some("terminated") {
        return None;
    }
    let mut r = base(
        "aws_instance",
        i.instance_id().unwrap_or_default(),
        account,
        Some(region),
        ec2_tags(i.tags()),
    );
    let a = &mut r.attributes;
    put(a, "instance_type", i.instance_type().map(|t| t.as_str()));
    put(a, "ami", i.image_id());
    put(a, "subnet_id", i.subnet_id());
    a.insert("key_name".into(), json!(i.key_name().unwrap_or("")));
    put(
        a,
        "availability_zone",
        i.placement().and_then(|p| p.availability_zone()),
    );
    let sgs: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    a.insert("vpc_security_group_ids".into(), json!(sgs));
    put(a, "private_ip", i.private_ip_address());
    put(a, "ebs_optimized", i.ebs_optimized());
    let monitoring = i
        .monitoring()
        .and_then(|m| m.state())
        .map(|s| matches!(s.as_str(), "enabled" | "pending"));
    put(a, "monitoring", monitoring);
    let profile = i
        .iam_instance_profile()
        .and_then(|p| p.arn())
        .and_then(|arn| arn.rsplit('/').next())
        .unwrap_or("");
    a.insert("iam_instance_profile".into(), json!(profile));
    put(a, "instance_state", state);
    Some(r)
}
