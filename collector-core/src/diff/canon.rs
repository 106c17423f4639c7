//! Canonical shapes for resources that Terraform lets users declare several ways.
//!
//! An AWS security group rule can be an inline `ingress {}` block grouping many CIDRs, an
//! `aws_security_group_rule`, or an `aws_vpc_security_group_ingress_rule` with one CIDR; the
//! API groups them its own way again. Every form is exploded into atomic rules (one
//! protocol, port range and source each) so that the same access compares equal however
//! it was written. Azure NSG rules get the same treatment for `source_port_range` versus
//! `source_port_ranges` and separate `azurerm_network_security_rule` resources.

use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// Resource types whose instances are folded into a parent resource's attribute.
pub const COMPONENT_TYPES: &[&str] = &[
    "aws_security_group_rule",
    "aws_vpc_security_group_ingress_rule",
    "aws_vpc_security_group_egress_rule",
    "azurerm_network_security_rule",
];

/// Terraform types that declare a cloud default under another type name, mapped to the
/// type the live side reports.
pub fn live_type(ty: &str) -> &str {
    match ty {
        "aws_default_vpc" => "aws_vpc",
        "aws_default_subnet" => "aws_subnet",
        "aws_default_security_group" => "aws_security_group",
        other => other,
    }
}

/// Normalises an id for matching: ARM ids are case-insensitive.
pub fn match_id(provider: &str, id: &str) -> String {
    if provider == "azure" {
        id.to_ascii_lowercase()
    } else {
        id.to_string()
    }
}

/// The id a declared resource is matched by: Terraform's own id, except for types whose
/// id Terraform makes up (`role-20240101…`) and whose identity lies in their attributes.
pub fn declared_id<'a>(ty: &str, id: &'a str, attrs: &Map<String, Value>) -> Cow<'a, str> {
    let s = |k: &str| attrs.get(k).and_then(Value::as_str).unwrap_or("");
    match ty {
        "aws_iam_role_policy_attachment" if !s("role").is_empty() => {
            Cow::Owned(format!("{}/{}", s("role"), s("policy_arn")))
        }
        _ => Cow::Borrowed(id),
    }
}

/// Rules declared as separate resources, grouped by the parent they attach to.
#[derive(Default)]
pub struct FoldedRules {
    /// (parent match id, attribute) → canonical rules.
    rules: HashMap<(String, &'static str), Vec<Value>>,
}

impl FoldedRules {
    /// Records a component resource; returns the parent's match id, or `None` when the
    /// instance names no parent.
    pub fn add(&mut self, ty: &str, attrs: &Map<String, Value>) -> Option<String> {
        match ty {
            "aws_security_group_rule" => {
                let sg = attrs.get("security_group_id")?.as_str()?.to_string();
                let attr = if attrs.get("type").and_then(Value::as_str) == Some("egress") {
                    "egress"
                } else {
                    "ingress"
                };
                let mut inline = attrs.clone();
                if let Some(src) = attrs
                    .get("source_security_group_id")
                    .filter(|v| !v.is_null())
                {
                    inline.insert("security_groups".into(), json!([src]));
                }
                let atoms = sg_atoms_of(&inline, Some(&sg));
                self.rules
                    .entry((sg.clone(), attr))
                    .or_default()
                    .extend(atoms);
                Some(sg)
            }
            "aws_vpc_security_group_ingress_rule" | "aws_vpc_security_group_egress_rule" => {
                let sg = attrs.get("security_group_id")?.as_str()?.to_string();
                let attr = if ty.ends_with("egress_rule") {
                    "egress"
                } else {
                    "ingress"
                };
                let mut inline = Map::new();
                let proto = attrs.get("ip_protocol").cloned().unwrap_or(Value::Null);
                inline.insert("protocol".into(), proto);
                for k in ["from_port", "to_port", "description"] {
                    if let Some(v) = attrs.get(k) {
                        inline.insert(k.into(), v.clone());
                    }
                }
                let pairs = [
                    ("cidr_ipv4", "cidr_blocks"),
                    ("cidr_ipv6", "ipv6_cidr_blocks"),
                    ("prefix_list_id", "prefix_list_ids"),
                    ("referenced_security_group_id", "security_groups"),
                ];
                for (single, list) in pairs {
                    if let Some(v) = attrs.get(single).filter(|v| !v.is_null()) {
                        inline.insert(list.into(), json!([v]));
                    }
                }
                let atoms = sg_atoms_of(&inline, Some(&sg));
                self.rules
                    .entry((sg.clone(), attr))
                    .or_default()
                    .extend(atoms);
                Some(sg)
            }
            "azurerm_network_security_rule" => {
                let id = attrs.get("id")?.as_str()?;
                let lower = id.to_ascii_lowercase();
                let cut = lower.rfind("/securityrules/")?;
                let parent = lower[..cut].to_string();
                let mut rule = attrs.clone();
                for k in [
                    "id",
                    "network_security_group_name",
                    "resource_group_name",
                    "timeouts",
                ] {
                    rule.remove(k);
                }
                self.rules
                    .entry((parent.clone(), "security_rule"))
                    .or_default()
                    .push(nsg_rule(&Value::Object(rule)));
                Some(parent)
            }
            _ => None,
        }
    }

    /// True when any component declared rules for this parent.
    pub fn has_parent(&self, parent: &str) -> bool {
        self.rules.keys().any(|(p, _)| p == parent)
    }

    fn take(&self, parent: &str, attr: &'static str) -> Option<&Vec<Value>> {
        self.rules.get(&(parent.to_string(), attr))
    }
}

/// True when `ty` needs its attributes rewritten before comparison.
pub fn needs_canonical(ty: &str) -> bool {
    matches!(
        live_type(ty),
        "aws_security_group" | "azurerm_network_security_group" | "aws_s3_bucket"
    )
}

/// Rewrites the rule attributes of `attrs` into canonical atoms; for the declared side,
/// `folded` adds the rules declared as separate resources for `parent`.
pub fn canonicalise(
    ty: &str,
    attrs: &mut Map<String, Value>,
    folded: Option<(&FoldedRules, &str)>,
) {
    match live_type(ty) {
        "aws_security_group" => {
            for attr in ["ingress", "egress"] {
                let mut atoms = Vec::new();
                let present = attrs.contains_key(attr);
                if let Some(Value::Array(rules)) = attrs.get(attr) {
                    for r in rules {
                        if let Value::Object(m) = r {
                            atoms.extend(sg_atoms(m));
                        }
                    }
                }
                let mut extra = false;
                if let Some((f, parent)) = folded {
                    if let Some(more) = f.take(parent, attr) {
                        atoms.extend(more.iter().cloned());
                        extra = true;
                    }
                }
                if present || extra {
                    atoms.sort_by_cached_key(|v| v.to_string());
                    atoms.dedup();
                    attrs.insert(attr.into(), Value::Array(atoms));
                }
            }
        }
        "aws_s3_bucket" => {
            if let Some(v) = attrs.get_mut("server_side_encryption_configuration") {
                if is_default_sse(v) {
                    *v = Value::Array(Vec::new());
                }
            }
        }
        "azurerm_network_security_group" => {
            let mut rules: Vec<Value> = match attrs.get("security_rule") {
                Some(Value::Array(rs)) => rs.iter().map(nsg_rule).collect(),
                _ => Vec::new(),
            };
            let present = attrs.contains_key("security_rule");
            let mut extra = false;
            if let Some((f, parent)) = folded {
                if let Some(more) = f.take(parent, "security_rule") {
                    rules.extend(more.iter().cloned());
                    extra = true;
                }
            }
            if present || extra {
                rules.sort_by_cached_key(|v| v.to_string());
                rules.dedup();
                attrs.insert("security_rule".into(), Value::Array(rules));
            }
        }
        _ => {}
    }
}

/// True for no default encryption at all or for S3's own default, SSE-S3 (`AES256`, no key,
/// no bucket key). S3 has applied SSE-S3 to every bucket without a configuration since
/// January 2023, so a state that recorded none (`[]`, written before or never refreshed)
/// and a bucket that reports the default describe the same bucket. Another algorithm, a
/// KMS key or a bucket key is a configuration of its own and is compared.
fn is_default_sse(v: &Value) -> bool {
    let Value::Array(configs) = v else {
        return v.is_null();
    };
    let rules: Vec<&Value> = configs
        .iter()
        .flat_map(|c| match c.get("rule") {
            Some(Value::Array(rs)) => rs.iter().collect(),
            Some(r @ Value::Object(_)) => vec![r],
            _ => Vec::new(),
        })
        .collect();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    match rules.as_slice() {
        [] => true,
        [rule] => {
            let by_default = match rule.get("apply_server_side_encryption_by_default") {
                Some(Value::Array(d)) if d.len() == 1 => &d[0],
                Some(d @ Value::Object(_)) => d,
                _ => return false,
            };
            let bucket_key = match rule.get("bucket_key_enabled") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                Some(_) => true,
            };
            text(by_default.get("sse_algorithm")) == "AES256"
                && text(by_default.get("kms_master_key_id")).is_empty()
                && !bucket_key
        }
        _ => false,
    }
}

/// Protocol names as Terraform's AWS provider stores them.
fn aws_protocol(v: Option<&Value>) -> String {
    let p = match v {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-1".into(),
    };
    match p.as_str() {
        "all" | "-1" | "" => "-1".into(),
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "58" => "icmpv6".into(),
        _ => p,
    }
}

fn port(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Explodes one inline security-group rule into one atom per source.
pub fn sg_atoms(rule: &Map<String, Value>) -> Vec<Value> {
    sg_atoms_of(rule, None)
}

/// Explodes a rule of group `own` into atoms. The EC2 API and inline blocks say `self` for
/// a rule that admits the group's own members, while `aws_security_group_rule` stores
/// `self = true` *and* the group's id as `source_security_group_id`, and
/// `aws_vpc_security_group_ingress_rule` only the id: every form becomes one `self` source.
fn sg_atoms_of(rule: &Map<String, Value>, own: Option<&str>) -> Vec<Value> {
    let protocol = aws_protocol(rule.get("protocol"));
    let (from, to) = if protocol == "-1" {
        (0, 0)
    } else {
        (port(rule.get("from_port")), port(rule.get("to_port")))
    };
    let description = rule
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut sources: Vec<String> = Vec::new();
    for key in [
        "cidr_blocks",
        "ipv6_cidr_blocks",
        "prefix_list_ids",
        "security_groups",
    ] {
        if let Some(Value::Array(items)) = rule.get(key) {
            for item in items {
                if let Some(s) = item.as_str() {
                    // Cross-account references are stored as `account/sg-id`.
                    let s = s
                        .rsplit('/')
                        .next()
                        .filter(|_| key == "security_groups")
                        .unwrap_or(s);
                    let s = if key == "security_groups" && Some(s) == own {
                        "self"
                    } else {
                        s
                    };
                    if !sources.iter().any(|x| x == s) {
                        sources.push(s.to_string());
                    }
                }
            }
        }
    }
    if rule.get("self").and_then(Value::as_bool) == Some(true)
        && !sources.iter().any(|x| x == "self")
    {
        sources.push("self".into());
    }
    sources
        .into_iter()
        .map(|source| {
            let mut m = Map::new();
            m.insert("protocol".into(), Value::String(protocol.clone()));
            m.insert("from_port".into(), Value::from(from));
            m.insert("to_port".into(), Value::from(to));
            m.insert("source".into(), Value::String(source));
            if !description.is_empty() {
                m.insert("description".into(), Value::String(description.clone()));
            }
            Value::Object(m)
        })
        .collect()
}

/// Merges the singular and plural forms of NSG rule fields into the plural set.
pub fn nsg_rule(rule: &Value) -> Value {
    let Value::Object(m) = rule else {
        return rule.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let plural = match k.as_str() {
            "source_port_range"
            | "destination_port_range"
            | "source_address_prefix"
            | "destination_address_prefix" => {
                Some(format!("{k}{}", if k.ends_with('x') { "es" } else { "s" }))
            }
            _ => None,
        };
        match plural {
            Some(p) => {
                if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                    push_unique(&mut out, &p, s);
                }
            }
            None if k.ends_with("_ranges") || k.ends_with("_prefixes") => {
                if let Value::Array(items) = v {
                    for i in items {
                        if let Some(s) = i.as_str() {
                            push_unique(&mut out, k, s);
                        }
                    }
                }
            }
            None => {
                let v = match (k.as_str(), v) {
                    ("protocol", Value::String(s)) => Value::String(s.to_ascii_lowercase()),
                    ("access" | "direction", Value::String(s)) => {
                        Value::String(s.to_ascii_lowercase())
                    }
                    _ => v.clone(),
                };
                out.insert(k.clone(), v);
            }
        }
    }
    for (_, v) in out.iter_mut() {
        if let Value::Array(items) = v {
            items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
    Value::Object(out)
}

fn push_unique(out: &mut Map<String, Value>, key: &str, s: &str) {
    let entry = out
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = entry {
        if !items.iter().any(|i| i.as_str() == Some(s)) {
            items.push(Value::String(s.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_separate_rules_reconcile() {
        let mut declared = json!({"ingress": [
            {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["10.0.0.0/8", "172.16.0.0/12"],
             "ipv6_cidr_blocks": [], "security_groups": [], "self": false, "description": ""}
        ]})
        .as_object()
        .unwrap()
        .clone();
        let mut folded = FoldedRules::default();
        let rule = json!({"security_group_id": "sg-1", "ip_protocol": "tcp", "from_port": 22,
                          "to_port": 22, "cidr_ipv4": "192.168.0.0/16"});
        assert_eq!(
            folded.add(
                "aws_vpc_security_group_ingress_rule",
                rule.as_object().unwrap()
            ),
            Some("sg-1".into())
        );
        canonicalise("aws_security_group", &mut declared, Some((&folded, "sg-1")));
        let mut live = json!({"ingress": [
            {"protocol": "6", "from_port": 22, "to_port": 22, "cidr_blocks": ["192.168.0.0/16"]},
            {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["172.16.0.0/12"]},
            {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["10.0.0.0/8"]}
        ]})
        .as_object()
        .unwrap()
        .clone();
        canonicalise("aws_security_group", &mut live, None);
        assert_eq!(declared["ingress"], live["ingress"]);
        assert_eq!(declared["ingress"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn nsg_singular_plural() {
        let a = nsg_rule(
            &json!({"name": "r", "protocol": "Tcp", "source_port_range": "*",
                                 "source_port_ranges": [], "destination_port_ranges": ["22", "80"]}),
        );
        let b = nsg_rule(
            &json!({"name": "r", "protocol": "tcp", "source_port_ranges": ["*"],
                                 "destination_port_ranges": ["80", "22"]}),
        );
        assert_eq!(a, b);
    }
}
