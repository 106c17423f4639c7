//! Azure Resource Graph results (`az graph query -o json`), bare arrays of rows, and ARM
//! list responses (`{"value": [...]}`); the mapping of ARM objects to azurerm shapes is
//! shared with the Azure provider.

use crate::json::{
    as_bool, as_int, first_str, input_err, kind, last_segment, new_resource, port_range, put,
    put_bool, put_str, segment_after, skip_warnings, str_at, stream_records, strings,
    tags_from_object, tags_value, Loc, Top,
};
use driftwatch_plugin_sdk::{
    Facets, IngressRule, NetworkFacet, ProviderError, Resource, RuleAction, StorageFacet,
};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Terraform types this format emits.
pub const TYPES: &[&str] = &[
    "azurerm_network_security_group",
    "azurerm_virtual_network",
    "azurerm_subnet",
    "azurerm_storage_account",
    "azurerm_resource_group",
];

const NSG: &str = "microsoft.network/networksecuritygroups";
const VNET: &str = "microsoft.network/virtualnetworks";
const SUBNET: &str = "microsoft.network/virtualnetworks/subnets";
const STORAGE: &str = "microsoft.storage/storageaccounts";
const RESOURCE_GROUP: &str = "microsoft.resources/subscriptions/resourcegroups";
/// The type ARM's own resource-group list reports, where Resource Graph says the above.
const RESOURCE_GROUP_ARM: &str = "microsoft.resources/resourcegroups";

/// Reads Resource Graph files, dropping rows seen twice (overlapping queries).
#[derive(Default)]
pub(crate) struct Reader {
    resources: Vec<Resource>,
    seen: HashSet<String>,
    accounts: BTreeSet<String>,
    skipped: BTreeMap<String, usize>,
    warnings: Vec<String>,
    rows: u64,
    /// Largest `total_records` announced by a page that had more to fetch.
    announced: Option<u64>,
    /// True once a row of the ResourceContainers table (resource groups) was seen.
    containers: bool,
}

/// What `finish` hands back.
pub(crate) struct Finished {
    pub resources: Vec<Resource>,
    pub accounts: BTreeSet<String>,
    pub warnings: Vec<String>,
    /// Set when the export is a truncated page: every scope is then incomplete.
    pub truncated: Option<String>,
    /// False when no resource group row was seen, so their listing cannot be called complete.
    pub has_resource_groups: bool,
}

impl Reader {
    /// Reads one file.
    pub(crate) fn add(&mut self, source: &str, bytes: &[u8]) -> Result<(), ProviderError> {
        let top = stream_records(source, bytes, &["data", "value"], &mut |loc, row| {
            self.row(source, loc, row)
        })?;
        match top {
            Top::Empty => self.warnings.push(format!("{source}: empty file")),
            Top::Array | Top::Lines => {}
            Top::Listed { rest, .. } => self.page_info(source, &rest),
            Top::Object {
                bad: Some((_, "a table")),
                ..
            } => {
                return Err(input_err(
                    source,
                    "table-format results are not supported: export with \
                     `az graph query -o json` (objectArray format)",
                ))
            }
            Top::Object {
                bad: Some((field, found)),
                ..
            } => {
                return Err(input_err(
                    source,
                    format!("`{field}` must be an array of rows, found {found}"),
                ))
            }
            Top::Object { line, rest, .. } => {
                if rest.contains_key("type") && rest.contains_key("id") {
                    return self.row(source, Loc::Line(line), Value::Object(rest));
                }
                return Err(input_err(
                    source,
                    "not an Azure Resource Graph result: expected `data` or `value` \
                     holding an array of rows, or a JSON array of rows",
                ));
            }
            Top::Scalar(kind) => {
                return Err(input_err(
                    source,
                    format!(
                        "not an Azure Resource Graph result: expected an object or an array, \
                         found {kind}"
                    ),
                ))
            }
        }
        Ok(())
    }

    /// Notes pagination: a page with a skip token announces more rows than it holds.
    fn page_info(&mut self, source: &str, doc: &Map<String, Value>) {
        let field = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| doc.get(*k).filter(|v| !v.is_null()))
        };
        let token = field(&["skip_token", "skipToken", "$skipToken"]);
        if token.is_some_and(|t| t.as_str() != Some("")) {
            let total = field(&["total_records", "totalRecords"])
                .and_then(as_int)
                .and_then(|n| u64::try_from(n).ok());
            self.warnings.push(format!(
                "{source}: `skip_token` is set: this file is one page of a larger result; \
                 export every page (az graph query --first 1000 --skip-token ...)"
            ));
            self.announced = match (self.announced, total) {
                (Some(a), Some(t)) => Some(a.max(t)),
                (a, t) => a.or(t).or(Some(u64::MAX)),
            };
        }
        if doc.get("nextLink").is_some_and(|l| !l.is_null()) {
            self.warnings.push(format!(
                "{source}: `nextLink` is set: this file is one page of an ARM list; export \
                 every page"
            ));
        }
    }

    fn row(&mut self, source: &str, loc: Loc<'_>, row: Value) -> Result<(), ProviderError> {
        self.rows += 1;
        if !row.is_object() {
            return Err(input_err(
                source,
                format!("{loc}: expected a row object, found {}", kind(&row)),
            ));
        }
        let Some(ty) = first_str(&row, &["type"]).map(str::to_ascii_lowercase) else {
            return Err(input_err(source, format!("{loc}: row has no `type`")));
        };
        let Some(id) = first_str(&row, &["id"]) else {
            return Err(input_err(source, format!("{loc}: {ty} row has no `id`")));
        };
        let subscription = first_str(&row, &["subscriptionId"])
            .or_else(|| segment_after(id, "subscriptions"))
            .map(str::to_string);
        if let Some(s) = &subscription {
            if !self.accounts.contains(s) {
                self.accounts.insert(s.clone());
            }
        }
        if ty.starts_with("microsoft.resources/subscriptions") || ty == RESOURCE_GROUP_ARM {
            self.containers = true;
        }
        match map_arm_object(&ty, row, subscription) {
            Some(rs) => {
                for r in rs {
                    self.push(r);
                }
            }
            None => {
                *self
                    .skipped
                    .entry(format!("row(s) of unsupported type {ty}"))
                    .or_default() += 1;
            }
        }
        Ok(())
    }

    fn push(&mut self, r: Resource) {
        // ARM ids are case-insensitive.
        if self.seen.insert(r.key.id.to_ascii_lowercase()) {
            self.resources.push(r);
        }
    }

    /// The resources, accounts seen and warnings.
    pub(crate) fn finish(self) -> Finished {
        let mut warnings = self.warnings;
        warnings.extend(skip_warnings(self.skipped));
        let truncated = match self.announced {
            Some(total) if total > self.rows => Some(if total == u64::MAX {
                "the Resource Graph result is a partial page (skip_token set)".to_string()
            } else {
                format!(
                    "the Resource Graph result is truncated: {} of {total} rows exported \
                     (skip_token set)",
                    self.rows
                )
            }),
            _ => None,
        };
        if !self.containers {
            warnings.push(
                "no resource group rows (ResourceContainers table) in the export: \
                 azurerm_resource_group is not reported as listed"
                    .to_string(),
            );
        }
        Finished {
            resources: self.resources,
            accounts: self.accounts,
            warnings,
            truncated,
            has_resource_groups: self.containers,
        }
    }
}

/// Maps one ARM resource object, as ARM list calls and Resource Graph return it, to the
/// azurerm-shaped resources it holds (a virtual network yields its subnets as well); `None`
/// for a type driftwatch does not model. `ty` is the lowercased ARM type.
pub fn map_arm_object(ty: &str, row: Value, subscription: Option<String>) -> Option<Vec<Resource>> {
    if !matches!(
        ty,
        NSG | VNET | SUBNET | STORAGE | RESOURCE_GROUP | RESOURCE_GROUP_ARM
    ) {
        return None;
    }
    let subscription = subscription.or_else(|| {
        first_str(&row, &["id"])
            .and_then(|id| segment_after(id, "subscriptions"))
            .map(str::to_string)
    });
    let row = Row::new(row, subscription);
    Some(match ty {
        NSG => vec![nsg(&row)],
        VNET => {
            let (vnet, mut subnets) = vnet(&row);
            subnets.insert(0, vnet);
            subnets
        }
        SUBNET => {
            let vnet_name = segment_after(&row.id, "virtualNetworks").unwrap_or("");
            vec![subnet_resource(&row.row, vnet_name, &row)]
        }
        STORAGE => vec![storage(&row)],
        _ => vec![resource_group(&row)],
    })
}

/// One row with the fields every mapping needs.
struct Row {
    row: Value,
    id: String,
    name: String,
    subscription: Option<String>,
    location: Option<String>,
    resource_group: Option<String>,
    tags: BTreeMap<String, String>,
}

impl Row {
    fn new(row: Value, subscription: Option<String>) -> Self {
        let id = first_str(&row, &["id"]).unwrap_or_default().to_string();
        let name = first_str(&row, &["name"])
            .unwrap_or_else(|| last_segment(&id))
            .to_string();
        // The id keeps the group's original case, which is what Terraform stores.
        let resource_group = segment_after(&id, "resourceGroups")
            .or_else(|| first_str(&row, &["resourceGroup"]))
            .map(str::to_string);
        let location = first_str(&row, &["location"]).map(str::to_string);
        let mut tags = BTreeMap::new();
        tags_from_object(row.get("tags"), &mut tags);
        Row {
            row,
            id,
            name,
            subscription,
            location,
            resource_group,
            tags,
        }
    }

    fn props(&self) -> &Value {
        self.row.get("properties").unwrap_or(&Value::Null)
    }

    /// A resource with key, account, region, name, tags and the common attributes.
    fn resource(&self, ty: &str) -> Resource {
        let mut r = new_resource("azure", ty, self.id.clone());
        r.account = self.subscription.clone();
        r.region = self.location.clone();
        r.name = Some(self.name.clone());
        let a = &mut r.attributes;
        a.insert("name".into(), Value::String(self.name.clone()));
        put_str(a, "location", self.location.as_deref());
        if ty != "azurerm_resource_group" {
            put_str(a, "resource_group_name", self.resource_group.as_deref());
        }
        a.insert("tags".into(), tags_value(&self.tags));
        r.tags = self.tags.clone();
        r
    }
}

/// A singular NSG rule field, `""` when absent as the azurerm provider stores it.
fn single(p: &Value, key: &str) -> Value {
    Value::String(str_at(p, key).unwrap_or("").to_string())
}

/// The ids of application security groups a rule refers to.
fn asg_ids(p: &Value, key: &str) -> Vec<Value> {
    match p.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|g| str_at(g, "id").map(|s| Value::String(s.into())))
            .collect(),
        _ => Vec::new(),
    }
}

fn tf_rule(rule: &Value) -> Value {
    let p = rule.get("properties").unwrap_or(&Value::Null);
    json!({
        "name": str_at(rule, "name").unwrap_or(""),
        "description": single(p, "description"),
        "protocol": single(p, "protocol"),
        "source_port_range": single(p, "sourcePortRange"),
        "source_port_ranges": strings(p.get("sourcePortRanges")),
        "destination_port_range": single(p, "destinationPortRange"),
        "destination_port_ranges": strings(p.get("destinationPortRanges")),
        "source_address_prefix": single(p, "sourceAddressPrefix"),
        "source_address_prefixes": strings(p.get("sourceAddressPrefixes")),
        "destination_address_prefix": single(p, "destinationAddressPrefix"),
        "destination_address_prefixes": strings(p.get("destinationAddressPrefixes")),
        "source_application_security_group_ids": asg_ids(p, "sourceApplicationSecurityGroups"),
        "destination_application_security_group_ids":
            asg_ids(p, "destinationApplicationSecurityGroups"),
        "access": single(p, "access"),
        "priority": p.get("priority").and_then(as_int).map(Value::from).unwrap_or(Value::Null),
        "direction": single(p, "direction"),
    })
}

fn facet_rule(rule: &Value, cloud_default: bool) -> Option<IngressRule> {
    let p = rule.get("properties")?;
    if !str_at(p, "direction")?.eq_ignore_ascii_case("Inbound") {
        return None;
    }
    let protocol = match str_at(p, "protocol").unwrap_or("*") {
        "*" => "all".to_string(),
        other => other.to_ascii_lowercase(),
    };
    let mut port_specs: Vec<&str> = Vec::new();
    if let Some(s) = str_at(p, "destinationPortRange").filter(|s| !s.is_empty()) {
        port_specs.push(s);
    }
    if let Some(Value::Array(items)) = p.get("destinationPortRanges") {
        port_specs.extend(items.iter().filter_map(Value::as_str));
    }
    let ports = if port_specs.is_empty() || port_specs.contains(&"*") {
        Vec::new()
    } else {
        let parsed: Option<Vec<_>> = port_specs.iter().map(|s| port_range(s)).collect();
        // An unparseable range is read as "every port", the conservative side for exposure.
        parsed.unwrap_or_default()
    };
    let mut sources: Vec<String> = Vec::new();
    if let Some(s) = str_at(p, "sourceAddressPrefix").filter(|s| !s.is_empty()) {
        sources.push(s.to_string());
    }
    if let Some(Value::Array(items)) = p.get("sourceAddressPrefixes") {
        sources.extend(items.iter().filter_map(Value::as_str).map(str::to_string));
    }
    sources.extend(
        asg_ids(p, "sourceApplicationSecurityGroups")
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string)),
    );
    let action = if str_at(p, "access").is_some_and(|a| a.eq_ignore_ascii_case("Deny")) {
        RuleAction::Deny
    } else {
        RuleAction::Allow
    };
    Some(IngressRule {
        protocol,
        ports,
        sources,
        action,
        priority: p.get("priority").and_then(as_int),
        name: str_at(rule, "name").map(str::to_string),
        cloud_default,
    })
}

fn nsg(row: &Row) -> Resource {
    let mut r = row.resource("azurerm_network_security_group");
    let p = row.props();
    let custom = match p.get("securityRules") {
        Some(Value::Array(rules)) => rules.as_slice(),
        _ => &[],
    };
    let defaults = match p.get("defaultSecurityRules") {
        Some(Value::Array(rules)) => rules.as_slice(),
        _ => &[],
    };
    if p.is_object() {
        r.attributes.insert(
            "security_rule".into(),
            Value::Array(custom.iter().map(tf_rule).collect()),
        );
    }
    let mut ingress: Vec<IngressRule> = custom
        .iter()
        .filter_map(|rule| facet_rule(rule, false))
        .chain(defaults.iter().filter_map(|rule| facet_rule(rule, true)))
        .collect();
    ingress.sort_by_key(|r| r.priority.unwrap_or(i64::MAX));
    r.facets.network = Some(NetworkFacet { ingress });
    r
}

fn vnet(row: &Row) -> (Resource, Vec<Resource>) {
    let mut r = row.resource("azurerm_virtual_network");
    let p = row.props();
    let a = &mut r.attributes;
    if let Some(space) = p.get("addressSpace") {
        a.insert(
            "address_space".into(),
            Value::Array(strings(space.get("addressPrefixes"))),
        );
    }
    if p.is_object() {
        let dns = p.get("dhcpOptions").and_then(|d| d.get("dnsServers"));
        a.insert("dns_servers".into(), Value::Array(strings(dns)));
    }
    let mut subnets = Vec::new();
    if let Some(Value::Array(items)) = p.get("subnets") {
        let mut blocks = Vec::new();
        for s in items {
            let sub = subnet_resource(s, &row.name, row);
            let sp = s.get("properties").unwrap_or(&Value::Null);
            let prefixes = sub
                .attributes
                .get("address_prefixes")
                .cloned()
                .unwrap_or_else(|| json!([]));
            // Both provider generations' shapes: v3 `address_prefix`, v4 `address_prefixes`.
            blocks.push(json!({
                "name": sub.attributes.get("name").cloned().unwrap_or(Value::Null),
                "id": sub.key.id,
                "address_prefix": prefixes.get(0).cloned().unwrap_or_else(|| json!("")),
                "address_prefixes": prefixes,
                "security_group": sp.get("networkSecurityGroup")
                    .and_then(|g| str_at(g, "id")).unwrap_or(""),
            }));
            subnets.push(sub);
        }
        a.insert("subnet".into(), Value::Array(blocks));
    }
    (r, subnets)
}

/// An `azurerm_subnet` from a subnet object (embedded in a vnet, or a row of its own).
fn subnet_resource(s: &Value, vnet_name: &str, parent: &Row) -> Resource {
    let id = first_str(s, &["id"]).unwrap_or_default();
    let name = first_str(s, &["name"]).unwrap_or_else(|| last_segment(id));
    let mut r = new_resource("azure", "azurerm_subnet", id);
    r.account = parent.subscription.clone();
    r.region = parent.location.clone();
    r.name = Some(name.to_string());
    let p = s.get("properties").unwrap_or(&Value::Null);
    let a = &mut r.attributes;
    a.insert("name".into(), Value::String(name.to_string()));
    let rg = segment_after(id, "resourceGroups").or(parent.resource_group.as_deref());
    put_str(a, "resource_group_name", rg);
    put_str(
        a,
        "virtual_network_name",
        Some(vnet_name).filter(|s| !s.is_empty()),
    );
    let prefixes = match (p.get("addressPrefixes"), str_at(p, "addressPrefix")) {
        (Some(Value::Array(_)), _) => Some(strings(p.get("addressPrefixes"))),
        (_, Some(one)) => Some(vec![Value::String(one.to_string())]),
        _ => None,
    };
    if let Some(prefixes) = prefixes {
        a.insert("address_prefixes".into(), Value::Array(prefixes));
    }
    if p.is_object() {
        let endpoints: Vec<Value> = match p.get("serviceEndpoints") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|e| str_at(e, "service").map(|s| Value::String(s.into())))
                .collect(),
            _ => Vec::new(),
        };
        a.insert("service_endpoints".into(), Value::Array(endpoints));
    }
    r
}

fn storage(row: &Row) -> Resource {
    let mut r = row.resource("azurerm_storage_account");
    let p = row.props();
    let a = &mut r.attributes;
    put(a, "account_kind", row.row.get("kind"));
    let sku = row.row.get("sku");
    let sku_name = sku.and_then(|s| str_at(s, "name"));
    let tier = sku
        .and_then(|s| str_at(s, "tier"))
        .or_else(|| sku_name.and_then(|n| n.split_once('_')).map(|(t, _)| t));
    put_str(a, "account_tier", tier);
    put_str(
        a,
        "account_replication_type",
        sku_name.and_then(|n| n.split_once('_')).map(|(_, r)| r),
    );
    put(a, "access_tier", p.get("accessTier"));
    // azurerm v4 name, and the v3 name of the same setting.
    put_bool(
        a,
        "https_traffic_only_enabled",
        p.get("supportsHttpsTrafficOnly"),
    );
    put_bool(
        a,
        "enable_https_traffic_only",
        p.get("supportsHttpsTrafficOnly"),
    );
    put(a, "min_tls_version", p.get("minimumTlsVersion"));
    put_bool(
        a,
        "allow_nested_items_to_be_public",
        p.get("allowBlobPublicAccess"),
    );
    if let Some(access) = str_at(p, "publicNetworkAccess") {
        a.insert(
            "public_network_access_enabled".into(),
            Value::Bool(!access.eq_ignore_ascii_case("Disabled")),
        );
    }
    put_bool(a, "is_hns_enabled", p.get("isHnsEnabled"));
    put_bool(
        a,
        "shared_access_key_enabled",
        p.get("allowSharedKeyAccess"),
    );
    let public = p.get("allowBlobPublicAccess").and_then(as_bool) == Some(true);
    r.facets = Facets {
        network: None,
        storage: Some(StorageFacet {
            public,
            encrypted: Some(true),
            versioning: None,
        }),
    };
    r
}

fn resource_group(row: &Row) -> Resource {
    let mut r = row.resource("azurerm_resource_group");
    // Azure creates these by itself (Network Watcher, monitoring agents).
    r.cloud_default = row.name.eq_ignore_ascii_case("NetworkWatcherRG")
        || row.name.starts_with("DefaultResourceGroup-");
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facet_ports() {
        let rule = json!({"name": "r", "properties": {"direction": "Inbound", "protocol": "Tcp",
            "access": "Allow", "priority": 100, "destinationPortRanges": ["22", "1000-2000"],
            "sourceAddressPrefixes": ["10.0.0.0/8", "Internet"]}});
        let f = facet_rule(&rule, false).unwrap();
        assert_eq!(f.protocol, "tcp");
        assert_eq!(f.ports.len(), 2);
        assert_eq!((f.ports[1].from, f.ports[1].to), (1000, 2000));
        assert_eq!(f.sources, ["10.0.0.0/8", "Internet"]);
        let out = json!({"properties": {"direction": "Outbound"}});
        assert!(facet_rule(&out, false).is_none());
    }
}
