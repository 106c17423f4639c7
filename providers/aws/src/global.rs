//! Account-wide listings: S3 buckets and IAM roles, role policy attachments and policies.
//!
//! S3 and IAM have no list call that returns a bucket's settings or a role's tags and
//! attachments, so those come from one call each per bucket or role, run `fanout` at a
//! time and through the same rate limiter as the list calls.

use crate::client::Clients;
use crate::map::base;
use crate::{api_error, Listed};
use aws_sdk_s3::error::ProvideErrorMetadata;
use driftwatch_plugin_sdk::{Facets, Resource, StorageFacet};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// Error codes that mean "this bucket has none of that configuration", not a failure.
const ABSENT: &[&str] = &[
    "NoSuchTagSet",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchPublicAccessBlockConfiguration",
    "NoSuchBucketPolicy",
];

/// ACL grantees that make a bucket public.
const PUBLIC_GROUPS: &[&str] = &[
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
];

/// Lists buckets and IAM; each type is its own (global) scope.
pub async fn list_global(c: &Clients, fanout: usize) -> Listed {
    let mut listed = Listed::new();
    let (buckets, roles, policies) =
        tokio::join!(buckets(c, fanout), roles(c, fanout), policies(c, fanout));
    let account = c.account.as_str();
    match buckets {
        Ok((b, pab)) => {
            listed.record(account, None, "aws_s3_bucket", Ok(b));
            listed.record(account, None, "aws_s3_bucket_public_access_block", Ok(pab));
        }
        Err(e) => {
            listed.record(account, None, "aws_s3_bucket", Err(e.clone()));
            listed.record(account, None, "aws_s3_bucket_public_access_block", Err(e));
        }
    }
    match roles {
        Ok((r, att)) => {
            listed.record(account, None, "aws_iam_role", Ok(r));
            listed.record(account, None, "aws_iam_role_policy_attachment", Ok(att));
        }
        Err(e) => {
            listed.record(account, None, "aws_iam_role", Err(e.clone()));
            listed.record(account, None, "aws_iam_role_policy_attachment", Err(e));
        }
    }
    listed.record(account, None, "aws_iam_policy", policies);
    listed
}

/// Runs a per-bucket call where "not configured" is an answer, not an error.
async fn optional<T, E>(
    op: &str,
    call: impl std::future::Future<Output = Result<T, aws_sdk_s3::error::SdkError<E>>>,
) -> Result<Option<T>, String>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match call.await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code().is_some_and(|c| ABSENT.contains(&c)) => Ok(None),
        Err(e) => Err(api_error(op, e)),
    }
}

type Buckets = (Vec<Resource>, Vec<Resource>);

async fn buckets(c: &Clients, fanout: usize) -> Result<Buckets, String> {
    let s3 = c.s3_in(&c.region);
    let names: Result<Vec<(String, String)>, String> = async {
        list_all!(
            c,
            "s3",
            "s3:ListBuckets",
            s3.list_buckets().max_buckets(1000).into_paginator().send(),
            |page| page.buckets().iter().filter_map(|b| {
                let region = b.bucket_region().unwrap_or(&c.region);
                Some((b.name()?.to_string(), region.to_string()))
            })
        )
    }
    .await;
    let names = names?;
    let mut clients: HashMap<String, aws_sdk_s3::Client> = HashMap::new();
    for (_, region) in &names {
        clients
            .entry(region.clone())
            .or_insert_with(|| c.s3_in(region));
    }
    let results: Vec<Result<Buckets, String>> = stream::iter(names)
        .map(|(name, region)| bucket(c, clients[&region].clone(), name))
        .buffer_unordered(fanout.max(1))
        .collect()
        .await;
    let (mut all, mut blocks) = (Vec::new(), Vec::new());
    for r in results {
        let (b, p) = r?;
        all.extend(b);
        blocks.extend(p);
    }
    Ok((all, blocks))
}

async fn bucket(c: &Clients, s3: aws_sdk_s3::Client, name: String) -> Result<Buckets, String> {
    let (tags, versioning, sse, pab, acl, policy) = tokio::join!(
        async {
            c.take("s3").await;
            optional(
                "s3:GetBucketTagging",
                s3.get_bucket_tagging().bucket(&name).send(),
            )
            .await
        },
        async {
            c.take("s3").await;
            s3.get_bucket_versioning()
                .bucket(&name)
                .send()
                .await
                .map_err(|e| api_error("s3:GetBucketVersioning", e))
        },
        async {
            c.take("s3").await;
            optional(
                "s3:GetBucketEncryption",
                s3.get_bucket_encryption().bucket(&name).send(),
            )
            .await
        },
        async {
            c.take("s3").await;
            optional(
                "s3:GetPublicAccessBlock",
                s3.get_public_access_block().bucket(&name).send(),
            )
            .await
        },
        async {
            c.take("s3").await;
            s3.get_bucket_acl()
                .bucket(&name)
                .send()
                .await
                .map_err(|e| api_error("s3:GetBucketAcl", e))
        },
        async {
            c.take("s3").await;
            optional(
                "s3:GetBucketPolicy",
                s3.get_bucket_policy().bucket(&name).send(),
            )
            .await
        },
    );
    let (tags, versioning, sse, pab, acl, policy) = (tags?, versioning?, sse?, pab?, acl?, policy?);
    let tags: BTreeMap<String, String> = tags
        .map(|t| {
            t.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let mut r = base("aws_s3_bucket", &name, &c.account, None, tags);
    r.name = Some(name.clone());
    r.attributes.insert("bucket".into(), json!(name));
    let enabled = versioning.status().map(|s| s.as_str()) == Some("Enabled");
    let mfa = versioning.mfa_delete().map(|s| s.as_str()) == Some("Enabled");
    r.attributes.insert(
        "versioning".into(),
        json!([{"enabled": enabled, "mfa_delete": mfa}]),
    );
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
    let block = pab
        .as_ref()
        .and_then(|p| p.public_access_block_configuration());
    let flag = |f: fn(&aws_sdk_s3::types::PublicAccessBlockConfiguration) -> Option<bool>| {
        block.and_then(f).unwrap_or(false)
    };
    let acl_public = acl.grants().iter().any(|g| {
        g.grantee()
            .and_then(|g| g.uri())
            .is_some_and(|u| PUBLIC_GROUPS.contains(&u))
    });
    let policy_public = policy
        .as_ref()
        .and_then(|p| p.policy())
        .is_some_and(driftwatch_plugin_sdk::schema::bucket_policy_is_public);
    // What S3 itself enforces: an ignored ACL or a restricted policy grants nothing.
    let public = (acl_public && !flag(|b| b.ignore_public_acls()))
        || (policy_public && !flag(|b| b.restrict_public_buckets()));
    r.facets = Facets {
        network: None,
        storage: Some(StorageFacet {
            public,
            encrypted: Some(encrypted),
            versioning: Some(enabled),
        }),
    };
    let mut blocks = Vec::new();
    if let Some(b) = block {
        let mut p = base(
            "aws_s3_bucket_public_access_block",
            &name,
            &c.account,
            None,
            BTreeMap::new(),
        );
        p.attributes.remove("tags");
        p.name = Some(name.clone());
        let a = &mut p.attributes;
        a.insert("bucket".into(), json!(name));
        for (key, v) in [
            ("block_public_acls", b.block_public_acls()),
            ("ignore_public_acls", b.ignore_public_acls()),
            ("block_public_policy", b.block_public_policy()),
            ("restrict_public_buckets", b.restrict_public_buckets()),
        ] {
            a.insert(key.into(), json!(v.unwrap_or(false)));
        }
        p.cloud_default = [
            "block_public_acls",
            "ignore_public_acls",
            "block_public_policy",
            "restrict_public_buckets",
        ]
        .iter()
        .all(|k| a[*k] == json!(true));
        blocks.push(p);
    }
    Ok((vec![r], blocks))
}

/// An IAM policy document as Terraform stores it: URL-decoded, compact JSON.
fn policy_document(encoded: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
    match serde_json::from_str::<Value>(&decoded) {
        Ok(v) => v.to_string(),
        Err(_) => decoded.into_owned(),
    }
}

type Roles = (Vec<Resource>, Vec<Resource>);

async fn roles(c: &Clients, fanout: usize) -> Result<Roles, String> {
    let iam = c.iam();
    let roles: Result<Vec<aws_sdk_iam::types::Role>, String> = async {
        list_all!(
            c,
            "iam",
            "iam:ListRoles",
            iam.list_roles().max_items(1000).into_paginator().send(),
            |page| page.roles
        )
    }
    .await;
    let results: Vec<Result<Roles, String>> = stream::iter(roles?)
        .map(|role| self::role(c, &iam, role))
        .buffer_unordered(fanout.max(1))
        .collect()
        .await;
    let (mut all, mut attachments) = (Vec::new(), Vec::new());
    for r in results {
        let (role, att) = r?;
        all.extend(role);
        attachments.extend(att);
    }
    Ok((all, attachments))
}

async fn role(
    c: &Clients,
    iam: &aws_sdk_iam::Client,
    role: aws_sdk_iam::types::Role,
) -> Result<Roles, String> {
    let name = role.role_name().to_string();
    let (tags, attached): (Result<Vec<_>, String>, Result<Vec<_>, String>) = tokio::join!(
        async {
            list_all!(
                c,
                "iam",
                "iam:ListRoleTags",
                iam.list_role_tags()
                    .role_name(&name)
                    .max_items(1000)
                    .into_paginator()
                    .send(),
                |page| page
                    .tags
                    .into_iter()
                    .map(|t| (t.key, t.value))
                    .collect::<Vec<_>>()
            )
        },
        async {
            list_all!(
                c,
                "iam",
                "iam:ListAttachedRolePolicies",
                iam.list_attached_role_policies()
                    .role_name(&name)
                    .max_items(1000)
                    .into_paginator()
                    .send(),
                |page| page
                    .attached_policies
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| p.policy_arn)
            )
        },
    );
    let tags: Vec<(String, String)> = tags?;
    let attached: Vec<String> = attached?;
    let mut r = base(
        "aws_iam_role",
        &name,
        &c.account,
        None,
        tags.into_iter().collect(),
    );
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
    // Terraform ids attachments randomly (`role-2024…`); role and policy are what identify one.
    let attachments = attached
        .iter()
        .map(|arn| {
            let mut p = base(
                "aws_iam_role_policy_attachment",
                &format!("{name}/{arn}"),
                &c.account,
                None,
                BTreeMap::new(),
            );
            p.attributes.remove("tags");
            p.name = Some(format!("{name} ← {arn}"));
            p.attributes.insert("role".into(), json!(name));
            p.attributes.insert("policy_arn".into(), json!(arn));
            p
        })
        .collect();
    Ok((vec![r], attachments))
}

async fn policies(c: &Clients, fanout: usize) -> Result<Vec<Resource>, String> {
    let iam = c.iam();
    let listed: Result<Vec<aws_sdk_iam::types::Policy>, String> = async {
        list_all!(
            c,
            "iam",
            "iam:ListPolicies",
            iam.list_policies()
                .scope(aws_sdk_iam::types::PolicyScopeType::Local)
                .max_items(1000)
                .into_paginator()
                .send(),
            |page| page.policies.unwrap_or_default()
        )
    }
    .await;
    let results: Vec<Result<Option<Resource>, String>> = stream::iter(listed?)
        .map(|p| policy(c, &iam, p))
        .buffer_unordered(fanout.max(1))
        .collect()
        .await;
    results.into_iter().filter_map(Result::transpose).collect()
}

/// One customer-managed policy. `ListPolicies` returns neither tags nor the document, so
/// both come from a call of their own: without them every tagged policy would look
/// untagged, and an edited document would never show.
async fn policy(
    c: &Clients,
    iam: &aws_sdk_iam::Client,
    p: aws_sdk_iam::types::Policy,
) -> Result<Option<Resource>, String> {
    let Some(arn) = p.arn().map(str::to_string) else {
        return Ok(None);
    };
    let (tags, document): (Result<Vec<_>, String>, Result<Option<String>, String>) = tokio::join!(
        async {
            list_all!(
                c,
                "iam",
                "iam:ListPolicyTags",
                iam.list_policy_tags()
                    .policy_arn(&arn)
                    .max_items(1000)
                    .into_paginator()
                    .send(),
                |page| page
                    .tags
                    .into_iter()
                    .map(|t| (t.key, t.value))
                    .collect::<Vec<_>>()
            )
        },
        async {
            let Some(version) = p.default_version_id() else {
                return Ok(None);
            };
            c.take("iam").await;
            let out = iam
                .get_policy_version()
                .policy_arn(&arn)
                .version_id(version)
                .send()
                .await
                .map_err(|e| api_error("iam:GetPolicyVersion", e))?;
            Ok(out
                .policy_version()
                .and_then(|v| v.document())
                .map(policy_document))
        },
    );
    let mut r = base(
        "aws_iam_policy",
        &arn,
        &c.account,
        None,
        tags?.into_iter().collect(),
    );
    r.name = p.policy_name().map(str::to_string);
    let a = &mut r.attributes;
    a.insert("arn".into(), json!(arn));
    a.insert("name".into(), json!(p.policy_name()));
    a.insert("path".into(), json!(p.path()));
    // ListPolicies leaves the description out (only GetPolicy has it); it cannot change
    // after creation, so it is compared only where the answer carries it.
    if let Some(d) = p.description() {
        a.insert("description".into(), json!(d));
    }
    if let Some(doc) = document? {
        a.insert("policy".into(), json!(doc));
    }
    if let Some(id) = p.policy_id() {
        a.insert("policy_id".into(), json!(id));
    }
    Ok(Some(r))
}
