//! Facets of declared resources, computed from their Terraform attributes the way the
//! providers compute them from the cloud's answers, so that a change which shows only in a
//! facet (a managed bucket made public through its ACL, its bucket policy or its public
//! access block, none of which is an attribute of `aws_s3_bucket` the providers map) is a
//! finding with the facet's path.
//!
//! Only facets the state can tell for certain are compared: an S3 bucket's `public`. The
//! `network` facet of a security group is the same data as its `ingress` attribute, which
//! is compared already; `encrypted` and `versioning` are attributes of the bucket itself.

use crate::iac::Declared;
use driftwatch_plugin_sdk::schema::bucket_policy_is_public;
use driftwatch_plugin_sdk::{Change, Resource};
use serde_json::Value;
use std::collections::HashMap;

/// Canned ACLs that grant everyone (or every AWS account) access.
const PUBLIC_CANNED: &[&str] = &["public-read", "public-read-write", "authenticated-read"];

/// The declared resources that configure a bucket besides the bucket itself.
#[derive(Default)]
pub struct BucketParts<'a> {
    acls: HashMap<&'a str, Vec<&'a Declared>>,
    policies: HashMap<&'a str, Vec<&'a Declared>>,
    blocks: HashMap<&'a str, &'a Declared>,
}

impl<'a> BucketParts<'a> {
    /// Indexes the declared ACLs, bucket policies and public access blocks by bucket.
    pub fn new(declared: &'a [Declared]) -> Self {
        let mut p = BucketParts::default();
        for d in declared {
            let Some(bucket) = d.attributes.get("bucket").and_then(Value::as_str) else {
                continue;
            };
            match d.key.r#type.as_str() {
                "aws_s3_bucket_acl" => p.acls.entry(bucket).or_default().push(d),
                "aws_s3_bucket_policy" => p.policies.entry(bucket).or_default().push(d),
                "aws_s3_bucket_public_access_block" => {
                    p.blocks.insert(bucket, d);
                }
                _ => {}
            }
        }
        p
    }

    /// Whether the declared bucket `d` is readable by anyone, by the rule S3 enforces: a
    /// public ACL unless the block ignores public ACLs, a public policy unless the block
    /// restricts public buckets.
    fn public(&self, d: &Declared) -> bool {
        let name = d
            .attributes
            .get("bucket")
            .and_then(Value::as_str)
            .unwrap_or(&d.key.id);
        let acls = self.acls.get(name).into_iter().flatten();
        let acl_public =
            acl_is_public(&d.attributes) || acls.clone().any(|a| acl_is_public(&a.attributes));
        let policies = self.policies.get(name).into_iter().flatten();
        let policy_public = d
            .attributes
            .get("policy")
            .and_then(Value::as_str)
            .is_some_and(bucket_policy_is_public)
            || policies
                .clone()
                .filter_map(|p| p.attributes.get("policy").and_then(Value::as_str))
                .any(bucket_policy_is_public);
        let flag = |k: &str| {
            self.blocks
                .get(name)
                .and_then(|b| b.attributes.get(k))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        (acl_public && !flag("ignore_public_acls"))
            || (policy_public && !flag("restrict_public_buckets"))
    }
}

/// The facet changes of a matched resource: declared facets computed from the state,
/// compared with the live ones a provider reported.
pub fn changes(parts: &BucketParts<'_>, declared: &Declared, live: &Resource) -> Vec<Change> {
    let mut out = Vec::new();
    if declared.key.r#type == "aws_s3_bucket" {
        if let Some(storage) = &live.facets.storage {
            let expected = parts.public(declared);
            if expected != storage.public {
                out.push(Change {
                    path: "facets.storage.public".into(),
                    expected: Value::Bool(expected),
                    actual: Value::Bool(storage.public),
                });
            }
        }
    }
    out
}

/// A canned `acl`, or grants (`grant` on the bucket, `access_control_policy` on
/// `aws_s3_bucket_acl`) to the AllUsers or AuthenticatedUsers groups.
fn acl_is_public(attrs: &serde_json::Map<String, Value>) -> bool {
    if attrs
        .get("acl")
        .and_then(Value::as_str)
        .is_some_and(|a| PUBLIC_CANNED.contains(&a))
    {
        return true;
    }
    fn any_public_uri(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.iter().any(|(k, v)| {
                (k == "uri" && v.as_str().is_some_and(public_group)) || any_public_uri(v)
            }),
            Value::Array(items) => items.iter().any(any_public_uri),
            _ => false,
        }
    }
    ["grant", "access_control_policy"]
        .iter()
        .filter_map(|k| attrs.get(*k))
        .any(any_public_uri)
}

fn public_group(uri: &str) -> bool {
    matches!(
        uri.rsplit('/').next(),
        Some("AllUsers" | "AuthenticatedUsers")
    )
}
