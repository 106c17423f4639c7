//! Google Cloud Asset Inventory: `gcloud asset export --content-type=resource|iam-policy`
//! (JSON lines), `gcloud asset list --format=json` (an array), and the REST list response.

use crate::json::{
    as_bool, as_int, first_of, first_str, input_err, kind, last_segment, new_resource, port_range,
    put, put_bool, put_int, put_str, segment_after, skip_warnings, str_at, stream_records, strings,
    tags_from_object, tags_value, Loc, Top,
};
use driftwatch_plugin_sdk::{
    Facets, IngressRule, NetworkFacet, ProviderError, Resource, RuleAction, StorageFacet,
};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Terraform types this format emits.
pub(crate) const TYPES: &[&str] = &[
    "google_compute_firewall",
    "google_compute_network",
    "google_compute_subnetwork",
    "google_compute_instance",
    "google_storage_bucket",
];

/// Cloud Asset Inventory's type for a Compute Engine firewall rule.
pub const FIREWALL: &str = "compute.googleapis.com/Firewall";
/// Cloud Asset Inventory's type for a VPC network.
pub const NETWORK: &str = "compute.googleapis.com/Network";
/// Cloud Asset Inventory's type for a subnetwork.
pub const SUBNETWORK: &str = "compute.googleapis.com/Subnetwork";
/// Cloud Asset Inventory's type for a VM instance.
pub const INSTANCE: &str = "compute.googleapis.com/Instance";
/// Cloud Asset Inventory's type for a Cloud Storage bucket.
pub const BUCKET: &str = "storage.googleapis.com/Bucket";
const PROJECT: &str = "cloudresourcemanager.googleapis.com/Project";
const PROJECT_PARENT: &str = "//cloudresourcemanager.googleapis.com/projects/";

/// Reads asset files, merging the resource and IAM-policy records of each asset by name.
#[derive(Default)]
pub(crate) struct Reader {
    assets: Vec<Asset>,
    index: HashMap<String, usize>,
    /// Project number → project id, learnt from assets that show both.
    numbers: HashMap<String, String>,
    warnings: Vec<String>,
}

struct Asset {
    name: String,
    asset_type: String,
    project: Project,
    state: State,
    iam: Option<Value>,
    /// Update time of the resource or deletion record in `state`.
    time: Option<i64>,
    deleted: bool,
}

/// What an asset says about its project.
enum Project {
    Id(String),
    /// Only the number is known; resolved through other assets at the end.
    Number(String),
    Unknown,
}

enum State {
    /// No resource record yet (an IAM-policy-only export, or a deletion).
    Missing,
    /// Mapped as soon as it was read, so its raw data is not kept.
    Mapped(Resource),
    /// Kept until the end: buckets need their IAM policy and maybe a project number.
    Raw(Value),
    /// A type this format does not map: nothing is kept.
    Unsupported,
}

fn newer(old: Option<i64>, new: Option<i64>) -> bool {
    match (old, new) {
        (Some(o), Some(n)) => n >= o,
        _ => true,
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The project of an asset, from its name, self link, parent or project number.
fn project_ref(name: &str, resource: Option<&Value>) -> Project {
    let data = resource.and_then(|r| r.get("data"));
    let candidates = [
        segment_after(name, "projects"),
        data.and_then(|d| str_at(d, "selfLink"))
            .and_then(|l| segment_after(l, "projects")),
        resource
            .and_then(|r| str_at(r, "parent"))
            .and_then(|p| p.strip_prefix(PROJECT_PARENT)),
        data.and_then(|d| str_at(d, "projectNumber")),
    ];
    let mut number = None;
    for c in candidates.into_iter().flatten() {
        if !is_number(c) {
            return Project::Id(c.to_string());
        }
        number.get_or_insert(c);
    }
    match number {
        Some(n) => Project::Number(n.to_string()),
        None => Project::Unknown,
    }
}

/// Maps a resource record now when nothing more is needed, or keeps it for the end.
fn prepare(name: &str, asset_type: &str, project: &Project, resource: Value) -> State {
    match (asset_type, project) {
        (FIREWALL | NETWORK | SUBNETWORK | INSTANCE, Project::Id(p)) => {
            State::Mapped(map(asset_type, name, Some(p.clone()), &resource, None))
        }
        (FIREWALL | NETWORK | SUBNETWORK | INSTANCE | BUCKET, _) => State::Raw(resource),
        _ => State::Unsupported,
    }
}

fn map(
    asset_type: &str,
    name: &str,
    project: Option<String>,
    resource: &Value,
    iam: Option<&Value>,
) -> Resource {
    let ctx = Ctx {
        name,
        iam,
        project,
        data: resource.get("data").unwrap_or(&Value::Null),
        resource,
    };
    match asset_type {
        FIREWALL => firewall(&ctx),
        NETWORK => network(&ctx),
        SUBNETWORK => subnetwork(&ctx),
        INSTANCE => instance(&ctx),
        _ => bucket(&ctx),
    }
}

impl Reader {
    /// Reads one file.
    pub(crate) fn add(&mut self, source: &str, bytes: &[u8]) -> Result<(), ProviderError> {
        let top = stream_records(source, bytes, &["assets"], &mut |loc, v| {
            self.asset(source, loc, v)
        })?;
        match top {
            Top::Empty => self.warnings.push(format!("{source}: empty file")),
            Top::Array | Top::Lines | Top::Listed { .. } => {}
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
                self.asset(source, Loc::Line(line), Value::Object(rest))?
            }
            Top::Scalar(kind) => {
                return Err(input_err(
                    source,
                    format!(
                        "not a Cloud Asset Inventory export: expected JSON lines of assets or \
                         an array, found {kind}"
                    ),
                ))
            }
        }
        Ok(())
    }

    fn asset(&mut self, source: &str, loc: Loc<'_>, v: Value) -> Result<(), ProviderError> {
        let Value::Object(mut m) = v else {
            return Err(input_err(
                source,
                format!("{loc}: expected an asset object, found {}", kind(&v)),
            ));
        };
        // Feeds and history wrap the asset with a deletion flag and a time window.
        let mut deleted = m.get("deleted").and_then(as_bool) == Some(true);
        if !m.contains_key("name") {
            if let Some(Value::Object(inner)) = m.remove("asset") {
                m = inner;
            }
        }
        deleted |= m.get("deleted").and_then(as_bool) == Some(true);
        let mut asset = Value::Object(m);
        let Some(name) = first_str(&asset, &["name"]).map(str::to_string) else {
            return Err(input_err(source, format!("{loc}: asset has no `name`")));
        };
        let Some(asset_type) = first_str(&asset, &["asset_type", "assetType"]).map(str::to_string)
        else {
            return Err(input_err(
                source,
                format!("{loc}: asset {name} has no `asset_type`"),
            ));
        };
        let time =
            first_of(&asset, &["update_time", "updateTime"]).and_then(crate::json::parse_time);
        let resource = asset
            .get_mut("resource")
            .map(Value::take)
            .filter(|r| !r.is_null());
        let iam = ["iam_policy", "iamPolicy"]
            .iter()
            .find_map(|k| asset.get_mut(*k).map(Value::take))
            .filter(|r| !r.is_null());
        if let Some(r) = &resource {
            if !r.is_object() {
                return Err(input_err(
                    source,
                    format!("{loc}: `resource` must be an object, found {}", kind(r)),
                ));
            }
            self.learn_project_number(&name, &asset_type, r);
        }
        let i = match self.index.get(&name) {
            Some(&i) => i,
            None => {
                self.index.insert(name.clone(), self.assets.len());
                self.assets.push(Asset {
                    name: name.clone(),
                    asset_type: asset_type.clone(),
                    project: Project::Unknown,
                    state: State::Missing,
                    iam: None,
                    time: None,
                    deleted: false,
                });
                self.assets.len() - 1
            }
        };
        let e = &mut self.assets[i];
        if (resource.is_some() || deleted) && newer(e.time, time) {
            let project = project_ref(&name, resource.as_ref());
            if !matches!(project, Project::Unknown) {
                e.project = project;
            }
            if let Some(r) = resource {
                e.state = prepare(&name, &asset_type, &e.project, r);
            }
            e.asset_type = asset_type;
            e.deleted = deleted;
            e.time = time;
        } else if matches!(e.project, Project::Unknown) {
            e.project = project_ref(&name, None);
        }
        if iam.is_some() {
            e.iam = iam;
        }
        Ok(())
    }

    fn learn_project_number(&mut self, name: &str, asset_type: &str, resource: &Value) {
        let data = resource.get("data").unwrap_or(&Value::Null);
        if asset_type == PROJECT {
            let number = data.get("projectNumber").map(|n| match n {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            if let (Some(n), Some(id)) = (number, str_at(data, "projectId")) {
                self.numbers.insert(n, id.to_string());
            }
            return;
        }
        let number = str_at(resource, "parent").and_then(|p| p.strip_prefix(PROJECT_PARENT));
        let id = segment_after(name, "projects").filter(|p| !is_number(p));
        if let (Some(n), Some(id)) = (number.filter(|n| is_number(n)), id) {
            if !self.numbers.contains_key(n) {
                self.numbers.insert(n.to_string(), id.to_string());
            }
        }
    }

    /// The resources, projects seen and warnings.
    pub(crate) fn finish(self) -> (Vec<Resource>, BTreeSet<String>, Vec<String>) {
        let mut resources = Vec::with_capacity(self.assets.len());
        let mut accounts = BTreeSet::new();
        let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
        for asset in self.assets {
            let project = match asset.project {
                Project::Id(p) => Some(p),
                Project::Number(n) => self.numbers.get(&n).cloned(),
                Project::Unknown => None,
            };
            if let Some(p) = &project {
                if !accounts.contains(p) {
                    accounts.insert(p.clone());
                }
            }
            let ty = asset.asset_type.as_str();
            let why = match asset.state {
                State::Unsupported => Some(format!("asset(s) of unsupported type {ty}")),
                _ if asset.deleted => Some(format!("deleted {ty} asset(s)")),
                State::Missing => Some(format!(
                    "{ty} asset(s) without resource data (IAM-policy-only export?)"
                )),
                State::Mapped(r) => {
                    resources.push(r);
                    None
                }
                State::Raw(_) if project.is_none() && ty != BUCKET => {
                    Some(format!("{ty} asset(s) whose project is unknown"))
                }
                State::Raw(res) => {
                    resources.push(map(ty, &asset.name, project, &res, asset.iam.as_ref()));
                    None
                }
            };
            if let Some(why) = why {
                *skipped.entry(why).or_default() += 1;
            }
        }
        let mut warnings = self.warnings;
        warnings.extend(skip_warnings(skipped));
        (resources, accounts, warnings)
    }
}

/// Maps one object as the Compute or Storage JSON API returns it (Cloud Asset Inventory
/// exports the same object as an asset's `data`) to its google-shaped resource, so a live
/// listing and an offline export can never disagree. `asset_type` is one of the constants
/// above; `None` for any other. `iam_policy` is a bucket's IAM policy, when known.
pub fn map_api_object(
    asset_type: &str,
    project: &str,
    data: Value,
    iam_policy: Option<&Value>,
) -> Option<Resource> {
    if !matches!(
        asset_type,
        FIREWALL | NETWORK | SUBNETWORK | INSTANCE | BUCKET
    ) {
        return None;
    }
    let resource = json!({ "data": data });
    Some(map(
        asset_type,
        "",
        Some(project.to_string()),
        &resource,
        iam_policy,
    ))
}

struct Ctx<'a> {
    /// The asset name (`//compute.googleapis.com/projects/...`).
    name: &'a str,
    iam: Option<&'a Value>,
    project: Option<String>,
    resource: &'a Value,
    data: &'a Value,
}

impl Ctx<'_> {
    fn name(&self) -> String {
        first_str(self.data, &["name"])
            .unwrap_or_else(|| last_segment(self.name))
            .to_string()
    }

    fn project(&self) -> &str {
        self.project.as_deref().unwrap_or_default()
    }

    /// A resource with the attributes every compute type shares.
    fn resource(&self, ty: &str, id: String, name: &str) -> Resource {
        let mut r = new_resource("gcp", ty, id);
        r.account = self.project.clone();
        r.name = Some(name.to_string());
        let a = &mut r.attributes;
        a.insert("name".into(), Value::String(name.to_string()));
        put_str(a, "project", self.project.as_deref());
        r
    }

    /// Labels into the resource's tags and `labels` attribute.
    fn labels(&self, r: &mut Resource) {
        let mut labels = BTreeMap::new();
        tags_from_object(self.data.get("labels"), &mut labels);
        r.attributes.insert("labels".into(), tags_value(&labels));
        r.tags = labels;
    }

    /// `description`: the Compute API leaves empty strings out of its objects.
    fn description(&self, a: &mut Map<String, Value>) {
        put_str(
            a,
            "description",
            Some(str_at(self.data, "description").unwrap_or("")),
        );
    }

    /// A location segment (`regions`, `zones`) from the data's URL field or the asset name.
    fn place(&self, field: &str, segment: &str) -> Option<String> {
        str_at(self.data, field)
            .map(last_segment)
            .or_else(|| segment_after(self.name, segment))
            .map(str::to_string)
    }
}

/// Protocol in the SDK's vocabulary (Compute accepts names and IANA numbers).
fn facet_protocol(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        other => other.to_string(),
    }
}

fn firewall(c: &Ctx<'_>) -> Resource {
    let name = c.name();
    let id = format!("projects/{}/global/firewalls/{name}", c.project());
    let mut r = c.resource("google_compute_firewall", id, &name);
    let d = c.data;
    let a = &mut r.attributes;
    c.description(a);
    put(a, "network", d.get("network"));
    put_int(a, "priority", d.get("priority"));
    put(a, "direction", d.get("direction"));
    put_bool(a, "disabled", d.get("disabled"));
    // Repeated fields are left out of API objects when empty.
    for (tf, api) in [
        ("source_ranges", "sourceRanges"),
        ("destination_ranges", "destinationRanges"),
        ("source_tags", "sourceTags"),
        ("target_tags", "targetTags"),
        ("source_service_accounts", "sourceServiceAccounts"),
        ("target_service_accounts", "targetServiceAccounts"),
    ] {
        a.insert(tf.into(), Value::Array(strings(d.get(api))));
    }
    let blocks = |key: &str| -> &[Value] {
        match d.get(key) {
            Some(Value::Array(items)) => items,
            _ => &[],
        }
    };
    let tf_block = |e: &Value| {
        json!({
            "protocol": str_at(e, "IPProtocol").unwrap_or(""),
            "ports": strings(e.get("ports")),
        })
    };
    a.insert(
        "allow".into(),
        Value::Array(blocks("allowed").iter().map(tf_block).collect()),
    );
    a.insert(
        "deny".into(),
        Value::Array(blocks("denied").iter().map(tf_block).collect()),
    );
    let direction = str_at(d, "direction").unwrap_or("INGRESS");
    if direction.eq_ignore_ascii_case("INGRESS") {
        let mut ingress = Vec::new();
        // A disabled rule admits and blocks nothing.
        if d.get("disabled").and_then(as_bool) != Some(true) {
            let mut sources: Vec<String> = Vec::new();
            for key in ["sourceRanges", "sourceTags", "sourceServiceAccounts"] {
                sources.extend(
                    strings(d.get(key))
                        .into_iter()
                        .filter_map(|v| v.as_str().map(str::to_string)),
                );
            }
            let priority = d.get("priority").and_then(as_int).or(Some(1000));
            for (key, action) in [("allowed", RuleAction::Allow), ("denied", RuleAction::Deny)] {
                for e in blocks(key) {
                    let specs = strings(e.get("ports"));
                    let ports: Option<Vec<_>> = specs
                        .iter()
                        .map(|p| p.as_str().and_then(port_range))
                        .collect();
                    ingress.push(IngressRule {
                        protocol: facet_protocol(str_at(e, "IPProtocol").unwrap_or("all")),
                        // No ports, or ports that cannot be read, mean every port.
                        ports: ports.unwrap_or_default(),
                        sources: sources.clone(),
                        action,
                        priority,
                        name: Some(name.clone()),
                        cloud_default: false,
                    });
                }
            }
        }
        r.facets.network = Some(NetworkFacet { ingress });
    }
    r.cloud_default = name.starts_with("default-allow-")
        && str_at(d, "network").is_some_and(|n| n.ends_with("/networks/default"));
    r
}

fn network(c: &Ctx<'_>) -> Resource {
    let name = c.name();
    let id = format!("projects/{}/global/networks/{name}", c.project());
    let mut r = c.resource("google_compute_network", id, &name);
    let d = c.data;
    let a = &mut r.attributes;
    c.description(a);
    put_bool(a, "auto_create_subnetworks", d.get("autoCreateSubnetworks"));
    put(
        a,
        "routing_mode",
        d.get("routingConfig").and_then(|rc| rc.get("routingMode")),
    );
    put_int(a, "mtu", d.get("mtu"));
    r.cloud_default = name == "default";
    r
}

fn subnetwork(c: &Ctx<'_>) -> Resource {
    let name = c.name();
    let region = c.place("region", "regions").unwrap_or_default();
    let id = format!(
        "projects/{}/regions/{region}/subnetworks/{name}",
        c.project()
    );
    let mut r = c.resource("google_compute_subnetwork", id, &name);
    r.region = Some(region.clone()).filter(|s| !s.is_empty());
    let d = c.data;
    let a = &mut r.attributes;
    c.description(a);
    put(a, "ip_cidr_range", d.get("ipCidrRange"));
    put(a, "network", d.get("network"));
    put_str(a, "region", r.region.as_deref());
    put_bool(
        a,
        "private_ip_google_access",
        d.get("privateIpGoogleAccess"),
    );
    let secondary: Vec<Value> = match d.get("secondaryIpRanges") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                json!({
                    "range_name": str_at(s, "rangeName").unwrap_or(""),
                    "ip_cidr_range": str_at(s, "ipCidrRange").unwrap_or(""),
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    a.insert("secondary_ip_range".into(), Value::Array(secondary));
    r.cloud_default = str_at(d, "network").is_some_and(|n| n.ends_with("/networks/default"));
    r
}

fn instance(c: &Ctx<'_>) -> Resource {
    let name = c.name();
    let zone = c.place("zone", "zones").unwrap_or_default();
    let id = format!("projects/{}/zones/{zone}/instances/{name}", c.project());
    let mut r = c.resource("google_compute_instance", id, &name);
    r.region = Some(zone.clone()).filter(|s| !s.is_empty());
    c.labels(&mut r);
    let d = c.data;
    let a = &mut r.attributes;
    c.description(a);
    put_str(
        a,
        "machine_type",
        str_at(d, "machineType").map(last_segment),
    );
    put_str(a, "zone", r.region.as_deref());
    a.insert(
        "tags".into(),
        Value::Array(strings(d.get("tags").and_then(|t| t.get("items")))),
    );
    put(a, "current_status", d.get("status"));
    put_bool(a, "can_ip_forward", d.get("canIpForward"));
    put_bool(a, "deletion_protection", d.get("deletionProtection"));
    r
}

/// True when a binding grants anything to everyone on the internet.
fn iam_is_public(policy: &Value) -> bool {
    matches!(policy.get("bindings"), Some(Value::Array(bs)) if bs.iter().any(|b| {
        matches!(b.get("members"), Some(Value::Array(ms)) if ms.iter().any(|m| {
            matches!(m.as_str(), Some("allUsers" | "allAuthenticatedUsers"))
        }))
    }))
}

fn bucket(c: &Ctx<'_>) -> Resource {
    let name = c.name();
    let mut r = new_resource("gcp", "google_storage_bucket", name.clone());
    r.account = c.project.clone();
    r.name = Some(name.clone());
    c.labels(&mut r);
    let d = c.data;
    let location = str_at(d, "location").or_else(|| str_at(c.resource, "location"));
    r.region = location.map(str::to_ascii_lowercase);
    let a = &mut r.attributes;
    a.insert("name".into(), Value::String(name));
    put_str(a, "project", c.project.as_deref());
    put_str(
        a,
        "location",
        location.map(str::to_ascii_uppercase).as_deref(),
    );
    put(a, "storage_class", d.get("storageClass"));
    let versioning = d
        .get("versioning")
        .map(|v| v.get("enabled").and_then(as_bool) == Some(true));
    if let Some(enabled) = versioning {
        a.insert("versioning".into(), json!([{ "enabled": enabled }]));
    }
    let iam_conf = d.get("iamConfiguration");
    put_bool(
        a,
        "uniform_bucket_level_access",
        iam_conf
            .and_then(|i| i.get("uniformBucketLevelAccess"))
            .and_then(|u| u.get("enabled")),
    );
    // `unspecified` is the API's former name for `inherited`.
    let pap = match iam_conf.and_then(|i| str_at(i, "publicAccessPrevention")) {
        None | Some("unspecified") => "inherited",
        Some(p) => p,
    };
    a.insert(
        "public_access_prevention".into(),
        Value::String(pap.to_string()),
    );
    let public = pap != "enforced" && c.iam.is_some_and(iam_is_public);
    r.facets = Facets {
        network: None,
        storage: Some(StorageFacet {
            public,
            encrypted: Some(true),
            // The API leaves `versioning` out of buckets that never had it on.
            versioning: Some(versioning.unwrap_or(false)),
        }),
    };
    r
}
