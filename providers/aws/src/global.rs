//! Account-wide listings: S3 buckets and IAM roles and policies.

use crate::map::base;
use crate::{api_error, scope, Calls, Listed};
use aws_config::SdkConfig;
use aws_sdk_s3::error::ProvideErrorMetadata;
use driftwatch_plugin_sdk::{Facets, Resource, StorageFacet};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Error codes that mean "this bucket has none of that configuration", not a failure.
const ABSENT: &[&str] = &[
    "NoSuchTagSet",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchPublicAccessBlockConfiguration",
    "NoSuchBucketPolicy",
];

/// Lists buckets and IAM; each type is its own (global) scope.
pub async fn list_global(
    conf: &SdkConfig,
    account: &str,
    path_style: bool,
    calls: &Calls,
) -> Listed {
    let mut listed = Listed {
        resources: Vec::new(),
        scopes: Vec::new(),
    };
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(path_style)
            .build(),
    );
    match buckets(&s3, account, calls).await {
        Ok(rs) => {
            listed.resources.extend(rs);
            for ty in ["aws_s3_bucket", "aws_s3_bucket_public_access_block"] {
                listed.scopes.push(scope(account, None, ty, None));
            }
        }
        Err(e) => {
            for ty in ["aws_s3_bucket", "aws_s3_bucket_public_access_block"] {
                listed
                    .scopes
                    .push(scope(account, None, ty, Some(e.clone())));
            }
        }
    }
    let iam = aws_sdk_iam::Client::new(conf);
    match roles(&iam, account, calls).await {
        Ok(rs) => {
            listed.resources.extend(rs);
            listed
                .scopes
                .push(scope(account, None, "aws_iam_role", None));
        }
        Err(e) => listed
            .scopes
            .push(scope(account, None, "aws_iam_role", Some(e))),
    }
    match policies(&iam, account, calls).await {
        Ok(rs) => {
            listed.resources.extend(rs);
            listed
                .scopes
                .push(scope(account, None, "aws_iam_policy", None));
        }
        Err(e) => listed
            .scopes
            .push(scope(account, None, "aws_iam_policy", Some(e))),
    }
    listed
}

/// Runs a per-bucket call where "not configured" is an answer, not an error.
macro_rules! optional {
    ($calls:expr, $op:literal, $fut:expr) => {{
        $calls.add();
        match $fut.await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code().is_some_and(|c| ABSENT.contains(&c)) => Ok(None),
            Err(e) => Err(api_error($op, e)),
        }
    }};
}

async fn buckets(
    c: &aws_sdk_s3::Client,
    account: &str,
    calls: &Calls,
) -> Result<Vec<Resource>, String> {
    let mut names = Vec::new();
    let mut pages = c.list_buckets().into_paginator().send();
    while let Some(page) = pages.next().await {
        calls.add();
        let page = page.map_err(|e| api_error("s3:ListBuckets", e))?;
        names.extend(
            page.buckets
                .unwrap_or_default()
                .into_iter()
                .filter_map(|b| b.name),
        );
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let tags = optional!(
            calls,
            "s3:GetBucketTagging",
            c.get_bucket_tagging().bucket(&name).send()
        )?;
        let tags: BTreeMap<String, String> = tags
            .map(|t| {
                t.tag_set()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut r = base("aws_s3_bucket", &name, account, None, tags);
        r.name = Some(name.clone());
        r.attributes.insert("bucket".into(), json!(name));
        calls.add();
        let versioning = c
            .get_bucket_versioning()
            .bucket(&name)
            .send()
            .await
            .map_err(|e| api_error("s3:GetBucketVersioning", e))?;
        let enabled = versioning.status().map(|s| s.as_str()) == Some("Enabled");
        let mfa = versioning.mfa_delete().map(|s| s.as_str()) == Some("Enabled");
        r.attributes.insert(
            "versioning".into(),
            json!([{"enabled": enabled, "mfa_delete": mfa}]),
        );
        let sse = optional!(
            calls,
            "s3:GetBucketEncryption",
            c.get_bucket_encryption().bucket(&name).send()
        )?;
        let rules: Vec<Value> = sse
            .as_ref()
            .and_then(|s| s.server_side_encryption_configuration())
            .map(|cfg| {
                cfg.rules()
                    .iter()
                    .map(|rule| {
                        let d = rule.apply_server_side_encryption_by_default();
                        json!({
                            "apply_server_side_encryption_by_default": [{
                                "sse_algorithm": d.map(|d| d.sse_algorithm().as_str()).unwrap_or(""),
                                "kms_master_key_id": d.and_then(|d| d.kms_master_key_id()).unwrap_or(""),
                            }],
                            "bucket_key_enabled": rule.bucket_key_enabled().unwrap_or(false),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let encrypted = !rules.is_empty();
        if encrypted {
            r.attributes.insert(
                "server_side_encryption_configuration".into(),
                json!([{"rule": rules}]),
            );
        }
        let pab = optional!(
            calls,
            "s3:GetPublicAccessBlock",
            c.get_public_access_block().bucket(&name).send()
        )?;
        let block = pab
            .as_ref()
            .and_then(|p| p.public_access_block_configuration());
        let fully_blocked = block.is_some_and(|b| {
            b.block_public_acls() == Some(true)
                && b.ignore_public_acls() == Some(true)
                && b.block_public_policy() == Some(true)
                && b.restrict_public_buckets() == Some(true)
        });
        r.facets = Facets {
            network: None,
            storage: Some(StorageFacet {
                // Public exposure needs the ACL and policy; until they are read, only a
                // full block proves the bucket private, so `public` stays false.
                public: false,
                encrypted: Some(encrypted),
                versioning: Some(enabled),
            }),
        };
        out.push(r);
        if let Some(b) = block {
            let mut p = base(
                "aws_s3_bucket_public_access_block",
                &name,
                account,
                None,
                BTreeMap::new(),
            );
            p.attributes.remove("tags");
            p.name = Some(name.clone());
            p.attributes.insert("bucket".into(), json!(name));
            p.attributes.insert(
                "block_public_acls".into(),
                json!(b.block_public_acls().unwrap_or(false)),
            );
            p.attributes.insert(
                "ignore_public_acls".into(),
                json!(b.ignore_public_acls().unwrap_or(false)),
            );
            p.attributes.insert(
                "block_public_policy".into(),
                json!(b.block_public_policy().unwrap_or(false)),
            );
            p.attributes.insert(
                "restrict_public_buckets".into(),
                json!(b.restrict_public_buckets().unwrap_or(false)),
            );
            p.cloud_default = fully_blocked;
            out.push(p);
        }
    }
    Ok(out)
}

/// An IAM policy document as Terraform stores it: URL-decoded, compact JSON.
fn policy_document(encoded: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
    match serde_json::from_str::<Value>(&decoded) {
        Ok(v) => v.to_string(),
        Err(_) => decoded.into_owned(),
    }
}

async fn roles(
    c: &aws_sdk_iam::Client,
    account: &str,
    calls: &Calls,
) -> Result<Vec<Resource>, String> {
    let mut roles = Vec::new();
    let mut pages = c.list_roles().into_paginator().send();
    while let Some(page) = pages.next().await {
        calls.add();
        let page = page.map_err(|e| api_error("iam:ListRoles", e))?;
        roles.extend(page.roles);
    }
    let mut out = Vec::with_capacity(roles.len());
    for role in roles {
        let name = role.role_name().to_string();
        // ListRoles returns neither tags nor attachments: one call each per role.
        let mut tags = BTreeMap::new();
        let mut pages = c.list_role_tags().role_name(&name).into_paginator().send();
        while let Some(page) = pages.next().await {
            calls.add();
            let page = page.map_err(|e| api_error("iam:ListRoleTags", e))?;
            for t in page.tags() {
                tags.insert(t.key().to_string(), t.value().to_string());
            }
        }
        let mut attached = Vec::new();
        let mut pages = c
            .list_attached_role_policies()
            .role_name(&name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            calls.add();
            let page = page.map_err(|e| api_error("iam:ListAttachedRolePolicies", e))?;
            attached.extend(
                page.attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_string)),
            );
        }
        let mut r = base("aws_iam_role", &name, account, None, tags);
        r.name = Some(name.clone());
        let a = &mut r.attributes;
        a.insert("name".into(), json!(name));
        a.insert("path".into(), json!(role.path()));
        a.insert("arn".into(), json!(role.arn()));
        a.insert(
            "description".into(),
            json!(role.description().unwrap_or("")),
        );
        if let Some(d) = role.max_session_duration() {
            a.insert("max_session_duration".into(), json!(d));
        }
        if let Some(doc) = role.assume_role_policy_document() {
            a.insert("assume_role_policy".into(), json!(policy_document(doc)));
        }
        a.insert("managed_policy_arns".into(), json!(attached));
        out.push(r);
    }
    Ok(out)
}

async fn policies(
    c: &aws_sdk_iam::Client,
    account: &str,
    calls: &Calls,
) -> Result<Vec<Resource>, String> {
    let mut out = Vec::new();
    let mut pages = c
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        calls.add();
        let page = page.map_err(|e| api_error("iam:ListPolicies", e))?;
        for p in page.policies() {
            let Some(arn) = p.arn() else { continue };
            let tags: BTreeMap<String, String> = p
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            let mut r = base("aws_iam_policy", arn, account, None, tags);
            r.name = p.policy_name().map(str::to_string);
            let a = &mut r.attributes;
            a.insert("arn".into(), json!(arn));
            a.insert("name".into(), json!(p.policy_name()));
            a.insert("path".into(), json!(p.path()));
            a.insert("description".into(), json!(p.description().unwrap_or("")));
            out.push(r);
        }
    }
    Ok(out)
}
