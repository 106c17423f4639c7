//! Risk levels: built-in rules by resource type, attribute path and facets, after the
//! config's own overrides.

use driftwatch_plugin_sdk::{Finding, FindingKind, Risk};
use serde::Deserialize;
use serde_json::Value;
use wildmatch::WildMatch;

/// Ports whose exposure to the world is critical: SSH and RDP.
const MANAGEMENT_PORTS: &[u16] = &[22, 3389];

/// Paths that never carry more than cosmetic meaning.
const COSMETIC: &[&str] = &[
    "tags",
    "tags_all",
    "labels",
    "effective_labels",
    "description",
];

/// `[[governance.risk]]`: a config override, tried before the built-in rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskOverride {
    /// Terraform type glob (`aws_s3_*`); every type when absent.
    #[serde(default)]
    pub r#type: Option<String>,
    /// Attribute path glob (`tags.*`); the override applies when every changed path matches.
    #[serde(default)]
    pub path: Option<String>,
    /// `changed`, `missing` or `unmanaged`; every kind when absent.
    #[serde(default)]
    pub kind: Option<FindingKind>,
    /// The risk to give.
    pub risk: Risk,
}

impl RiskOverride {
    fn matches(&self, f: &Finding) -> bool {
        let ty = self
            .r#type
            .as_deref()
            .is_none_or(|g| WildMatch::new(g).matches(&f.resource.key.r#type));
        let kind = self.kind.is_none_or(|k| k == f.kind);
        let path = self.path.as_deref().is_none_or(|g| {
            let g = WildMatch::new(g);
            !f.changes.is_empty() && f.changes.iter().all(|c| g.matches(&c.path))
        });
        ty && kind && path
    }
}

fn root(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or(path)
}

fn is_network_type(ty: &str) -> bool {
    ty.contains("security_group")
        || ty.contains("network_security")
        || ty.contains("firewall")
        || ty.ends_with("_network_acl")
        || ty.ends_with("_network_acl_rule")
}

fn is_iam_type(ty: &str) -> bool {
    ty.starts_with("aws_iam_")
        || (ty.starts_with("google_") && ty.contains("_iam_"))
        || ty.starts_with("azurerm_role_")
        || ty.starts_with("azurerm_user_assigned_identity")
}

fn is_database_type(ty: &str) -> bool {
    ty.starts_with("aws_db_")
        || ty.starts_with("aws_rds_")
        || ty.starts_with("aws_dynamodb_")
        || ty.starts_with("google_sql_")
        || (ty.starts_with("azurerm_") && (ty.contains("sql") || ty.contains("cosmosdb")))
}

/// Administrator access in a value: AWS AdministratorAccess, Azure Owner, GCP roles/owner.
fn grants_admin(v: &Value) -> bool {
    match v {
        Value::String(s) => {
            s.ends_with(":policy/AdministratorAccess") || s == "Owner" || s == "roles/owner"
        }
        Value::Array(a) => a.iter().any(grants_admin),
        Value::Object(m) => m.values().any(grants_admin),
        _ => false,
    }
}

/// The built-in rating, with the reason shown in `policies`.
pub fn builtin(
    f: &Finding,
    live_attrs: Option<&serde_json::Map<String, Value>>,
) -> (Risk, &'static str) {
    let ty = f.resource.key.r#type.as_str();
    let network_change = f.kind != FindingKind::Changed
        || f.changes.iter().any(|c| {
            matches!(
                root(&c.path),
                "ingress"
                    | "egress"
                    | "security_rule"
                    | "allow"
                    | "deny"
                    | "source_ranges"
                    | "cidr_blocks"
                    | "cidr_ipv4"
                    | "from_port"
                    | "to_port"
            )
        });
    let world_mgmt = f.facets.network.as_ref().is_some_and(|n| {
        n.ingress
            .iter()
            .any(|r| MANAGEMENT_PORTS.iter().any(|p| r.opens_to_world(*p)))
    });
    if world_mgmt && network_change && f.kind != FindingKind::Missing {
        return (Risk::Critical, "risk:management-port-open-to-world");
    }
    let admin = match f.kind {
        FindingKind::Changed => f.changes.iter().any(|c| grants_admin(&c.actual)),
        FindingKind::Unmanaged => {
            is_iam_type(ty)
                && live_attrs.is_some_and(|a| {
                    [
                        "policy_arn",
                        "managed_policy_arns",
                        "role_definition_name",
                        "role",
                    ]
                    .iter()
                    .any(|k| a.get(*k).is_some_and(grants_admin))
                })
        }
        FindingKind::Missing => false,
    };
    if admin {
        return (Risk::Critical, "risk:admin-access-granted");
    }
    if f.kind == FindingKind::Changed
        && !f.changes.is_empty()
        && f.changes.iter().all(|c| COSMETIC.contains(&root(&c.path)))
    {
        return (Risk::Low, "risk:cosmetic");
    }
    if f.facets.storage.as_ref().is_some_and(|s| s.public) {
        return (Risk::High, "risk:public-storage");
    }
    if is_network_type(ty) {
        return (Risk::High, "risk:network");
    }
    if is_iam_type(ty) {
        return (Risk::High, "risk:iam");
    }
    if is_database_type(ty) {
        return (Risk::High, "risk:database");
    }
    if f.changes.iter().any(|c| {
        let p = c.path.to_ascii_lowercase();
        p.contains("encrypt") || p.contains("kms")
    }) {
        return (Risk::High, "risk:encryption");
    }
    (Risk::Medium, "risk:default")
}

/// The risk of a finding: the first matching override, else the built-in rules.
pub fn rate(
    f: &Finding,
    overrides: &[RiskOverride],
    live_attrs: Option<&serde_json::Map<String, Value>>,
) -> (Risk, String) {
    if let Some((i, o)) = overrides.iter().enumerate().find(|(_, o)| o.matches(f)) {
        return (o.risk, format!("risk:override[{i}]"));
    }
    let (r, why) = builtin(f, live_attrs);
    (r, why.to_string())
}
