//! The normalised schema: one shape for live resources of every cloud, and the findings
//! the diff produces from them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Identity of a resource across live providers and IaC: the join key of the diff.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceKey {
    /// Cloud or platform: `aws`, `azure`, `gcp`, or a third party's name.
    pub provider: String,
    /// Terraform resource type, e.g. `aws_security_group`.
    #[serde(rename = "type")]
    pub r#type: String,
    /// The id Terraform stores for this type (`sg-0abc`, an ARM id, `projects/p/global/networks/n`).
    pub id: String,
}

impl ResourceKey {
    /// Builds a key from its three parts.
    pub fn new(
        provider: impl Into<String>,
        r#type: impl Into<String>,
        id: impl Into<String>,
    ) -> Self {
        Self {
            provider: provider.into(),
            r#type: r#type.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.r#type, self.id)
    }
}

/// A live resource as a provider reports it, mapped into Terraform's attribute shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// The join key with IaC.
    #[serde(flatten)]
    pub key: ResourceKey,
    /// AWS account, Azure subscription or GCP project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Region, Azure location or GCP region/zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Human name (AWS Name tag, Azure or GCP resource name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// AWS tags, Azure tags and GCP labels in one map.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The live object in the attribute shape of its Terraform type; only attributes the
    /// provider knows are present, so an absent key means "not observed", never "empty".
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Cross-cloud views that policies use without knowing the cloud.
    #[serde(default, skip_serializing_if = "Facets::is_empty")]
    pub facets: Facets,
    /// True for resources the cloud creates by itself (default VPC, default network, ...):
    /// never reported as unmanaged unless declared.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cloud_default: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Resource {
    /// A resource with only its key set; providers fill in the rest.
    pub fn new(key: ResourceKey) -> Self {
        Self {
            key,
            account: None,
            region: None,
            name: None,
            tags: BTreeMap::new(),
            attributes: Map::new(),
            facets: Facets::default(),
            cloud_default: false,
        }
    }
}

/// Cross-cloud facets of a resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facets {
    /// Network exposure, for firewalls of every cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkFacet>,
    /// Object-storage exposure and protection, for buckets and storage accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageFacet>,
}

impl Facets {
    /// True when no facet is set.
    pub fn is_empty(&self) -> bool {
        self.network.is_none() && self.storage.is_none()
    }
}

/// Inbound traffic a firewall-like resource lets in or blocks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkFacet {
    /// Ingress rules in evaluation order where the cloud has one (Azure, GCP priorities).
    #[serde(default)]
    pub ingress: Vec<IngressRule>,
}

/// One inbound rule in a cloud-neutral shape: AWS SG rule, Azure NSG rule, GCP firewall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressRule {
    /// `tcp`, `udp`, `icmp`, `all`, or the cloud's own name for others.
    pub protocol: String,
    /// Destination port ranges; empty means every port.
    #[serde(default)]
    pub ports: Vec<PortRange>,
    /// Source CIDRs, tags or group ids; `0.0.0.0/0` and `::/0` mean the whole internet.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Whether the rule admits or blocks the traffic.
    pub action: RuleAction,
    /// Evaluation priority where the cloud has one (lower first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// The cloud's name or description of the rule, for people reading a finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// True for rules the cloud adds to every firewall (Azure default NSG rules).
    #[serde(default, skip_serializing_if = "is_false")]
    pub cloud_default: bool,
}

impl IngressRule {
    /// True when the rule admits traffic from anywhere on the internet to `port`.
    pub fn opens_to_world(&self, port: u16) -> bool {
        self.action == RuleAction::Allow
            && self
                .sources
                .iter()
                .any(|s| matches!(s.as_str(), "0.0.0.0/0" | "::/0" | "*" | "Internet" | "any"))
            && (self.ports.is_empty() || self.ports.iter().any(|r| r.contains(port)))
            && matches!(self.protocol.as_str(), "tcp" | "all")
    }
}

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// First port of the range.
    pub from: u16,
    /// Last port of the range (equal to `from` for one port).
    pub to: u16,
}

impl PortRange {
    /// True when `port` falls within the range.
    pub fn contains(&self, port: u16) -> bool {
        self.from <= port && port <= self.to
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// The rule admits matching traffic.
    Allow,
    /// The rule blocks matching traffic.
    Deny,
}

/// Exposure and protection of an object store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageFacet {
    /// Readable by anyone on the internet (public ACL or policy, not blocked).
    pub public: bool,
    /// Encrypted at rest with a configured key or algorithm, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// Object versioning enabled, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<bool>,
}

/// What kind of difference a finding reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    /// Declared and live, with attributes that differ.
    Changed,
    /// Declared in IaC but gone from the cloud.
    Missing,
    /// Live in the cloud but declared nowhere.
    Unmanaged,
}

impl FindingKind {
    /// The lowercase name used in every output format.
    pub fn as_str(&self) -> &'static str {
        match self {
            FindingKind::Changed => "changed",
            FindingKind::Missing => "missing",
            FindingKind::Unmanaged => "unmanaged",
        }
    }
}

/// How a finding was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingStatus {
    /// An approved exception or an active break-glass covers it.
    Allowed,
    /// A policy denies it: remediate.
    Violation,
    /// Nothing decided it: a person should look.
    Review,
}

impl FindingStatus {
    /// The lowercase name used in documents.
    pub fn as_str(&self) -> &'static str {
        match self {
            FindingStatus::Allowed => "allowed",
            FindingStatus::Violation => "violation",
            FindingStatus::Review => "review",
        }
    }
}

/// How much a drift matters, from tag noise to an open door.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Cosmetic: tags, labels, descriptions.
    Low,
    /// Everything not rated otherwise.
    #[default]
    Medium,
    /// Network exposure, IAM, encryption, databases, public storage.
    High,
    /// A management port open to the world, administrator access granted.
    Critical,
}

impl Risk {
    /// The lowercase name used in every output format.
    pub fn as_str(&self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

/// One attribute that differs between IaC and the cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Dotted attribute path, with `[i]` for ordered list items (`tags.env`, `ingress`).
    pub path: String,
    /// The declared value; for set attributes, only the declared elements absent live.
    pub expected: Value,
    /// The live value; for set attributes, only the live elements not declared.
    pub actual: Value,
}

/// Where IaC declares a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    /// Full Terraform address, e.g. `module.net.aws_security_group.web["a"]`.
    pub address: String,
    /// The state file (path or URL) that declared it.
    pub source: String,
}

/// The resource a finding is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingResource {
    /// The join key.
    #[serde(flatten)]
    pub key: ResourceKey,
    /// Terraform address, when declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// State file that declared it, when declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Account, subscription or project, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Region or location, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Human name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One drift: what differs, where it is declared, and how it was classified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable fingerprint: the same drift gets the same id in every scan.
    pub id: String,
    /// Changed, missing or unmanaged.
    pub kind: FindingKind,
    /// The resource concerned.
    pub resource: FindingResource,
    /// Attribute differences (empty for missing and unmanaged).
    #[serde(default)]
    pub changes: Vec<Change>,
    /// Classification.
    pub status: FindingStatus,
    /// How much it matters.
    #[serde(default)]
    pub risk: Risk,
    /// Warnings from policies and expired exceptions: context for a reviewer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// A break-glass override covering it expired: due a post-incident review.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub review_due: bool,
    /// Names of the policies or rules that decided the status.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Owning team or person, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// RFC 3339 time the drift was first seen.
    pub first_seen: String,
    /// RFC 3339 time the drift was last seen.
    pub last_seen: String,
    /// Cross-cloud facets of the live resource, for policies and people.
    #[serde(default, skip_serializing_if = "Facets::is_empty")]
    pub facets: Facets,
}

/// Whether an S3 bucket policy document lets anyone in: a statement that allows the
/// principal `*` without a condition (a source VPC or organisation narrows "anyone" to
/// someone). The one rule of the `storage.public` facet for live listings, exports and
/// declared buckets alike. A document that is not JSON grants nothing.
pub fn bucket_policy_is_public(policy: &str) -> bool {
    serde_json::from_str::<Value>(policy).is_ok_and(|doc| bucket_policy_value_is_public(&doc))
}

/// [`bucket_policy_is_public`] for a document already parsed.
pub fn bucket_policy_value_is_public(policy: &Value) -> bool {
    fn anyone(p: &Value) -> bool {
        match p {
            Value::String(s) => s == "*",
            Value::Array(items) => items.iter().any(anyone),
            Value::Object(m) => m.get("AWS").is_some_and(anyone),
            _ => false,
        }
    }
    let public = |s: &Value| {
        s.get("Effect").and_then(Value::as_str) == Some("Allow")
            && s.get("Principal").is_some_and(anyone)
            && s.get("Condition").is_none()
    };
    match policy.get("Statement") {
        Some(Value::Array(ss)) => ss.iter().any(public),
        Some(s @ Value::Object(_)) => public(s),
        _ => false,
    }
}
