//! Secret masking: every value a state or a provider holds that could be a secret is
//! replaced with [`MASK`] before any other stage sees it, so no finding, report, log line,
//! sink, audit record or policy input can carry it.
//!
//! Three sources say what is secret, because none is complete on its own:
//! `sensitive_attributes` (Terraform 0.15 and newer), attribute names (older states never
//! wrote `sensitive_attributes`, and live listings have no such list), and attributes that
//! are secret only on certain types (`random_password.result`, `aws_ssm_parameter.value`).

use serde_json::{Map, Value};

/// What replaces a secret in every declared resource.
pub const MASK: &str = "(sensitive)";

/// Attribute names that hold secrets in every provider we know.
const SECRET_NAMES: &[&str] = &[
    "password",
    "secret",
    "token",
    "key_material",
    "access_key",
    "secret_key",
    "sas",
    "sas_token",
    "secret_string",
    "secret_binary",
    "secret_data",
    "encrypted_secret",
    "ses_smtp_password_v4",
];

/// Name endings that hold secrets: `admin_password`, `client_secret`, `auth_token`,
/// `default_primary_connection_string`, `private_key_pem`, `default_primary_key`,
/// `secret_access_key`, `storage_account_access_key`.
const SECRET_SUFFIXES: &[&str] = &[
    "_password",
    "_secret",
    "_token",
    "connection_string",
    "_access_key",
    "_secret_key",
    "_primary_key",
    "_secondary_key",
    "primary_key",
    "secondary_key",
    "_shared_key",
    "_account_key",
    "_api_key",
    "_auth_key",
    "_sas_token",
];

/// Name parts that make a secret-looking name hold a secret wherever they appear.
const SECRET_PREFIXES: &[&str] = &["private_key", "password_"];

/// Names that look like secrets but are identifiers or settings: masking them would only
/// hide real drift.
const NOT_SECRETS: &[&str] = &[
    "creation_token",
    "client_token",
    "idempotency_token",
    "password_reset_required",
    "password_length",
    "password_policy",
    "password_enabled",
    "password_authentication",
    "disable_password_authentication",
    "password_last_used",
    "token_type",
];

/// Attributes that are secrets on one type only.
const SECRET_ATTRIBUTES: &[(&str, &str)] = &[
    ("random_password", "result"),
    ("random_password", "bcrypt_hash"),
    ("aws_ssm_parameter", "value"),
    ("aws_ssm_parameter", "insecure_value"),
    ("kubernetes_secret", "data"),
    ("kubernetes_secret", "binary_data"),
    ("kubernetes_secret_v1", "data"),
    ("kubernetes_secret_v1", "binary_data"),
    ("azurerm_key_vault_secret", "value"),
    ("google_secret_manager_secret_version", "secret_data"),
    ("aws_secretsmanager_secret_version", "secret_string"),
    ("aws_iam_access_key", "secret"),
    ("vault_generic_secret", "data"),
    ("vault_generic_secret", "data_json"),
    ("tls_private_key", "private_key_pem"),
];

/// Map attributes that mirror each other: a key masked in one is masked in the others.
const MIRRORED_MAPS: &[&[&str]] = &[
    &["tags", "tags_all"],
    &["labels", "effective_labels", "terraform_labels"],
];

/// Whether an attribute called `name` holds a secret (on any type).
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if NOT_SECRETS.contains(&name.as_str()) || name.contains("public") {
        return false;
    }
    SECRET_NAMES.contains(&name.as_str())
        || SECRET_SUFFIXES.iter().any(|s| name.ends_with(s))
        || SECRET_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn is_secret_attribute(ty: &str, top_level: &str) -> bool {
    SECRET_ATTRIBUTES
        .iter()
        .any(|(t, a)| *t == ty && *a == top_level)
}

fn has_value(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty() && s != MASK,
        _ => true,
    }
}

/// Masks every secret of a declared resource of type `ty` in place; returns the dotted
/// paths masked, which the diff never compares. `flat` is a pre-0.12 `attributes_flat` map.
pub fn mask_declared(
    ty: &str,
    attrs: &mut Map<String, Value>,
    sensitive: Option<&Value>,
    flat: bool,
) -> Vec<String> {
    let mut masked = Vec::new();
    if let Some(Value::Array(paths)) = sensitive {
        for path in paths {
            let Some(steps) = path.as_array() else {
                continue;
            };
            let steps: Vec<Step> = steps.iter().filter_map(Step::parse).collect();
            if steps.is_empty() {
                continue;
            }
            if mask_steps(attrs, &steps) {
                masked.push(steps_to_path(&steps));
            }
        }
    }
    if flat {
        for (k, v) in attrs.iter_mut() {
            let top = k.split('.').next().unwrap_or(k);
            let secret = is_secret_attribute(ty, top) || k.split('.').any(is_secret_name);
            if secret && has_value(v) {
                *v = Value::String(MASK.into());
                masked.push(k.clone());
            }
        }
    } else {
        mask_by_rules(ty, attrs, &mut masked);
    }
    mirror(attrs, &mut masked);
    masked
}

/// Masks the secrets of a live resource of type `ty` by name and type, as the state reader
/// does: providers report attributes in the Terraform shape, secrets included where the API
/// returns them.
pub fn mask_live(ty: &str, attrs: &mut Map<String, Value>) -> Vec<String> {
    let mut masked = Vec::new();
    mask_by_rules(ty, attrs, &mut masked);
    mirror(attrs, &mut masked);
    masked
}

fn mask_by_rules(ty: &str, attrs: &mut Map<String, Value>, masked: &mut Vec<String>) {
    for (k, v) in attrs.iter_mut() {
        if is_secret_attribute(ty, k) {
            if has_value(v) {
                *v = Value::String(MASK.into());
                masked.push(k.clone());
            }
            continue;
        }
        mask_value(k, k, v, masked);
    }
}

/// Masks secret-named entries anywhere below `v`, through objects and lists of any depth.
fn mask_value(name: &str, path: &str, v: &mut Value, masked: &mut Vec<String>) {
    if is_secret_name(name) {
        if has_value(v) {
            *v = Value::String(MASK.into());
            masked.push(path.to_string());
        }
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, inner) in m.iter_mut() {
                mask_value(k, &format!("{path}.{k}"), inner, masked);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                // A list element carries its list's name: `passwords[0]` is a secret too.
                mask_value(name, &format!("{path}[{i}]"), item, masked);
            }
        }
        _ => {}
    }
}

/// A key masked in `tags` is masked in `tags_all` too (and the other way round), or the
/// secret would leave through the mirror the provider writes beside it.
fn mirror(attrs: &mut Map<String, Value>, masked: &mut Vec<String>) {
    let mut extra = Vec::new();
    for group in MIRRORED_MAPS {
        for p in masked.iter() {
            for from in group.iter() {
                let key = if p == from {
                    None
                } else if let Some(k) = p.strip_prefix(from).and_then(|r| r.strip_prefix('.')) {
                    Some(k)
                } else {
                    continue;
                };
                for to in group.iter().filter(|t| *t != from) {
                    let Some(target) = attrs.get_mut(*to) else {
                        continue;
                    };
                    match key {
                        None => {
                            if has_value(target) {
                                *target = Value::String(MASK.into());
                                extra.push(to.to_string());
                            }
                        }
                        Some(k) => {
                            if let Some(v) = target.as_object_mut().and_then(|m| m.get_mut(k)) {
                                if has_value(v) {
                                    *v = Value::String(MASK.into());
                                    extra.push(format!("{to}.{k}"));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    masked.extend(extra);
}

/// Masks the values at the dotted `paths` (as [`mask_declared`] returns them) in `attrs`:
/// the live side of a matched resource hides what its declared side hides.
pub fn mask_paths(attrs: &mut Map<String, Value>, paths: &[String]) {
    for p in paths {
        mask_in_object(attrs, p);
    }
}

/// Walks a dotted path by the keys the object really has, so map keys that contain dots
/// (`tags."kubernetes.io/role"`) are found too.
fn mask_in_object(m: &mut Map<String, Value>, rest: &str) {
    for (k, v) in m.iter_mut() {
        if rest == k {
            if !v.is_null() {
                *v = Value::String(MASK.into());
            }
        } else if let Some(after) = rest.strip_prefix(k.as_str()) {
            if let Some(after) = after.strip_prefix('.') {
                if let Value::Object(inner) = v {
                    mask_in_object(inner, after);
                }
            } else if after.starts_with('[') {
                mask_in_value(v, after);
            }
        }
    }
}

fn mask_in_value(v: &mut Value, rest: &str) {
    let Some(r) = rest.strip_prefix('[') else {
        return;
    };
    let Some(end) = r.find(']') else { return };
    let (Ok(i), Value::Array(items)) = (r[..end].parse::<usize>(), v) else {
        return;
    };
    let Some(item) = items.get_mut(i) else { return };
    let after = &r[end + 1..];
    if after.is_empty() {
        if !item.is_null() {
            *item = Value::String(MASK.into());
        }
    } else if let Some(after) = after.strip_prefix('.') {
        if let Value::Object(inner) = item {
            mask_in_object(inner, after);
        }
    } else {
        mask_in_value(item, after);
    }
}

enum Step {
    Attr(String),
    Index(Value),
}

impl Step {
    fn parse(v: &Value) -> Option<Step> {
        match v.get("type")?.as_str()? {
            "get_attr" => Some(Step::Attr(v.get("value")?.as_str()?.to_string())),
            "index" => {
                let idx = v.get("value")?;
                // Terraform writes `{"value": 0, "type": "number"}`; accept a bare value too.
                let inner = idx.get("value").cloned().unwrap_or_else(|| idx.clone());
                Some(Step::Index(inner))
            }
            _ => None,
        }
    }
}

fn steps_to_path(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s {
            Step::Attr(a) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(a);
            }
            Step::Index(Value::Number(n)) => out.push_str(&format!("[{n}]")),
            Step::Index(Value::String(k)) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(_) => {}
        }
    }
    out
}

/// Replaces the value at `steps` with the mask; a path into a missing value masks nothing.
fn mask_steps(attrs: &mut Map<String, Value>, steps: &[Step]) -> bool {
    let Step::Attr(first) = &steps[0] else {
        return false;
    };
    let Some(mut cur) = attrs.get_mut(first) else {
        return false;
    };
    for step in &steps[1..] {
        let next = match (step, cur) {
            (Step::Attr(a), Value::Object(m)) => m.get_mut(a),
            (Step::Index(Value::String(k)), Value::Object(m)) => m.get_mut(k),
            (Step::Index(Value::Number(n)), Value::Array(items)) => n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return false,
        }
    }
    if cur.is_null() {
        return false;
    }
    *cur = Value::String(MASK.into());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn masked(ty: &str, attrs: Value, sensitive: Option<Value>) -> (Value, Vec<String>) {
        let mut m = attrs.as_object().unwrap().clone();
        let paths = mask_declared(ty, &mut m, sensitive.as_ref(), false);
        (Value::Object(m), paths)
    }

    #[test]
    fn names_and_patterns() {
        for secret in [
            "password",
            "admin_password",
            "default_primary_connection_string",
            "primary_blob_connection_string",
            "default_primary_key",
            "secondary_key",
            "access_key",
            "secret_access_key",
            "storage_account_access_key",
            "client_secret",
            "auth_token",
            "private_key_pem",
            "private_key_openssh",
            "Password",
        ] {
            assert!(is_secret_name(secret), "{secret}");
        }
        for plain in [
            "public_key",
            "password_reset_required",
            "creation_token",
            "kms_key_id",
            "name",
            "primary_blob_endpoint",
            "hash_key",
        ] {
            assert!(!is_secret_name(plain), "{plain}");
        }
    }

    #[test]
    fn every_form_the_issue_names_is_masked() {
        let cases = [
            (
                "azurerm_storage_account",
                json!({"id": "x", "primary_connection_string": "AccountKey=s3cr3t",
                       "default_primary_connection_string": "s3cr3t"}),
            ),
            (
                "azurerm_servicebus_namespace",
                json!({"id": "x", "default_primary_key": "s3cr3t"}),
            ),
            (
                "aws_iam_access_key",
                json!({"id": "x", "secret": "s3cr3t", "ses_smtp_password_v4": "s3cr3t"}),
            ),
            (
                "aws_s3_bucket_object",
                json!({"id": "x", "access_key": "s3cr3t", "secret_access_key": "s3cr3t"}),
            ),
            ("random_password", json!({"id": "none", "result": "s3cr3t"})),
            ("aws_ssm_parameter", json!({"id": "p", "value": "s3cr3t"})),
            (
                "kubernetes_secret",
                json!({"id": "ns/s", "data": {"user": "s3cr3t"}}),
            ),
            (
                "aws_db_instance",
                json!({"id": "x", "blocks": [[{"password": "s3cr3t"}]]}),
            ),
        ];
        for (ty, attrs) in cases {
            let (out, paths) = masked(ty, attrs, None);
            let text = out.to_string();
            assert!(!text.contains("s3cr3t"), "{ty}: {text}");
            assert!(!paths.is_empty(), "{ty}");
        }
    }

    #[test]
    fn a_sensitive_tag_is_masked_in_tags_all_too() {
        let sensitive = json!([[{"type": "get_attr", "value": "tags"},
                                {"type": "index", "value": {"value": "api", "type": "string"}}]]);
        let (out, paths) = masked(
            "aws_instance",
            json!({"id": "i-1", "tags": {"api": "s3cr3t", "env": "prod"},
                   "tags_all": {"api": "s3cr3t", "env": "prod"}}),
            Some(sensitive),
        );
        assert!(!out.to_string().contains("s3cr3t"), "{out}");
        assert_eq!(out["tags_all"]["env"], "prod");
        assert!(paths.contains(&"tags_all.api".to_string()), "{paths:?}");
        // The whole map marked sensitive masks its mirror whole.
        let sensitive = json!([[{"type": "get_attr", "value": "labels"}]]);
        let (out, _) = masked(
            "google_compute_instance",
            json!({"id": "i", "labels": {"k": "s3cr3t"}, "effective_labels": {"k": "s3cr3t"},
                   "terraform_labels": {"k": "s3cr3t"}}),
            Some(sensitive),
        );
        assert!(!out.to_string().contains("s3cr3t"), "{out}");
    }

    #[test]
    fn flat_states_and_live_resources() {
        let mut flat =
            json!({"id": "x", "admin_password": "s3cr3t", "connection.0.password": "s3cr3t",
                              "value": "s3cr3t", "name": "n"})
            .as_object()
            .unwrap()
            .clone();
        mask_declared("aws_ssm_parameter", &mut flat, None, true);
        assert!(!Value::Object(flat.clone()).to_string().contains("s3cr3t"));
        assert_eq!(flat["name"], "n");
        let mut live = json!({"id": "p", "value": "s3cr3t", "name": "n"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(mask_live("aws_ssm_parameter", &mut live), ["value"]);
        assert_eq!(live["name"], "n");
    }

    #[test]
    fn dotted_paths_mask_the_live_side() {
        let mut live = json!({"tags": {"a.b": "s3cr3t"}, "block": [{"x": [1, "s3cr3t"]}], "n": {"k": "s3cr3t"}})
            .as_object()
            .unwrap()
            .clone();
        mask_paths(
            &mut live,
            &["tags.a.b".into(), "block[0].x[1]".into(), "n.k".into()],
        );
        assert_eq!(live["block"][0]["x"][1], MASK);
        assert_eq!(live["n"]["k"], MASK);
        assert_eq!(live["tags"]["a.b"], MASK);
    }
}
