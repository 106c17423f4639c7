//! The diff engine: match declared and live resources by key in one pass over each side,
//! and turn the differences into findings.

pub mod canon;
pub mod compare;
pub mod facets;
pub mod ignore;

use crate::iac::Declared;
use canon::{
    canonicalise, declared_id, live_type, match_id, needs_canonical, FoldedRules, COMPONENT_TYPES,
};
use driftwatch_plugin_sdk::report::{Coverage, ResourceCounts};
use driftwatch_plugin_sdk::{
    Change, Finding, FindingKind, FindingResource, FindingStatus, Resource, ResourceKey, Scope,
};
use ignore::DriftIgnore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

/// What the diff produced.
#[derive(Debug, Default)]
pub struct DiffResult {
    /// Findings sorted by kind, type and id.
    pub findings: Vec<Finding>,
    /// Resource counts for the summary.
    pub counts: ResourceCounts,
    /// Coverage for the summary.
    pub coverage: Coverage,
}

/// Inputs besides the two sides.
pub struct DiffOptions<'a> {
    /// Ignore rules.
    pub ignore: &'a DriftIgnore,
    /// RFC 3339 time stamped on findings as first and last seen.
    pub now: &'a str,
}

/// The key declared and live resources are matched on: provider, live type and match id.
pub(crate) fn key_string(provider: &str, ty: &str, id: &str) -> String {
    let mut k = String::with_capacity(provider.len() + ty.len() + id.len() + 2);
    k.push_str(provider);
    k.push('\u{1f}');
    k.push_str(live_type(ty));
    k.push('\u{1f}');
    k.push_str(&match_id(provider, id));
    k
}

/// Stable fingerprint of a drift: its kind, resource key and the attribute paths that differ,
/// but not the values, so a drift that keeps changing value stays one finding.
pub fn fingerprint(kind: FindingKind, key: &ResourceKey, changes: &[Change]) -> String {
    let mut h = Sha256::new();
    h.update(b"driftwatch/v1\0");
    h.update(kind.as_str());
    h.update([0]);
    h.update(&key.provider);
    h.update([0]);
    h.update(live_type(&key.r#type));
    h.update([0]);
    h.update(match_id(&key.provider, &key.id));
    for c in changes {
        h.update([0]);
        h.update(&c.path);
    }
    hex::encode(&h.finalize()[..16])
}

/// Account and region a declared resource lives in, when its attributes tell.
fn declared_scope(d: &Declared) -> (Option<String>, Option<String>) {
    let a = &d.attributes;
    let s = |k: &str| a.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    match d.key.provider.as_str() {
        "aws" => match s("arn").map(|arn| arn.split(':').collect::<Vec<_>>()) {
            Some(parts) if parts.len() >= 5 => {
                let region = Some(parts[3]).filter(|r| !r.is_empty()).map(str::to_string);
                let account = Some(parts[4]).filter(|r| !r.is_empty()).map(str::to_string);
                (account, region)
            }
            _ => (s("owner_id").map(str::to_string), None),
        },
        "azure" => {
            let id = d.key.id.to_ascii_lowercase();
            let sub = id
                .strip_prefix("/subscriptions/")
                .and_then(|r| r.split('/').next())
                .map(str::to_string);
            (sub, s("location").map(str::to_ascii_lowercase))
        }
        // Subnetworks have a region, instances a zone: the location their per-region or
        // per-zone listing covers.
        "gcp" => (
            s("project").map(str::to_string),
            s("region").or_else(|| s("zone")).map(str::to_string),
        ),
        _ => (None, None),
    }
}

/// What the declared resources of one state file say about where it deploys: the AWS
/// accounts and regions named by their ARNs and `owner_id`s.
#[derive(Default)]
struct StatePlace {
    accounts: HashSet<String>,
    regions: HashSet<String>,
}

/// Where declared AWS resources live when their own attributes do not say: S3 buckets'
/// ARNs carry no account or region, public access blocks and attachments have no ARN.
#[derive(Default)]
struct Places<'a> {
    by_source: HashMap<&'a str, StatePlace>,
    /// Bucket name → region, from the declared buckets' `region` attribute.
    bucket_regions: HashMap<&'a str, &'a str>,
}

impl<'a> Places<'a> {
    fn new(declared: &'a [Declared]) -> Self {
        let mut p = Places::default();
        for d in declared.iter().filter(|d| d.key.provider == "aws") {
            let (account, region) = declared_scope(d);
            let place = p.by_source.entry(&d.source).or_default();
            place.accounts.extend(account);
            place.regions.extend(region);
            if d.key.r#type == "aws_s3_bucket" {
                if let Some(r) = d.attributes.get("region").and_then(Value::as_str) {
                    p.bucket_regions.insert(&d.key.id, r);
                }
            }
        }
        p
    }

    /// Account and region of `d`: its own attributes first; then, for AWS, the region of
    /// the bucket it configures or of its availability zone, and what the other resources
    /// of its state file agree on (one account, one region). Still unknown when they name
    /// several.
    fn of(&self, d: &Declared) -> (Option<String>, Option<String>) {
        let (mut account, mut region) = declared_scope(d);
        if d.key.provider != "aws" {
            return (account, region);
        }
        let s = |k: &str| {
            d.attributes
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        if region.is_none() {
            region = s("region")
                .or_else(|| s("bucket").and_then(|b| self.bucket_regions.get(b).copied()))
                .map(str::to_string)
                .or_else(|| {
                    s("availability_zone")
                        .map(|z| z.trim_end_matches(|c: char| c.is_ascii_alphabetic()))
                        .filter(|r| !r.is_empty())
                        .map(str::to_string)
                });
        }
        let only = |set: &HashSet<String>| match set.len() {
            1 => set.iter().next().cloned(),
            _ => None,
        };
        if let Some(place) = self.by_source.get(&*d.source) {
            if account.is_none() {
                account = only(&place.accounts);
            }
            if region.is_none() {
                region = only(&place.regions);
            }
        }
        (account, region)
    }
}

/// True when a listing of `scope` may have covered the resource: used to withhold
/// judgement where a listing failed.
fn scope_may_cover(scope: &Scope, account: &Option<String>, region: &Option<String>) -> bool {
    let ok = |s: &Option<String>, d: &Option<String>| match (s, d) {
        (Some(s), Some(d)) => s.eq_ignore_ascii_case(d),
        _ => true,
    };
    ok(&scope.account, account) && ok(&scope.region, region)
}

/// True when a listing of `scope` provably covered the resource: the scope spans every
/// account (region), or names the resource's own. A resource whose account or region is
/// unknown is never called missing from a listing of one account or region: it may live
/// in one that was not listed at all.
fn scope_covers(scope: &Scope, account: &Option<String>, region: &Option<String>) -> bool {
    let ok = |s: &Option<String>, d: &Option<String>| match (s, d) {
        (None, _) => true,
        (Some(s), Some(d)) => s.eq_ignore_ascii_case(d),
        (Some(_), None) => false,
    };
    ok(&scope.account, account) && ok(&scope.region, region)
}

/// Diffs declared against live resources.
///
/// Linear in the size of both sides: live resources are indexed once by
/// `(provider, type, id)` and every declared resource is looked up once.
pub fn diff(
    declared: &[Declared],
    live: &[Resource],
    scopes: &[Scope],
    opts: &DiffOptions<'_>,
) -> DiffResult {
    let mut out = DiffResult::default();
    out.counts.declared = declared.len();
    out.counts.live = live.len();

    let mut index: HashMap<String, usize> = HashMap::with_capacity(live.len());
    for (i, r) in live.iter().enumerate() {
        index
            .entry(key_string(&r.key.provider, &r.key.r#type, &r.key.id))
            .or_insert(i);
    }
    let mut matched = vec![false; live.len()];

    // Scopes by (provider, type): complete ones cover, failed ones withhold judgement.
    let mut complete: HashMap<(&str, &str), Vec<&Scope>> = HashMap::new();
    let mut failed: HashMap<(&str, &str), Vec<&Scope>> = HashMap::new();
    for s in scopes {
        let slot = if s.complete {
            &mut complete
        } else {
            &mut failed
        };
        slot.entry((s.provider.as_str(), s.r#type.as_str()))
            .or_default()
            .push(s);
        if !s.complete {
            out.coverage.failed_scopes.push(s.clone());
        }
    }

    // Rules declared as separate resources fold into their parent group.
    let mut folded = FoldedRules::default();
    let mut components: Vec<(usize, Option<String>)> = Vec::new();
    for (i, d) in declared.iter().enumerate() {
        if COMPONENT_TYPES.contains(&d.key.r#type.as_str()) {
            components.push((i, folded.add(&d.key.r#type, &d.attributes)));
        }
    }
    let mut component_parents: HashSet<String> = HashSet::new();
    let places = Places::new(declared);
    let bucket_parts = facets::BucketParts::new(declared);

    let mut covered = 0usize;
    for d in declared {
        let ty = d.key.r#type.as_str();
        if COMPONENT_TYPES.contains(&ty) {
            continue;
        }
        let provider = d.key.provider.as_str();
        let lt = live_type(ty);
        if d.key.id.is_empty() {
            out.counts.not_covered += 1;
            *out.coverage
                .uncovered_types
                .entry(ty.to_string())
                .or_default() += 1;
            continue;
        }
        let k = key_string(provider, ty, &declared_id(ty, &d.key.id, &d.attributes));
        if let Some(&i) = index.get(&k) {
            covered += 1;
            matched[i] = true;
            out.counts.matched += 1;
            let l = &live[i];
            let parent = match_id(provider, &d.key.id);
            let mut changes = if needs_canonical(ty) {
                let mut e = d.attributes.clone();
                let mut a = l.attributes.clone();
                canonicalise(ty, &mut e, Some((&folded, &parent)));
                canonicalise(ty, &mut a, None);
                compare::diff_attributes(lt, &e, &a, &d.masked)
            } else {
                compare::diff_attributes(lt, &d.attributes, &l.attributes, &d.masked)
            };
            let facet_changes = facets::changes(&bucket_parts, d, l);
            if !facet_changes.is_empty() {
                changes.extend(facet_changes);
                changes.sort_by(|a, b| a.path.cmp(&b.path));
            }
            if folded.has_parent(&parent) {
                component_parents.insert(parent);
            }
            if changes.is_empty() {
                out.counts.in_sync += 1;
                continue;
            }
            let f = finding(FindingKind::Changed, Some(d), Some(l), changes, opts.now);
            push(&mut out, opts.ignore, f);
            continue;
        }
        let (account, region) = places.of(d);
        let has_complete = complete
            .get(&(provider, lt))
            .is_some_and(|v| v.iter().any(|s| scope_covers(s, &account, &region)));
        let has_failed = failed
            .get(&(provider, lt))
            .is_some_and(|v| v.iter().any(|s| scope_may_cover(s, &account, &region)));
        if has_failed {
            covered += 1;
            out.counts.not_judged += 1;
        } else if has_complete {
            covered += 1;
            let f = finding(FindingKind::Missing, Some(d), None, vec![], opts.now);
            push(&mut out, opts.ignore, f);
        } else {
            out.counts.not_covered += 1;
            *out.coverage
                .uncovered_types
                .entry(ty.to_string())
                .or_default() += 1;
        }
    }
    // A folded rule counts as matched when its parent group was found live.
    for (_, parent) in &components {
        match parent {
            Some(p) if component_parents.contains(p) => {
                covered += 1;
                out.counts.matched += 1;
                out.counts.in_sync += 1;
            }
            _ => {
                // Its parent is gone or not listed: the parent's own finding speaks for it.
                out.counts.not_covered += 1;
            }
        }
    }
    let judged = out.counts.declared.max(1);
    out.coverage.ratio = if out.counts.declared == 0 {
        1.0
    } else {
        covered as f64 / judged as f64
    };

    for (i, l) in live.iter().enumerate() {
        if matched[i] || COMPONENT_TYPES.contains(&l.key.r#type.as_str()) {
            continue;
        }
        if l.cloud_default {
            out.counts.cloud_defaults += 1;
            continue;
        }
        let f = finding(FindingKind::Unmanaged, None, Some(l), vec![], opts.now);
        push(&mut out, opts.ignore, f);
    }

    out.findings.sort_by(|a, b| {
        (a.kind, &a.resource.key.r#type, &a.resource.key.id).cmp(&(
            b.kind,
            &b.resource.key.r#type,
            &b.resource.key.id,
        ))
    });
    out
}

fn push(out: &mut DiffResult, ignore: &DriftIgnore, f: Finding) {
    match ignore.apply(f) {
        Some(f) => out.findings.push(f),
        None => out.counts.ignored += 1,
    }
}

fn finding(
    kind: FindingKind,
    declared: Option<&Declared>,
    live: Option<&Resource>,
    changes: Vec<Change>,
    now: &str,
) -> Finding {
    let key = match (declared, live) {
        (Some(d), _) => d.key.clone(),
        (None, Some(l)) => l.key.clone(),
        (None, None) => unreachable!("a finding has at least one side"),
    };
    let id = fingerprint(kind, &key, &changes);
    let account = live.and_then(|l| l.account.clone());
    let region = live.and_then(|l| l.region.clone());
    let name = live.and_then(|l| l.name.clone()).or_else(|| {
        declared.and_then(|d| {
            d.attributes
                .get("name")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
    });
    let (account, region) = match (account, region, declared) {
        (None, None, Some(d)) => declared_scope(d),
        (a, r, _) => (a, r),
    };
    Finding {
        id,
        kind,
        resource: FindingResource {
            key,
            address: declared.map(|d| d.address.clone()),
            source: declared.map(|d| d.source.to_string()),
            account,
            region,
            name,
        },
        changes,
        status: FindingStatus::Review,
        risk: Default::default(),
        notes: Vec::new(),
        review_due: false,
        policies: Vec::new(),
        owner: None,
        first_seen: now.to_string(),
        last_seen: now.to_string(),
        facets: live.map(|l| l.facets.clone()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iac::parse_state;
    use serde_json::{json, Map, Value};

    /// A state of the driftctl corpus: real Terraform-written files.
    fn corpus(name: &str) -> Vec<Declared> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tfstate/driftctl")
            .join(format!("{name}.tfstate"));
        parse_state(name, &std::fs::read(&path).unwrap())
            .unwrap()
            .resources
    }

    fn live(ty: &str, id: &str, attrs: Value) -> Resource {
        let mut r = Resource::new(ResourceKey::new("aws", ty, id));
        r.attributes = attrs.as_object().unwrap().clone();
        r
    }

    fn run(declared: &[Declared], live: &[Resource], scopes: &[Scope]) -> DiffResult {
        let ignore = DriftIgnore::default();
        diff(
            declared,
            live,
            scopes,
            &DiffOptions {
                ignore: &ignore,
                now: "2026-01-01T00:00:00Z",
            },
        )
    }

    /// One live inline rule in the shape the providers map the EC2 API into.
    fn rule(proto: &str, from: i64, to: i64, key: &str, source: &str, desc: &str) -> Value {
        let mut m = json!({"protocol": proto, "from_port": from, "to_port": to,
            "cidr_blocks": [], "ipv6_cidr_blocks": [], "prefix_list_ids": [],
            "security_groups": [], "self": key == "self", "description": desc});
        if key != "self" {
            m[key] = json!([source]);
        }
        m
    }

    #[test]
    fn self_referencing_rules_of_a_real_state_are_in_sync() {
        // Terraform writes `self = true` and the group's own id as the source of these rules.
        let sg = "sg-0254c038e32f25530";
        let mut declared: Vec<Declared> = corpus("aws_vpc_security_group_rule")
            .into_iter()
            .filter(|d| d.attributes["security_group_id"] == sg)
            .collect();
        assert!(declared.iter().any(
            |d| d.attributes["self"] == true && d.attributes["source_security_group_id"] == sg
        ));
        let mut group = corpus("aws_vpc_security_group")
            .into_iter()
            .find(|d| d.key.id == sg)
            .unwrap();
        // Its rules are the separate resources above.
        group.attributes.remove("ingress");
        group.attributes.remove("egress");
        declared.push(group);
        let ingress = json!([
            rule("tcp", 0, 0, "prefix_list_ids", "pl-abb451c2", "Baz 2"),
            rule("-1", 0, 0, "cidr_blocks", "1.2.0.0/16", "Foo 5"),
            rule("-1", 0, 0, "cidr_blocks", "5.6.7.0/24", "Foo 5"),
            rule("-1", 0, 0, "cidr_blocks", "0.0.0.0/0", "Foo 1"),
            rule("tcp", 0, 65535, "self", "", "Test 1"),
            rule("icmp", 0, 0, "self", "", ""),
        ]);
        let egress = json!([
            rule("-1", 0, 0, "cidr_blocks", "0.0.0.0/0", "Bar 1"),
            rule("-1", 0, 0, "ipv6_cidr_blocks", "::/0", "Bar 1"),
        ]);
        let l = live(
            "aws_security_group",
            sg,
            json!({"name": "foo", "description": "Managed by Terraform", "vpc_id": "vpc-618f6e09",
                   "tags": {"Name": "Foo SG"}, "ingress": ingress, "egress": egress}),
        );
        let out = run(&declared, &[l], &[]);
        assert_eq!(out.findings, vec![], "an estate in sync has no finding");
        assert_eq!(out.counts.in_sync, 1 + 6);
    }

    #[test]
    fn a_rule_to_the_own_group_by_id_is_self() {
        let mut f = FoldedRules::default();
        let rule = json!({"security_group_id": "sg-1", "ip_protocol": "tcp", "from_port": 5432,
                          "to_port": 5432, "referenced_security_group_id": "sg-1"});
        f.add(
            "aws_vpc_security_group_ingress_rule",
            rule.as_object().unwrap(),
        );
        let mut e = Map::new();
        canonicalise("aws_security_group", &mut e, Some((&f, "sg-1")));
        let mut a = json!({"ingress": [rule_self()]})
            .as_object()
            .unwrap()
            .clone();
        canonicalise("aws_security_group", &mut a, None);
        assert_eq!(e["ingress"], a["ingress"]);
    }

    /// A bucket as the providers map it, with a default-encryption rule.
    fn bucket(name: &str, algorithm: &str, key: &str) -> Resource {
        live(
            "aws_s3_bucket",
            name,
            json!({"bucket": name, "tags": {},
                "versioning": [{"enabled": false, "mfa_delete": false}],
                "server_side_encryption_configuration": [{"rule": [{
                    "apply_server_side_encryption_by_default": [
                        {"sse_algorithm": algorithm, "kms_master_key_id": key}],
                    "bucket_key_enabled": false}]}]}),
        )
    }

    #[test]
    fn s3_default_encryption_is_not_drift_but_another_is() {
        // Written in 2020: `server_side_encryption_configuration = []`.
        let declared: Vec<Declared> = corpus("aws_s3_full")
            .into_iter()
            .filter(|d| d.key.id == "bucket-martin-test-drift")
            .collect();
        assert_eq!(
            declared[0].attributes["server_side_encryption_configuration"],
            json!([])
        );
        let out = run(
            &declared,
            &[bucket("bucket-martin-test-drift", "AES256", "")],
            &[],
        );
        assert_eq!(out.findings, vec![]);
        let kms = bucket(
            "bucket-martin-test-drift",
            "aws:kms",
            "arn:aws:kms:eu-west-3:1:key/k",
        );
        let out = run(&declared, &[kms], &[]);
        let paths: Vec<&str> = out.findings[0]
            .changes
            .iter()
            .map(|c| c.path.as_str())
            .collect();
        assert_eq!(paths, ["server_side_encryption_configuration"]);
    }

    fn scope(ty: &str, account: &str, region: Option<&str>) -> Scope {
        let mut s = Scope::complete("aws", ty);
        s.account = Some(account.into());
        s.region = region.map(str::to_string);
        s
    }

    fn missing(out: &DiffResult) -> Vec<&str> {
        out.findings
            .iter()
            .filter(|f| f.kind == FindingKind::Missing)
            .map(|f| f.resource.key.id.as_str())
            .collect()
    }

    #[test]
    fn resources_without_an_account_are_judged_only_where_a_listing_covers_them() {
        // Bucket ARNs carry no account: nothing in this real state says where it lives.
        let buckets: Vec<Declared> = corpus("aws_s3_full")
            .into_iter()
            .filter(|d| d.key.r#type == "aws_s3_bucket")
            .collect();
        assert_eq!(buckets.len(), 3);
        let other = [scope("aws_s3_bucket", "111111111111", None)];
        let out = run(&buckets, &[], &other);
        assert_eq!(
            missing(&out),
            Vec::<&str>::new(),
            "another account was listed"
        );
        assert_eq!(out.counts.not_covered, 3);

        // A sibling in the same state file names its account and region: the state deploys
        // there, and a listing of that account judges its buckets.
        let mut sg = corpus("aws_vpc_security_group")
            .into_iter()
            .find(|d| d.key.r#type == "aws_security_group")
            .unwrap();
        sg.source = buckets[0].source.clone();
        let mut declared = buckets.clone();
        declared.push(sg);
        let out = run(&declared, &[], &other);
        assert_eq!(missing(&out), Vec::<&str>::new());
        let own = [
            scope("aws_s3_bucket", "047081014315", None),
            scope("aws_security_group", "047081014315", Some("eu-west-3")),
        ];
        let out = run(&declared, &[], &own);
        assert_eq!(missing(&out).len(), 4, "{:?}", out.findings);

        // A regional listing (an AWS Config snapshot of another region) does not cover
        // buckets of eu-west-3.
        let elsewhere = [scope("aws_s3_bucket", "047081014315", Some("eu-west-1"))];
        let out = run(&declared, &[], &elsewhere);
        assert_eq!(missing(&out), Vec::<&str>::new());
        let there = [scope("aws_s3_bucket", "047081014315", Some("eu-west-3"))];
        assert_eq!(missing(&run(&declared, &[], &there)).len(), 3);
    }

    #[test]
    fn a_public_access_block_takes_its_buckets_place() {
        // No ARN at all; its bucket is declared in another state file of the same account.
        let pab = corpus("aws_s3_bucket_public_access_block");
        let scopes = [scope(
            "aws_s3_bucket_public_access_block",
            "047081014315",
            Some("eu-west-3"),
        )];
        assert_eq!(missing(&run(&pab, &[], &scopes)), Vec::<&str>::new());
        let mut bucket = corpus("aws_s3_full")
            .into_iter()
            .find(|d| d.key.r#type == "aws_s3_bucket")
            .unwrap();
        bucket.key.id = pab[0].attributes["bucket"].as_str().unwrap().to_string();
        let mut sg = corpus("aws_vpc_security_group")
            .into_iter()
            .find(|d| d.key.r#type == "aws_security_group")
            .unwrap();
        sg.source = pab[0].source.clone();
        let mut declared = pab.clone();
        declared.push(bucket);
        declared.push(sg);
        let out = run(&declared, &[], &scopes);
        assert_eq!(missing(&out), vec![pab[0].key.id.as_str()]);
    }

    #[test]
    fn a_bucket_made_public_or_private_is_a_facet_change() {
        use driftwatch_plugin_sdk::{Facets, StorageFacet};
        // Public by its separate `aws_s3_bucket_policy`, as this real state declares.
        let declared: Vec<Declared> = corpus("aws_s3_full")
            .into_iter()
            .filter(|d| d.key.id == "bucket-martin-test-drift2")
            .collect();
        assert_eq!(declared.len(), 2);
        let with = |public: bool| {
            let mut b = bucket("bucket-martin-test-drift2", "AES256", "");
            b.facets = Facets {
                network: None,
                storage: Some(StorageFacet {
                    public,
                    encrypted: Some(true),
                    versioning: Some(false),
                }),
            };
            b
        };
        assert_eq!(run(&declared, &[with(true)], &[]).findings, vec![]);
        let out = run(&declared, &[with(false)], &[]);
        let c = &out.findings[0].changes;
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].path.as_str(), &c[0].expected, &c[0].actual),
            ("facets.storage.public", &json!(true), &json!(false))
        );
        // Without its policy, the same bucket made public live is drift.
        let bare: Vec<Declared> = declared
            .into_iter()
            .filter(|d| d.key.r#type == "aws_s3_bucket")
            .collect();
        assert_eq!(run(&bare, &[with(false)], &[]).findings, vec![]);
        let out = run(&bare, &[with(true)], &[]);
        assert_eq!(out.findings[0].changes[0].path, "facets.storage.public");
    }

    fn rule_self() -> Value {
        rule("tcp", 5432, 5432, "self", "", "")
    }
}
