//! Attribute comparison in Terraform's terms: sets compare as sets, attributes the state
//! never recorded are not drift, and empty values of every shape are alike.

use driftwatch_plugin_sdk::Change;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Attributes that are never compared: the id is the join key, and the rest are derived
/// views whose source attribute is compared instead.
const NEVER_COMPARED: &[&str] = &[
    "id",
    "tags_all",
    "effective_labels",
    "terraform_labels",
    "timeouts",
];

/// Attributes that are maps (every key is data), not objects (keys are a schema).
const MAP_ATTRIBUTES: &[&str] = &["tags", "labels", "metadata", "resource_labels"];

/// Set-typed attributes of lists of objects, by resource type, as dotted paths without
/// indices. Lists of scalars are compared as sets unless listed in [`ORDERED_LISTS`].
const SET_BLOCKS: &[(&str, &[&str])] = &[
    ("aws_security_group", &["ingress", "egress"]),
    ("aws_default_security_group", &["ingress", "egress"]),
    ("aws_iam_role", &["inline_policy"]),
    ("azurerm_network_security_group", &["security_rule"]),
    ("azurerm_virtual_network", &["subnet"]),
    ("google_compute_firewall", &["allow", "deny"]),
    ("google_compute_subnetwork", &["secondary_ip_range"]),
];

/// Optional, non-computed collections of each type, from the providers' schemas: the state
/// holds `null` when the configuration leaves them unset, which means empty. Every other
/// `null` is a computed attribute the provider never recorded, and is not compared.
/// `*` applies to every type; the map attributes of [`MAP_ATTRIBUTES`] always qualify.
const NULL_IS_EMPTY: &[(&str, &[&str])] = &[
    (
        "google_compute_firewall",
        &[
            "target_tags",
            "source_tags",
            "target_service_accounts",
            "source_service_accounts",
        ],
    ),
    ("google_compute_instance", &["tags", "resource_policies"]),
];

fn null_means_empty(ty: &str, key: &str) -> bool {
    // The map attributes are optional maps on the three clouds' types; elsewhere a
    // `metadata` may be a block (kubernetes), where null says nothing.
    let cloud = ["aws_", "azurerm_", "google_"]
        .iter()
        .any(|p| ty.starts_with(p));
    cloud && MAP_ATTRIBUTES.contains(&key)
        || NULL_IS_EMPTY
            .iter()
            .any(|(t, keys)| (*t == ty || *t == "*") && keys.contains(&key))
}

/// Azure attributes that ARM compares without regard to case.
const CASE_INSENSITIVE_AZURE: &[&str] = &["resource_group_name", "location"];

/// Lists of scalars whose order matters.
const ORDERED_LISTS: &[&str] = &["dns_servers", "command", "args"];

/// Compares declared (`expected`) with live (`actual`) attributes of type `ty`, skipping
/// `masked` paths; returns the differences sorted by path.
pub fn diff_attributes(
    ty: &str,
    expected: &Map<String, Value>,
    actual: &Map<String, Value>,
    masked: &[String],
) -> Vec<Change> {
    let mut out = Vec::new();
    let sets = SET_BLOCKS
        .iter()
        .find(|(t, _)| *t == ty)
        .map(|(_, s)| *s)
        .unwrap_or(&[]);
    let ctx = Ctx { sets };
    // The live side hides what the declared side hides: a change reported on a parent
    // (a set element, a list that changed length) must not carry the live secret.
    let masked_actual;
    let actual = if masked.is_empty() {
        actual
    } else {
        let mut a = actual.clone();
        crate::iac::secrets::mask_paths(&mut a, masked);
        masked_actual = a;
        &masked_actual
    };
    for (key, act) in actual {
        if NEVER_COMPARED.contains(&key.as_str()) {
            continue;
        }
        let exp = match effective_expected(expected, key) {
            Some(v) => v,
            // Absent from state: computed, or unknown to the provider version that wrote it.
            None => continue,
        };
        let empty;
        let exp = if exp.is_null() {
            if !null_means_empty(ty, key) {
                continue;
            }
            // An optional collection Terraform stores as null is empty: anything live in it
            // is drift that `terraform plan` would revert.
            empty = match act {
                Value::Array(_) => Value::Array(Vec::new()),
                Value::Object(_) => Value::Object(Map::new()),
                _ => continue,
            };
            &empty
        } else {
            exp
        };
        if MAP_ATTRIBUTES.contains(&key.as_str()) {
            compare_maps(ty, key, exp, act, &mut out);
        } else if ty.starts_with("azurerm_") && CASE_INSENSITIVE_AZURE.contains(&key.as_str()) {
            // ARM treats resource-group names case-insensitively and Resource Graph lowercases them.
            let same = match (exp.as_str(), act.as_str()) {
                (Some(e), Some(a)) => e.eq_ignore_ascii_case(a),
                _ => scalar_eq(exp, act),
            };
            if !same {
                push(&mut out, key, exp, act);
            }
        } else {
            ctx.compare(key, key, exp, act, &mut out);
        }
    }
    if !masked.is_empty() {
        out.retain(|c| {
            !masked.iter().any(|m| {
                c.path == *m
                    || (c.path.starts_with(m.as_str())
                        && matches!(c.path.as_bytes().get(m.len()), Some(b'.' | b'[')))
            })
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// `tags_all` (AWS) and `effective_labels` (Google) hold every tag or label the resource
/// carries, including provider-level defaults: that is what the live side reports.
fn effective_expected<'a>(expected: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let wider = match key {
        "tags" => expected.get("tags_all"),
        "labels" => expected.get("effective_labels"),
        _ => None,
    };
    match wider {
        Some(v) if !v.is_null() => Some(v),
        _ => expected.get(key),
    }
}

struct Ctx<'a> {
    sets: &'a [&'a str],
}

impl Ctx<'_> {
    fn compare(&self, path: &str, schema: &str, exp: &Value, act: &Value, out: &mut Vec<Change>) {
        // Most of an estate is in sync: a structural comparison settles it without allocating.
        if exp == act || (is_emptyish(exp) && is_emptyish(act)) {
            return;
        }
        match (exp, act) {
            (Value::Object(e), Value::Object(a)) => {
                for (k, av) in a {
                    let Some(ev) = e.get(k) else { continue };
                    if ev.is_null() {
                        continue;
                    }
                    self.compare(
                        &format!("{path}.{k}"),
                        &format!("{schema}.{k}"),
                        ev,
                        av,
                        out,
                    );
                }
            }
            (Value::Array(e), Value::Array(a)) => {
                let objects = e.iter().chain(a.iter()).any(|v| v.is_object());
                if self.sets.contains(&schema) || (!objects && !ORDERED_LISTS.contains(&schema)) {
                    set_diff(path, e, a, out);
                } else if e.len() == a.len() {
                    for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                        self.compare(&format!("{path}[{i}]"), schema, ev, av, out);
                    }
                } else {
                    push(out, path, exp, act);
                }
            }
            // A block Terraform stores as a one-element list, reported live as an object.
            (Value::Array(e), Value::Object(_)) if e.len() == 1 => {
                self.compare(&format!("{path}[0]"), schema, &e[0], act, out)
            }
            _ => {
                if !scalar_eq(exp, act) {
                    push(out, path, exp, act);
                }
            }
        }
    }
}

fn push(out: &mut Vec<Change>, path: &str, exp: &Value, act: &Value) {
    out.push(Change {
        path: path.to_string(),
        expected: exp.clone(),
        actual: act.clone(),
    });
}

/// Maps compare key by key, with keys added or removed live reported under their own path.
fn compare_maps(ty: &str, path: &str, exp: &Value, act: &Value, out: &mut Vec<Change>) {
    // AWS sets `aws:` tags itself (launch templates, Auto Scaling, CloudFormation); nobody
    // can set them and the Terraform provider ignores them, so they are never drift.
    let system = |k: &str| ty.starts_with("aws_") && k.starts_with("aws:");
    let empty = Map::new();
    let e = exp.as_object().unwrap_or(&empty);
    let a = act.as_object().unwrap_or(&empty);
    if !exp.is_object() && !is_emptyish(exp) || !act.is_object() && !is_emptyish(act) {
        if !scalar_eq(exp, act) {
            push(out, path, exp, act);
        }
        return;
    }
    for (k, ev) in e {
        if system(k) {
            continue;
        }
        match a.get(k) {
            Some(av) if scalar_eq(ev, av) => {}
            Some(av) => push(out, &format!("{path}.{k}"), ev, av),
            None => push(out, &format!("{path}.{k}"), ev, &Value::Null),
        }
    }
    for (k, av) in a {
        if !e.contains_key(k) && !system(k) {
            push(out, &format!("{path}.{k}"), &Value::Null, av);
        }
    }
}

/// Null, "", [] and {} all mean "nothing here" in state and in cloud APIs alike.
pub fn is_emptyish(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Equality that forgives the representation: `22` = `"22"`, `true` = `"true"`, `1` = `1.0`.
pub fn scalar_eq(a: &Value, b: &Value) -> bool {
    if a == b || (is_emptyish(a) && is_emptyish(b)) {
        return true;
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            s.parse::<f64>().ok() == n.as_f64()
        }
        (Value::String(s), Value::Bool(b)) | (Value::Bool(b), Value::String(s)) => {
            s.eq_ignore_ascii_case(if *b { "true" } else { "false" })
        }
        (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_)) => {
            canonical_string(a) == canonical_string(b)
        }
        (Value::String(x), Value::String(y)) => json_documents_eq(x, y),
        _ => false,
    }
}

/// Policy documents and other JSON stored as strings compare by meaning, not by key order
/// or white space: the cloud never returns them byte for byte as written.
fn json_documents_eq(x: &str, y: &str) -> bool {
    let looks_json = |s: &str| matches!(s.trim_start().as_bytes().first(), Some(b'{' | b'['));
    if !looks_json(x) || !looks_json(y) {
        return false;
    }
    match (
        serde_json::from_str::<Value>(x),
        serde_json::from_str::<Value>(y),
    ) {
        (Ok(a), Ok(b)) => canonical(&a) == canonical(&b),
        _ => false,
    }
}

/// Compares two lists as multisets; reports only the elements on one side alone.
fn set_diff(path: &str, exp: &[Value], act: &[Value], out: &mut Vec<Change>) {
    // Project objects onto the keys both sides speak of, so a key one side never reports
    // (an attribute the provider does not map, a field newer than the state) is not drift.
    let ek = object_keys(exp);
    let ak = object_keys(act);
    let project = |items: &[Value], keep: &Option<Vec<String>>| -> Vec<Value> {
        items
            .iter()
            .map(|v| match (v, keep) {
                (Value::Object(m), Some(keys)) => Value::Object(
                    m.iter()
                        .filter(|(k, _)| keys.iter().any(|x| x == *k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                _ => v.clone(),
            })
            .map(|v| canonical(&v))
            .collect()
    };
    let (e, a) = if ek.is_some() && ak.is_some() {
        (project(exp, &ak), project(act, &ek))
    } else {
        (project(exp, &None), project(act, &None))
    };
    let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
    for v in &e {
        counts.entry(canonical_string(v)).or_default().0 += 1;
    }
    for v in &a {
        counts.entry(canonical_string(v)).or_default().1 += 1;
    }
    if counts.values().all(|(x, y)| x == y) {
        return;
    }
    let mut seen_e: HashMap<String, usize> = HashMap::new();
    let only = |items: &[Value],
                mine: fn(&(usize, usize)) -> (usize, usize),
                seen: &mut HashMap<String, usize>| {
        let mut res = Vec::new();
        for v in items {
            let s = canonical_string(v);
            let (m, o) = mine(&counts[&s]);
            let n = seen.entry(s).or_default();
            *n += 1;
            if *n > o && *n <= m {
                res.push(v.clone());
            }
        }
        res
    };
    let only_e = only(&e, |c| (c.0, c.1), &mut seen_e);
    let mut seen_a: HashMap<String, usize> = HashMap::new();
    let only_a = only(&a, |c| (c.1, c.0), &mut seen_a);
    out.push(Change {
        path: path.to_string(),
        expected: Value::Array(only_e),
        actual: Value::Array(only_a),
    });
}

fn object_keys(items: &[Value]) -> Option<Vec<String>> {
    let mut keys: Vec<String> = Vec::new();
    let mut any = false;
    for v in items {
        if let Value::Object(m) = v {
            any = true;
            for k in m.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    any.then_some(keys)
}

/// A canonical form for set comparison: empty members dropped, inner lists sorted.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !is_emptyish(v))
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect(),
        ),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(canonical).collect();
            items.sort_by_cached_key(canonical_string);
            Value::Array(items)
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => Value::from(f as i64),
            _ => v.clone(),
        },
        _ => v.clone(),
    }
}

fn canonical_string(v: &Value) -> String {
    // serde_json maps are sorted (no preserve_order), so this is canonical once `canonical` ran.
    match v {
        Value::String(s) => s.clone(),
        other => canonical(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftwatch_plugin_sdk::Resource;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn computed_and_empty_are_not_drift() {
        let e = map(json!({"id": "x", "a": null, "b": "", "c": [], "d": 1}));
        let a = map(json!({"id": "y", "a": "computed", "b": null, "c": {}, "d": "1", "e": 5}));
        assert!(diff_attributes("t", &e, &a, &[]).is_empty());
    }

    #[test]
    fn sets_report_only_differences() {
        let e = map(json!({"cidrs": ["10.0.0.0/8", "192.168.0.0/16"]}));
        let a = map(json!({"cidrs": ["192.168.0.0/16", "0.0.0.0/0", "10.0.0.0/8"]}));
        let c = diff_attributes("t", &e, &a, &[]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].path, "cidrs");
        assert_eq!(c[0].expected, json!([]));
        assert_eq!(c[0].actual, json!(["0.0.0.0/0"]));
    }

    #[test]
    fn set_blocks_ignore_keys_one_side_lacks() {
        let e = map(json!({"allow": [{"protocol": "tcp", "ports": ["80", "443"], "extra": 1}]}));
        let a = map(json!({"allow": [{"protocol": "tcp", "ports": ["443", "80"]}]}));
        assert!(diff_attributes("google_compute_firewall", &e, &a, &[]).is_empty());
        let a2 = map(json!({"allow": [{"protocol": "tcp", "ports": ["22"]}]}));
        let c = diff_attributes("google_compute_firewall", &e, &a2, &[]);
        assert_eq!(
            c[0].expected,
            json!([{"protocol": "tcp", "ports": ["443", "80"]}])
        );
        assert_eq!(c[0].actual, json!([{"protocol": "tcp", "ports": ["22"]}]));
    }

    #[test]
    fn tags_use_tags_all_and_report_per_key() {
        let e = map(json!({"tags": {"a": "1"}, "tags_all": {"a": "1", "env": "prod"}}));
        let a = map(json!({"tags": {"a": "1", "env": "dev", "new": "x"}}));
        let c = diff_attributes("aws_vpc", &e, &a, &[]);
        let paths: Vec<_> = c.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["tags.env", "tags.new"]);
    }

    #[test]
    fn nested_and_masked() {
        let e = map(json!({"v": [{"enabled": true}], "password": "(sensitive)"}));
        let a = map(json!({"v": [{"enabled": false}], "password": "other"}));
        let c = diff_attributes("t", &e, &a, &["password".into()]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].path, "v[0].enabled");
    }

    #[test]
    fn json_strings_compare_by_meaning() {
        let e = map(json!({"policy": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"}));
        let a = map(json!({"policy": "{ \"Statement\": [], \"Version\": \"2012-10-17\" }"}));
        assert!(diff_attributes("t", &e, &a, &[]).is_empty());
        let a2 = map(json!({"policy": "{\"Statement\":[1],\"Version\":\"2012-10-17\"}"}));
        assert_eq!(diff_attributes("t", &e, &a2, &[]).len(), 1);
    }

    #[test]
    fn azure_resource_groups_ignore_case() {
        let e = map(json!({"resource_group_name": "Prod-RG", "location": "WestEurope"}));
        let a = map(json!({"resource_group_name": "prod-rg", "location": "westeurope"}));
        assert!(diff_attributes("azurerm_subnet", &e, &a, &[]).is_empty());
        assert_eq!(diff_attributes("aws_vpc", &e, &a, &[]).len(), 2);
    }

    #[test]
    fn null_optional_collections_are_empty_and_null_computed_ones_unknown() {
        // The shapes the Google and Azure providers write (see the driftctl states).
        let e = map(json!({"labels": null, "tags": null, "metadata": null,
                           "resource_policies": null, "cpu_platform": null, "min_cpu_platform": null}));
        // Nothing live in them: in sync.
        let a = map(
            json!({"labels": {}, "tags": [], "metadata": {}, "resource_policies": [],
                           "cpu_platform": "Intel Broadwell", "min_cpu_platform": "x"}),
        );
        assert!(diff_attributes("google_compute_instance", &e, &a, &[]).is_empty());
        // A label and a network tag added from the console: drift.
        let a = map(json!({"labels": {"team": "x"}, "tags": ["web"], "cpu_platform": "Intel"}));
        let c = diff_attributes("google_compute_instance", &e, &a, &[]);
        let paths: Vec<_> = c.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["labels.team", "tags"]);
        // Target tags added to a firewall whose state says null.
        let e = map(json!({"target_tags": null, "source_ranges": ["0.0.0.0/0"]}));
        let a = map(json!({"target_tags": ["ssh"], "source_ranges": ["0.0.0.0/0"]}));
        let c = diff_attributes("google_compute_firewall", &e, &a, &[]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].actual, json!(["ssh"]));
        // A tag added to an untagged NSG.
        let e = map(json!({"tags": null}));
        let a = map(json!({"tags": {"owner": "ops"}}));
        let c = diff_attributes("azurerm_network_security_group", &e, &a, &[]);
        assert_eq!(c[0].path, "tags.owner");
    }

    /// The instance and firewall of driftctl's Terraform-written states (labels, network
    /// tags and target tags all `null`), against the Compute API objects of the same
    /// resources mapped by the shared GCP mapping: in sync, then each collection filled live.
    #[test]
    fn null_collections_in_real_google_states() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tfstate/driftctl");
        let state = |f: &str| {
            let bytes = std::fs::read(root.join(f)).unwrap();
            crate::iac::tfstate::parse_state(f, &bytes)
                .unwrap()
                .resources
                .remove(0)
        };
        let live = |asset: &str, data: Value| {
            driftwatch_provider_inventory::gcp::map_api_object(
                asset,
                "cloudskiff-dev-elie",
                data,
                None,
            )
            .unwrap()
        };
        let instance = state("google_compute_instance.tfstate");
        let api = json!({"name": "test", "zone": "https://www.googleapis.com/compute/v1/projects/cloudskiff-dev-elie/zones/us-central1-a",
            "machineType": "https://www.googleapis.com/compute/v1/projects/cloudskiff-dev-elie/zones/us-central1-a/machineTypes/e2-medium",
            "status": "RUNNING", "canIpForward": false, "deletionProtection": false,
            "labelFingerprint": "42WmSpB8rSM=", "tags": {"fingerprint": "42WmSpB8rSM="}});
        let r = live("compute.googleapis.com/Instance", api.clone());
        assert_eq!(r.key.id, instance.key.id);
        let changes = |r: &Resource| {
            diff_attributes(
                &instance.key.r#type,
                &instance.attributes,
                &r.attributes,
                &instance.masked,
            )
        };
        assert_eq!(changes(&r), vec![], "in sync");
        let mut drifted = api.clone();
        drifted["labels"] = json!({"team": "data"});
        drifted["tags"]["items"] = json!(["web"]);
        let paths: Vec<String> = changes(&live("compute.googleapis.com/Instance", drifted))
            .into_iter()
            .map(|c| c.path)
            .collect();
        assert_eq!(paths, ["labels.team", "tags"]);

        let firewall = state("google_compute_firewall.tfstate");
        let api = json!({"name": "test-firewall", "network": "https://www.googleapis.com/compute/v1/projects/cloudskiff-dev-elie/global/networks/test-network",
            "priority": 1000, "direction": "INGRESS", "disabled": false, "sourceTags": ["web"],
            "allowed": [{"IPProtocol": "tcp", "ports": ["80", "8080", "1000-2000"]}, {"IPProtocol": "icmp"}]});
        let changes = |r: &Resource| {
            diff_attributes(
                &firewall.key.r#type,
                &firewall.attributes,
                &r.attributes,
                &firewall.masked,
            )
        };
        let r = live("compute.googleapis.com/Firewall", api.clone());
        assert_eq!(r.key.id, firewall.key.id);
        assert_eq!(changes(&r), vec![], "in sync");
        let mut drifted = api;
        drifted["targetTags"] = json!(["ssh"]);
        let c = changes(&live("compute.googleapis.com/Firewall", drifted));
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(
            (c[0].path.as_str(), &c[0].actual),
            ("target_tags", &json!(["ssh"]))
        );
    }

    /// driftctl's instance state, written by Terraform 0.12 with an AWS provider older than
    /// 3.38: `tags = null` and no `tags_all`. The tags AWS sets itself are not drift; a tag
    /// added from the console is.
    #[test]
    fn system_tags_are_not_drift_on_a_real_pre_tags_all_aws_state() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tfstate/driftctl/aws_ec2_instance.tfstate");
        let bytes = std::fs::read(root).unwrap();
        let declared = crate::iac::tfstate::parse_state("aws_ec2_instance.tfstate", &bytes)
            .unwrap()
            .resources
            .into_iter()
            .find(|d| d.key.r#type == "aws_instance")
            .unwrap();
        assert!(declared.attributes["tags"].is_null());
        assert!(!declared.attributes.contains_key("tags_all"));
        let mut live = declared.attributes.clone();
        live.insert(
            "tags".into(),
            json!({"aws:ec2launchtemplate:id": "lt-0abc", "aws:autoscaling:groupName": "web"}),
        );
        let diff = |live: &Map<String, Value>| {
            diff_attributes("aws_instance", &declared.attributes, live, &declared.masked)
        };
        assert_eq!(diff(&live), vec![]);
        live["tags"]["owner"] = json!("ops");
        let c = diff(&live);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].path, "tags.owner");
        // Outside the three clouds, a null `metadata` stays unknown.
        let e = map(json!({"metadata": null}));
        let a = map(json!({"metadata": [{"name": "x"}]}));
        assert!(diff_attributes("kubernetes_secret", &e, &a, &[]).is_empty());
    }

    /// driftctl's Terraform-written `aws_iam_policy` against the AWS Config item of the same
    /// policy (document URL-encoded in `policyVersionList`): in sync, then a new default
    /// version is a change of `policy` alone.
    #[test]
    fn a_real_iam_policy_state_is_in_sync_with_its_aws_config_item() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tfstate/driftctl/aws_iam_policy_multiple.tfstate");
        let bytes = std::fs::read(path).unwrap();
        let declared = crate::iac::tfstate::parse_state("p.tfstate", &bytes)
            .unwrap()
            .resources
            .remove(0);
        let written = declared.attributes["policy"].as_str().unwrap().to_string();
        let encode = |s: &str| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        };
        let item = |default: &str| {
            json!({"configurationItems": [{
                "resourceType": "AWS::IAM::Policy", "resourceId": "ANPAEXAMPLE0000000001",
                "resourceName": "policy-0", "ARN": declared.key.id, "awsRegion": "global",
                "awsAccountId": "929327065333", "configurationItemStatus": "OK", "tags": {},
                "configuration": {"policyName": "policy-0", "arn": declared.key.id, "path": "/",
                    "defaultVersionId": default, "description": null,
                    "policyVersionList": [
                        {"document": encode(&written), "versionId": "v1", "isDefaultVersion": default == "v1"},
                        {"document": encode(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#),
                         "versionId": "v2", "isDefaultVersion": default == "v2"}]}}]})
        };
        let live = |default: &str| {
            let text = item(default).to_string();
            let parsed = driftwatch_provider_inventory::parse_export(
                driftwatch_provider_inventory::Format::AwsConfig,
                "config.json",
                text.as_bytes(),
            )
            .unwrap();
            parsed
                .resources
                .into_iter()
                .find(|r| r.key.r#type == "aws_iam_policy")
                .unwrap()
        };
        let in_sync = live("v1");
        assert_eq!(in_sync.key.id, declared.key.id);
        let diff = |r: &Resource| {
            diff_attributes(
                "aws_iam_policy",
                &declared.attributes,
                &r.attributes,
                &declared.masked,
            )
        };
        assert_eq!(diff(&in_sync), vec![]);
        let paths: Vec<String> = diff(&live("v2")).into_iter().map(|c| c.path).collect();
        assert_eq!(paths, ["policy"]);
    }

    #[test]
    fn a_change_on_a_parent_never_carries_a_masked_live_value() {
        let e = map(json!({"connection": [{"host": "a", "password": "(sensitive)"}]}));
        let a = map(json!({"connection": [{"host": "b", "password": "hunter2"}, {"host": "c"}]}));
        let c = diff_attributes("t", &e, &a, &["connection[0].password".into()]);
        assert!(!c.is_empty());
        assert!(!serde_json::to_string(&c).unwrap().contains("hunter2"));
    }

    #[test]
    fn multiset_duplicates() {
        let e = map(json!({"x": ["a", "a"]}));
        let a = map(json!({"x": ["a"]}));
        let c = diff_attributes("t", &e, &a, &[]);
        assert_eq!(c[0].expected, json!(["a"]));
        assert_eq!(c[0].actual, json!([]));
    }
}
