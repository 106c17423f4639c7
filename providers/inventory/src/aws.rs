//! AWS Config exports: delivery-channel snapshots and history files, the output of
//! `get-resource-config-history`, `batch-get-resource-config` and `select-resource-config`,
//! bare arrays of configuration items, and JSON lines of items or change notifications.

use crate::json::{
    as_bool, as_int, first_of, first_str, input_err, kind, last_segment, map_str, new_resource,
    put, put_bool, put_int, put_str, skip_warnings, str_at, stream_records, tags_from_list,
    tags_from_object, tags_value, Loc, Top,
};
use driftwatch_plugin_sdk::schema::bucket_policy_value_is_public;
use driftwatch_plugin_sdk::{
    Facets, IngressRule, NetworkFacet, PortRange, ProviderError, Resource, RuleAction, Scope,
    StorageFacet,
};
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Terraform types this format emits.
pub(crate) const TYPES: &[&str] = &[
    "aws_security_group",
    "aws_vpc",
    "aws_subnet",
    "aws_instance",
    "aws_s3_bucket",
    "aws_s3_bucket_public_access_block",
    "aws_iam_role",
    "aws_iam_policy",
];

/// Statuses of items that describe a resource which no longer exists or is not recorded.
const NOT_LIVE: &[&str] = &[
    "ResourceDeleted",
    "ResourceDeletedNotRecorded",
    "ResourceNotRecorded",
];

const ALL_USERS: &str = "AllUsers";
const AUTHENTICATED_USERS: &str = "AuthenticatedUsers";

/// Reads AWS Config files, keeping the latest capture of each resource across all of them.
#[derive(Default)]
pub(crate) struct Reader {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    accounts: BTreeSet<String>,
    /// (account, region, Terraform type) the export shows the recorder covering.
    covered: BTreeSet<(Option<String>, Option<String>, &'static str)>,
    warnings: Vec<String>,
}

/// The Terraform types an AWS Config resource type's items list, and whether that type is
/// global (IAM: recorded once, with region `global`).
fn listed_types(rtype: &str) -> (&'static [&'static str], bool) {
    match rtype {
        "AWS::EC2::SecurityGroup" => (&["aws_security_group"], false),
        "AWS::EC2::VPC" => (&["aws_vpc"], false),
        "AWS::EC2::Subnet" => (&["aws_subnet"], false),
        "AWS::EC2::Instance" => (&["aws_instance"], false),
        // Config records a bucket in its own region, and its public access block with it.
        "AWS::S3::Bucket" => (
            &["aws_s3_bucket", "aws_s3_bucket_public_access_block"],
            false,
        ),
        "AWS::IAM::Role" => (&["aws_iam_role"], true),
        "AWS::IAM::Policy" => (&["aws_iam_policy"], true),
        _ => (&[], false),
    }
}

struct Entry {
    time: Option<i64>,
    outcome: Outcome,
}

enum Outcome {
    Live(Vec<Resource>),
    /// Why the item yields no resource, as the tail of a `skipped N ...` warning.
    Skipped(String),
}

impl Reader {
    /// Reads one file.
    pub(crate) fn add(&mut self, source: &str, bytes: &[u8]) -> Result<(), ProviderError> {
        const LISTS: &[&str] = &["configurationItems", "baseConfigurationItems", "Results"];
        let top = stream_records(source, bytes, LISTS, &mut |loc, item| {
            // Advanced queries return each row as a JSON-encoded string.
            let item = match (loc, item) {
                (Loc::Index("Results", _), Value::String(s)) => serde_json::from_str(&s)
                    .map_err(|e| input_err(source, format!("{loc}: invalid JSON string: {e}")))?,
                (_, other) => other,
            };
            self.item(source, loc, item)
        })?;
        match top {
            Top::Empty => self.warnings.push(format!("{source}: empty file")),
            Top::Array | Top::Lines => {}
            Top::Listed { rest, .. } => {
                if rest.get("nextToken").is_some_and(|t| !t.is_null()) {
                    self.warnings.push(format!(
                        "{source}: `nextToken` is set: this file is one page of a paginated \
                         result; export every page"
                    ));
                }
                if let Some(Value::Array(keys)) = rest.get("unprocessedResourceKeys") {
                    if !keys.is_empty() {
                        self.warnings.push(format!(
                            "{source}: {} resource key(s) were left unprocessed by \
                             batch-get-resource-config",
                            keys.len()
                        ));
                    }
                }
            }
            Top::Object {
                bad: Some((field, found)),
                ..
            } => {
                return Err(input_err(
                    source,
                    format!("`{field}` must be an array, found {found}"),
                ))
            }
            Top::Object { line, rest, .. } => {
                if rest.contains_key("resourceType") || rest.contains_key("configurationItem") {
                    return self.item(source, Loc::Line(line), Value::Object(rest));
                }
                return Err(input_err(
                    source,
                    "not an AWS Config export: expected `configurationItems`, \
                     `baseConfigurationItems`, a JSON array of configuration items, \
                     or JSON lines",
                ));
            }
            Top::Scalar(kind) => {
                return Err(input_err(
                    source,
                    format!(
                        "not an AWS Config export: expected an object or an array, found {kind}"
                    ),
                ))
            }
        }
        Ok(())
    }

    fn item(&mut self, source: &str, loc: Loc<'_>, item: Value) -> Result<(), ProviderError> {
        let mut item = match item {
            Value::Object(m) => m,
            other => {
                return Err(input_err(
                    source,
                    format!(
                        "{loc}: expected a configuration item object, found {}",
                        kind(&other)
                    ),
                ))
            }
        };
        // Change notifications wrap the item.
        if !item.contains_key("resourceType") {
            if let Some(Value::Object(inner)) = item.remove("configurationItem") {
                item = inner;
            }
        }
        let rtype = match item.get("resourceType") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(input_err(
                    source,
                    format!("{loc}: configuration item has no `resourceType`"),
                ))
            }
            Some(other) => {
                return Err(input_err(
                    source,
                    format!(
                        "{loc}: `resourceType` must be a string, found {}",
                        kind(other)
                    ),
                ))
            }
        };
        let account = map_str(&item, &["awsAccountId", "accountId"]).map(str::to_string);
        let region = map_str(&item, &["awsRegion", "region"]).map(str::to_string);
        let Some(rid) = map_str(&item, &["resourceId", "ARN", "arn", "resourceName"]) else {
            return Err(input_err(
                source,
                format!("{loc}: {rtype} item has no `resourceId`"),
            ));
        };
        let key = format!(
            "{}\u{1f}{}\u{1f}{rtype}\u{1f}{rid}",
            account.as_deref().unwrap_or(""),
            region.as_deref().unwrap_or("")
        );
        if let Some(a) = &account {
            if !self.accounts.contains(a) {
                self.accounts.insert(a.clone());
            }
        }
        // A recorded item, live or deleted, shows the recorder covers its type in its
        // account and region; one that is not recorded shows nothing.
        let status = item
            .get("configurationItemStatus")
            .and_then(Value::as_str)
            .unwrap_or("OK");
        if !matches!(status, "ResourceNotRecorded" | "ResourceDeletedNotRecorded") {
            let (types, global) = listed_types(&rtype);
            let region = region.clone().filter(|r| !global && r != "global");
            for ty in types {
                self.covered.insert((account.clone(), region.clone(), ty));
            }
        }
        let time = item
            .get("configurationItemCaptureTime")
            .and_then(crate::json::parse_time);
        let existing = self.index.get(&key).copied();
        if let Some(i) = existing {
            // Ties and unknown times go to the later record: history files are chronological.
            if let (Some(old), Some(new)) = (self.entries[i].time, time) {
                if old > new {
                    return Ok(());
                }
            }
        }
        let outcome = outcome(source, loc, rtype, account, region, item)?;
        let entry = Entry { time, outcome };
        match existing {
            Some(i) => self.entries[i] = entry,
            None => {
                self.index.insert(key, self.entries.len());
                self.entries.push(entry);
            }
        }
        Ok(())
    }

    /// The resources, accounts seen, warnings, and the scopes the export covers: one per
    /// (account, region, type) it holds records of. A snapshot is delivered per region, so
    /// claiming a type for every region of the account would turn every declared resource
    /// of the other regions into a false `missing`. IAM is global; S3 buckets are recorded
    /// in their own region.
    pub(crate) fn finish(self) -> (Vec<Resource>, BTreeSet<String>, Vec<String>, Vec<Scope>) {
        let mut resources = Vec::with_capacity(self.entries.len());
        let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
        for e in self.entries {
            match e.outcome {
                Outcome::Live(rs) => resources.extend(rs),
                Outcome::Skipped(why) => *skipped.entry(why).or_default() += 1,
            }
        }
        let mut warnings = self.warnings;
        warnings.extend(skip_warnings(skipped));
        let scopes = self
            .covered
            .into_iter()
            .map(|(account, region, ty)| {
                let mut s = Scope::complete("aws", ty);
                s.account = account;
                s.region = region;
                s
            })
            .collect();
        (resources, self.accounts, warnings, scopes)
    }
}

/// One live item, ready to map.
struct Item<'a> {
    source: &'a str,
    loc: Loc<'a>,
    rtype: String,
    account: Option<String>,
    region: Option<String>,
    resource_id: String,
    resource_name: Option<String>,
    tags: BTreeMap<String, String>,
    tags_known: bool,
    conf: Value,
    supp: Map<String, Value>,
}

fn outcome(
    source: &str,
    loc: Loc<'_>,
    rtype: String,
    account: Option<String>,
    region: Option<String>,
    mut item: Map<String, Value>,
) -> Result<Outcome, ProviderError> {
    let status = item
        .get("configurationItemStatus")
        .and_then(Value::as_str)
        .unwrap_or("OK");
    if NOT_LIVE.contains(&status) {
        return Ok(Outcome::Skipped(format!(
            "{rtype} item(s) with status {status} (not live)"
        )));
    }
    let supported = matches!(
        rtype.as_str(),
        "AWS::EC2::SecurityGroup"
            | "AWS::EC2::VPC"
            | "AWS::EC2::Subnet"
            | "AWS::EC2::Instance"
            | "AWS::S3::Bucket"
            | "AWS::IAM::Role"
            | "AWS::IAM::Policy"
    );
    if !supported {
        return Ok(Outcome::Skipped(format!(
            "item(s) of unsupported type {rtype}"
        )));
    }
    let conf = match item.remove("configuration") {
        Some(Value::String(s)) => serde_json::from_str(&s).map_err(|e| {
            input_err(
                source,
                format!("{loc}: `configuration` is a string but not valid JSON: {e}"),
            )
        })?,
        Some(Value::Object(m)) => Value::Object(m),
        None | Some(Value::Null) => {
            return Err(input_err(
                source,
                format!("{loc}: live {rtype} item has no `configuration`"),
            ))
        }
        Some(other) => {
            return Err(input_err(
                source,
                format!(
                    "{loc}: `configuration` must be an object, found {}",
                    kind(&other)
                ),
            ))
        }
    };
    let supp = match item.remove("supplementaryConfiguration") {
        Some(Value::Object(m)) => m,
        Some(Value::String(s)) => match serde_json::from_str(&s) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(input_err(
                    source,
                    format!("{loc}: `supplementaryConfiguration` is not a JSON object"),
                ))
            }
        },
        _ => Map::new(),
    };
    // Item tags are a map; `baseConfigurationItems` lack them, so the API's own list is
    // read first and the map wins where both exist.
    let mut tags = BTreeMap::new();
    tags_from_list(conf.get("tags"), &mut tags);
    tags_from_object(item.get("tags"), &mut tags);
    // Whether the item says anything about tags: a list in the configuration, or a map
    // that is not empty (an empty map is also what a type whose tags are not recorded has).
    let tags_known = conf.get("tags").is_some_and(Value::is_array) || !tags.is_empty();
    let resource_id = map_str(&item, &["resourceId", "ARN", "arn", "resourceName"])
        .unwrap_or_default()
        .to_string();
    let resource_name = map_str(&item, &["resourceName"]).map(str::to_string);
    let region = region.filter(|r| r != "global");
    let mut it = Item {
        source,
        loc,
        rtype,
        account,
        region,
        resource_id,
        resource_name,
        tags,
        tags_known,
        conf,
        supp,
    };
    Ok(match it.rtype.as_str() {
        "AWS::EC2::SecurityGroup" => Outcome::Live(vec![security_group(&it)]),
        "AWS::EC2::VPC" => Outcome::Live(vec![vpc(&mut it)?]),
        "AWS::EC2::Subnet" => Outcome::Live(vec![subnet(&it)]),
        "AWS::EC2::Instance" => match instance(&it) {
            Some(r) => Outcome::Live(vec![r]),
            None => Outcome::Skipped("terminated AWS::EC2::Instance item(s)".into()),
        },
        "AWS::S3::Bucket" => Outcome::Live(bucket(&mut it)?),
        "AWS::IAM::Policy" => Outcome::Live(vec![policy(&it)]),
        _ => Outcome::Live(vec![role(&it)]),
    })
}

impl Item<'_> {
    fn resource(&self, ty: &str, id: String) -> Resource {
        let mut r = new_resource("aws", ty, id);
        r.account = self.account.clone();
        r.region = self.region.clone();
        r.name = self
            .tags
            .get("Name")
            .cloned()
            .or_else(|| self.resource_name.clone());
        r.attributes.insert("tags".into(), tags_value(&self.tags));
        r.tags = self.tags.clone();
        r
    }

    fn id(&self, field: &str) -> String {
        str_at(&self.conf, field)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| self.resource_id.clone())
    }

    fn conf(&self, key: &str) -> Option<&Value> {
        self.conf.get(key)
    }

    /// A supplementary value, decoding the JSON strings AWS Config uses for some of them.
    fn supp(&mut self, keys: &[&str]) -> Result<Option<Value>, ProviderError> {
        let Some(key) = keys.iter().find(|k| self.supp.contains_key(**k)) else {
            return Ok(None);
        };
        match self.supp.remove(*key) {
            Some(Value::String(s)) => serde_json::from_str(&s).map(Some).map_err(|e| {
                input_err(
                    self.source,
                    format!(
                        "{}: supplementaryConfiguration.{key} is a string but not valid JSON: {e}",
                        self.loc
                    ),
                )
            }),
            Some(Value::Null) | None => Ok(None),
            Some(v) => Ok(Some(v)),
        }
    }
}

/// Protocol as Terraform's AWS provider stores it on inline rules.
fn tf_protocol(v: Option<&Value>) -> String {
    let p = match v {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-1".into(),
    };
    match p.as_str() {
        "-1" | "all" | "" => "-1".into(),
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "58" => "icmpv6".into(),
        _ => p,
    }
}

/// Protocol in the SDK's cloud-neutral vocabulary.
fn facet_protocol(tf: &str) -> String {
    if tf == "-1" {
        "all".into()
    } else {
        tf.to_string()
    }
}

fn security_group(it: &Item<'_>) -> Resource {
    let id = it.id("groupId");
    let owner = str_at(&it.conf, "ownerId").or(it.account.as_deref());
    let mut r = it.resource("aws_security_group", id.clone());
    let a = &mut r.attributes;
    put(a, "name", it.conf("groupName"));
    put(a, "description", it.conf("description"));
    put(a, "vpc_id", it.conf("vpcId"));
    put(a, "owner_id", it.conf("ownerId"));
    let mut ingress = Vec::new();
    if let Some(Value::Array(perms)) = it.conf("ipPermissions") {
        let mut rules = Vec::new();
        for p in perms {
            rules.extend(tf_rules(p, &id, owner));
            ingress.push(facet_rule(p));
        }
        a.insert("ingress".into(), Value::Array(rules));
    }
    if let Some(Value::Array(perms)) = it.conf("ipPermissionsEgress") {
        let rules = perms.iter().flat_map(|p| tf_rules(p, &id, owner)).collect();
        a.insert("egress".into(), Value::Array(rules));
    }
    if it.conf("ipPermissions").is_some() {
        r.facets.network = Some(NetworkFacet { ingress });
    }
    r.cloud_default = str_at(&it.conf, "groupName") == Some("default");
    r
}

/// The sources of one permission, as (kind, value, description).
fn sources<'a>(perm: &'a Value) -> Vec<(SourceKind, &'a str, &'a str, Option<&'a str>)> {
    let mut out = Vec::new();
    let mut v4: HashSet<&str> = HashSet::new();
    let desc = |v: &'a Value| str_at(v, "description").unwrap_or("");
    if let Some(Value::Array(ranges)) = perm.get("ipv4Ranges") {
        for r in ranges {
            if let Some(c) = str_at(r, "cidrIp") {
                if v4.insert(c) {
                    out.push((SourceKind::V4, c, desc(r), None));
                }
            }
        }
    }
    // Older items list the same CIDRs again as plain strings.
    if let Some(Value::Array(ranges)) = perm.get("ipRanges") {
        for r in ranges {
            let (c, d) = match r {
                Value::String(s) => (Some(s.as_str()), ""),
                other => (str_at(other, "cidrIp"), desc(other)),
            };
            if let Some(c) = c {
                if v4.insert(c) {
                    out.push((SourceKind::V4, c, d, None));
                }
            }
        }
    }
    if let Some(Value::Array(ranges)) = perm.get("ipv6Ranges") {
        for r in ranges {
            if let Some(c) = str_at(r, "cidrIpv6") {
                out.push((SourceKind::V6, c, desc(r), None));
            }
        }
    }
    if let Some(Value::Array(ids)) = perm.get("prefixListIds") {
        for r in ids {
            if let Some(c) = str_at(r, "prefixListId") {
                out.push((SourceKind::PrefixList, c, desc(r), None));
            }
        }
    }
    if let Some(Value::Array(pairs)) = perm.get("userIdGroupPairs") {
        for r in pairs {
            if let Some(g) = str_at(r, "groupId") {
                out.push((SourceKind::Group, g, desc(r), str_at(r, "userId")));
            }
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    V4,
    V6,
    PrefixList,
    Group,
}

/// Terraform inline rules of one permission: one rule per source, since each source may
/// carry its own description and Terraform groups rules by description.
fn tf_rules(perm: &Value, own_id: &str, owner: Option<&str>) -> Vec<Value> {
    let protocol = tf_protocol(perm.get("ipProtocol"));
    let (from, to) = if protocol == "-1" {
        (0, 0)
    } else {
        (
            perm.get("fromPort").and_then(as_int).unwrap_or(0),
            perm.get("toPort").and_then(as_int).unwrap_or(0),
        )
    };
    sources(perm)
        .into_iter()
        .map(|(kind, value, description, user)| {
            let one = |k: SourceKind| -> Value {
                if k == kind && !(kind == SourceKind::Group && value == own_id) {
                    let v = match (kind, user) {
                        // Terraform prefixes groups of other accounts with the account id.
                        (SourceKind::Group, Some(u)) if Some(u) != owner => format!("{u}/{value}"),
                        _ => value.to_string(),
                    };
                    json!([v])
                } else {
                    json!([])
                }
            };
            json!({
                "protocol": protocol,
                "from_port": from,
                "to_port": to,
                "cidr_blocks": one(SourceKind::V4),
                "ipv6_cidr_blocks": one(SourceKind::V6),
                "prefix_list_ids": one(SourceKind::PrefixList),
                "security_groups": one(SourceKind::Group),
                "self": kind == SourceKind::Group && value == own_id,
                "description": description,
            })
        })
        .collect()
}

fn facet_rule(perm: &Value) -> IngressRule {
    let tf = tf_protocol(perm.get("ipProtocol"));
    let protocol = facet_protocol(&tf);
    let ports = if matches!(protocol.as_str(), "tcp" | "udp") {
        let from = perm.get("fromPort").and_then(as_int);
        let to = perm.get("toPort").and_then(as_int);
        match (from, to) {
            (Some(0), Some(65535)) => Vec::new(),
            (Some(f), Some(t)) => match (u16::try_from(f), u16::try_from(t)) {
                (Ok(from), Ok(to)) => vec![PortRange { from, to }],
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let sources = sources(perm)
        .into_iter()
        .map(|(_, v, _, _)| v.to_string())
        .collect();
    IngressRule {
        protocol,
        ports,
        sources,
        action: RuleAction::Allow,
        priority: None,
        name: None,
        cloud_default: false,
    }
}

/// A VPC attribute that AWS Config may record in the configuration or as supplementary data.
fn vpc_flag(it: &mut Item<'_>, camel: &str, pascal: &str) -> Result<Option<bool>, ProviderError> {
    if let Some(b) = it.conf(camel).and_then(as_bool) {
        return Ok(Some(b));
    }
    Ok(it.supp(&[camel, pascal])?.as_ref().and_then(as_bool))
}

fn vpc(it: &mut Item<'_>) -> Result<Resource, ProviderError> {
    let dns_support = vpc_flag(it, "enableDnsSupport", "EnableDnsSupport")?;
    let dns_hostnames = vpc_flag(it, "enableDnsHostnames", "EnableDnsHostnames")?;
    let mut r = it.resource("aws_vpc", it.id("vpcId"));
    let a = &mut r.attributes;
    put(a, "cidr_block", it.conf("cidrBlock"));
    put(a, "instance_tenancy", it.conf("instanceTenancy"));
    put(a, "dhcp_options_id", it.conf("dhcpOptionsId"));
    put(a, "owner_id", it.conf("ownerId"));
    if let Some(b) = dns_support {
        a.insert("enable_dns_support".into(), Value::Bool(b));
    }
    if let Some(b) = dns_hostnames {
        a.insert("enable_dns_hostnames".into(), Value::Bool(b));
    }
    r.cloud_default = it.conf("isDefault").and_then(as_bool) == Some(true);
    Ok(r)
}

fn subnet(it: &Item<'_>) -> Resource {
    let mut r = it.resource("aws_subnet", it.id("subnetId"));
    let a = &mut r.attributes;
    put(a, "vpc_id", it.conf("vpcId"));
    put(a, "cidr_block", it.conf("cidrBlock"));
    put(a, "availability_zone", it.conf("availabilityZone"));
    put(a, "availability_zone_id", it.conf("availabilityZoneId"));
    put_bool(a, "map_public_ip_on_launch", it.conf("mapPublicIpOnLaunch"));
    put_bool(
        a,
        "assign_ipv6_address_on_creation",
        it.conf("assignIpv6AddressOnCreation"),
    );
    put(a, "owner_id", it.conf("ownerId"));
    r.cloud_default = it.conf("defaultForAz").and_then(as_bool) == Some(true);
    r
}

fn instance(it: &Item<'_>) -> Option<Resource> {
    let state = it.conf("state").and_then(|s| str_at(s, "name"));
    if state == Some("terminated") {
        return None;
    }
    let mut r = it.resource("aws_instance", it.id("instanceId"));
    let c = &it.conf;
    let a = &mut r.attributes;
    put(a, "instance_type", c.get("instanceType"));
    put(a, "ami", c.get("imageId"));
    put(a, "subnet_id", c.get("subnetId"));
    // The item holds the whole DescribeInstances object, so a null key pair is "none".
    if c.get("keyName").is_some() {
        put_str(a, "key_name", Some(str_at(c, "keyName").unwrap_or("")));
    }
    if let Some(p) = c.get("placement") {
        put(a, "availability_zone", p.get("availabilityZone"));
        put(a, "tenancy", p.get("tenancy"));
    }
    if let Some(Value::Array(groups)) = c.get("securityGroups") {
        let ids: Vec<Value> = groups
            .iter()
            .filter_map(|g| str_at(g, "groupId").map(|s| Value::String(s.into())))
            .collect();
        a.insert("vpc_security_group_ids".into(), Value::Array(ids));
    }
    put(a, "private_ip", c.get("privateIpAddress"));
    put_bool(a, "ebs_optimized", c.get("ebsOptimized"));
    put_bool(a, "source_dest_check", c.get("sourceDestCheck"));
    if let Some(m) = c.get("monitoring").and_then(|m| str_at(m, "state")) {
        // Terraform counts a pending enablement as enabled.
        a.insert(
            "monitoring".into(),
            Value::Bool(matches!(m, "enabled" | "pending")),
        );
    }
    if c.get("iamInstanceProfile").is_some() {
        let name = c
            .get("iamInstanceProfile")
            .and_then(|p| str_at(p, "arn"))
            .map(last_segment)
            .unwrap_or("");
        put_str(a, "iam_instance_profile", Some(name));
    }
    put_str(a, "instance_state", state);
    Some(r)
}

/// True when an ACL grantee (`"AllUsers"`, or an object with a group URI) is public.
fn public_grantee(g: &Value) -> bool {
    let is_public = |s: &str| {
        let tail = last_segment(s);
        tail == ALL_USERS || tail == AUTHENTICATED_USERS
    };
    match g {
        Value::String(s) => is_public(s),
        Value::Object(_) => ["uri", "URI", "identifier", "id"]
            .iter()
            .filter_map(|k| str_at(g, k))
            .any(is_public),
        _ => false,
    }
}

fn acl_is_public(acl: &Value) -> bool {
    let grants = first_of(acl, &["grantList", "grants", "Grants"]);
    matches!(grants, Some(Value::Array(gs)) if gs.iter().any(|g| {
        first_of(g, &["grantee", "Grantee"]).is_some_and(public_grantee)
    }))
}

fn bucket(it: &mut Item<'_>) -> Result<Vec<Resource>, ProviderError> {
    let name = it
        .resource_name
        .clone()
        .or_else(|| str_at(&it.conf, "name").map(str::to_string))
        .unwrap_or_else(|| it.resource_id.clone());
    let tagging = it.supp(&["Tags", "BucketTaggingConfiguration"])?;
    if let Some(t) = &tagging {
        match t {
            Value::Array(_) => tags_from_list(Some(t), &mut it.tags),
            _ => match t.get("tagSets") {
                Some(Value::Array(sets)) => {
                    for s in sets {
                        tags_from_object(s.get("tags"), &mut it.tags);
                    }
                }
                _ => tags_from_object(Some(t), &mut it.tags),
            },
        }
    }
    let versioning = it.supp(&["BucketVersioningConfiguration"])?;
    let sse = it.supp(&["ServerSideEncryptionConfiguration"])?;
    let pab = it.supp(&["PublicAccessBlockConfiguration"])?;
    let acl = it.supp(&["BucketAcl", "AccessControlList"])?;
    let policy = it.supp(&["BucketPolicy"])?;

    let mut r = it.resource("aws_s3_bucket", name.clone());
    let a = &mut r.attributes;
    a.insert("bucket".into(), Value::String(name.clone()));
    let mut versioning_on = None;
    if let Some(v) = &versioning {
        let enabled = str_at(v, "status") == Some("Enabled");
        let mfa = v.get("isMfaDeleteEnabled").and_then(as_bool) == Some(true);
        versioning_on = Some(enabled);
        a.insert(
            "versioning".into(),
            json!([{"enabled": enabled, "mfa_delete": mfa}]),
        );
    }
    let mut encrypted = None;
    if let Some(s) = &sse {
        let rules: Vec<Value> = match s.get("rules") {
            Some(Value::Array(rules)) => rules
                .iter()
                .map(|rule| {
                    let by_default = rule.get("applyServerSideEncryptionByDefault");
                    let alg = by_default
                        .and_then(|d| str_at(d, "sseAlgorithm"))
                        .unwrap_or("");
                    let key = by_default
                        .and_then(|d| first_str(d, &["kmsMasterKeyID", "kmsMasterKeyId"]))
                        .unwrap_or("");
                    let bucket_key = rule.get("bucketKeyEnabled").and_then(as_bool) == Some(true);
                    json!({
                        "apply_server_side_encryption_by_default": [
                            {"sse_algorithm": alg, "kms_master_key_id": key}
                        ],
                        "bucket_key_enabled": bucket_key,
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        encrypted = Some(!rules.is_empty());
        a.insert(
            "server_side_encryption_configuration".into(),
            json!([{ "rule": rules }]),
        );
    }
    let flag = |k: &str| pab.as_ref().and_then(|p| p.get(k)).and_then(as_bool) == Some(true);
    // Each half of the block neutralises one path to public access.
    let acl_public = acl.as_ref().is_some_and(acl_is_public) && !flag("ignorePublicAcls");
    let policy_text = match policy.as_ref().and_then(|p| p.get("policyText")) {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v) => Some(v),
            Err(e) => {
                return Err(input_err(
                    it.source,
                    format!("{}: BucketPolicy.policyText is not valid JSON: {e}", it.loc),
                ))
            }
        },
        Some(v @ Value::Object(_)) => Some(v.clone()),
        _ => None,
    };
    let policy_public = policy_text
        .as_ref()
        .is_some_and(bucket_policy_value_is_public)
        && !flag("restrictPublicBuckets");
    r.facets = Facets {
        network: None,
        storage: Some(StorageFacet {
            public: acl_public || policy_public,
            encrypted,
            versioning: versioning_on,
        }),
    };
    let mut out = vec![r];
    if let Some(p) = &pab {
        let mut b = new_resource("aws", "aws_s3_bucket_public_access_block", name.clone());
        b.account = it.account.clone();
        b.region = it.region.clone();
        b.name = Some(name.clone());
        let a = &mut b.attributes;
        a.insert("bucket".into(), Value::String(name));
        let keys = [
            ("block_public_acls", "blockPublicAcls"),
            ("ignore_public_acls", "ignorePublicAcls"),
            ("block_public_policy", "blockPublicPolicy"),
            ("restrict_public_buckets", "restrictPublicBuckets"),
        ];
        for (tf, api) in keys {
            a.insert(
                tf.into(),
                Value::Bool(p.get(api).and_then(as_bool).unwrap_or(false)),
            );
        }
        // S3 blocks everything on new buckets by itself (since April 2023).
        b.cloud_default = keys.iter().all(|(_, api)| flag(api));
        out.push(b);
    }
    Ok(out)
}

/// Decodes an IAM policy document (URL-encoded JSON in AWS Config) into the compact JSON
/// with sorted keys that `jsonencode` writes to state.
fn policy_document(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => {
            let decoded = percent_decode_str(s).decode_utf8_lossy();
            Some(match serde_json::from_str::<Value>(&decoded) {
                Ok(doc) => doc.to_string(),
                Err(_) => decoded.into_owned(),
            })
        }
        Value::Object(_) => Some(v.to_string()),
        _ => None,
    }
}

fn role(it: &Item<'_>) -> Resource {
    let name = it.id("roleName");
    let mut r = it.resource("aws_iam_role", name.clone());
    let c = &it.conf;
    let a = &mut r.attributes;
    a.insert("name".into(), Value::String(name));
    put(a, "path", c.get("path"));
    put(a, "description", c.get("description"));
    put_int(a, "max_session_duration", c.get("maxSessionDuration"));
    put(a, "arn", c.get("arn"));
    put(a, "unique_id", c.get("roleId"));
    if let Some(p) = c.get("assumeRolePolicyDocument").and_then(policy_document) {
        a.insert("assume_role_policy".into(), Value::String(p));
    }
    if let Some(Value::Array(policies)) = c.get("rolePolicyList") {
        let inline: Vec<Value> = policies
            .iter()
            .map(|p| {
                json!({
                    "name": str_at(p, "policyName").unwrap_or(""),
                    "policy": p.get("policyDocument").and_then(policy_document).unwrap_or_default(),
                })
            })
            .collect();
        a.insert("inline_policy".into(), Value::Array(inline));
    }
    if let Some(Value::Array(attached)) = c.get("attachedManagedPolicies") {
        let arns: Vec<Value> = attached
            .iter()
            .filter_map(|p| str_at(p, "policyArn").map(|s| Value::String(s.into())))
            .collect();
        a.insert("managed_policy_arns".into(), Value::Array(arns));
    }
    if c.get("permissionsBoundary").is_some() {
        let arn = c
            .get("permissionsBoundary")
            .and_then(|b| str_at(b, "permissionsBoundaryArn"))
            .unwrap_or("");
        put_str(a, "permissions_boundary", Some(arn));
    }
    r
}

/// A customer-managed policy: its default version's document (URL-encoded in the item's
/// `policyVersionList`) and its tags where the item records them. A policy whose item
/// carries no tags leaves `tags` out, so it is not compared rather than read as untagged.
fn policy(it: &Item<'_>) -> Resource {
    let c = &it.conf;
    let arn = str_at(c, "arn")
        .map(str::to_string)
        .unwrap_or_else(|| it.resource_id.clone());
    let mut r = it.resource("aws_iam_policy", arn.clone());
    if !it.tags_known {
        r.attributes.remove("tags");
    }
    if r.name.is_none() || r.name.as_deref() == Some(it.resource_id.as_str()) {
        r.name = str_at(c, "policyName").map(str::to_string);
    }
    let a = &mut r.attributes;
    a.insert("arn".into(), Value::String(arn));
    put(a, "name", c.get("policyName"));
    put(a, "path", c.get("path"));
    put(a, "policy_id", c.get("policyId"));
    if let Some(d) = str_at(c, "description") {
        a.insert("description".into(), Value::String(d.into()));
    }
    let default = str_at(c, "defaultVersionId");
    if let Some(Value::Array(versions)) = c.get("policyVersionList") {
        let doc = versions
            .iter()
            .find(|v| {
                v.get("isDefaultVersion").and_then(as_bool) == Some(true)
                    || (default.is_some() && str_at(v, "versionId") == default)
            })
            .and_then(|v| v.get("document"))
            .and_then(policy_document);
        if let Some(doc) = doc {
            a.insert("policy".into(), Value::String(doc));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols() {
        assert_eq!(tf_protocol(Some(&json!("-1"))), "-1");
        assert_eq!(tf_protocol(Some(&json!("6"))), "tcp");
        assert_eq!(tf_protocol(Some(&json!(17))), "udp");
        assert_eq!(tf_protocol(Some(&json!("TCP"))), "tcp");
        assert_eq!(tf_protocol(Some(&json!("50"))), "50");
        assert_eq!(facet_protocol("-1"), "all");
    }

    #[test]
    fn policy_documents_decode() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        assert_eq!(
            policy_document(&json!(encoded)).unwrap(),
            r#"{"Statement":[],"Version":"2012-10-17"}"#
        );
        assert_eq!(policy_document(&json!("not%20json")).unwrap(), "not json");
    }

    #[test]
    fn public_principals() {
        assert!(bucket_policy_value_is_public(
            &json!({"Statement": {"Effect": "Allow", "Principal": "*"}})
        ));
        assert!(bucket_policy_value_is_public(
            &json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*"]}}]})
        ));
        assert!(!bucket_policy_value_is_public(
            &json!({"Statement": [{"Effect": "Deny", "Principal": "*"}]})
        ));
        assert!(!bucket_policy_value_is_public(
            &json!({"Statement": [{"Effect": "Allow", "Principal": "*",
            "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}}]})
        ));
        assert!(!bucket_policy_value_is_public(
            &json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}}]})
        ));
        assert!(public_grantee(&json!("AllUsers")));
        assert!(public_grantee(
            &json!({"uri": "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"})
        ));
        assert!(!public_grantee(
            &json!({"id": "abc123", "displayName": null})
        ));
    }
}
