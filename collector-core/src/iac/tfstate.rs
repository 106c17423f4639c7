//! Terraform state reader: format v4, as written by Terraform 0.12 to 1.x and OpenTofu.

use super::{Declared, IacError};
use driftwatch_plugin_sdk::ResourceKey;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

pub use super::secrets::MASK;
use driftwatch_plugin_sdk::input::{clean_text, quote_input};

/// The longest parser message shown: serde quotes whole values from the file.
const MESSAGE_CHARS: usize = 300;

#[derive(Deserialize)]
struct Probe {
    version: Option<Value>,
}

#[derive(Deserialize)]
struct RawState {
    version: Option<u64>,
    terraform_version: Option<String>,
    #[serde(default)]
    resources: Option<Vec<RawResource>>,
}

#[derive(Deserialize)]
struct RawResource {
    #[serde(default)]
    module: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(rename = "type")]
    r#type: String,
    name: String,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    instances: Vec<RawInstance>,
}

#[derive(Deserialize)]
struct RawInstance {
    #[serde(default)]
    index_key: Option<Value>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    deposed: Option<String>,
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
    #[serde(default)]
    attributes_flat: Option<Map<String, Value>>,
    #[serde(default)]
    sensitive_attributes: Option<Value>,
}

/// Metadata of one state file read.
#[derive(Debug, Clone)]
pub struct StateFile {
    /// Path or URL it was read from.
    pub source: Arc<str>,
    /// Terraform or OpenTofu version that wrote it.
    pub terraform_version: Option<String>,
    /// Managed resource instances it declares.
    pub resources: Vec<Declared>,
}

/// Parses one state document; `source` names it in errors and in every declared resource.
pub fn parse_state(source: &str, bytes: &[u8]) -> Result<StateFile, IacError> {
    let err = |message: String| IacError::InvalidState {
        source_name: source.to_string(),
        message,
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(err("the file is empty".into()));
    }
    let raw: RawState = match serde_json::from_slice(bytes) {
        Ok(raw) => raw,
        Err(e) => return Err(err(explain_parse_error(bytes, &e))),
    };
    let version = raw
        .version
        .ok_or_else(|| err("not a Terraform state: it has no top-level `version` field".into()))?;
    match version {
        4 => {}
        0..=3 => {
            return Err(err(format!(
                "state format version {version} (Terraform 0.11 or older) is not supported; \
                 upgrade it by running `terraform refresh` with Terraform 0.12 or newer"
            )))
        }
        _ => {
            return Err(err(format!(
                "state format version {version} is newer than this driftwatch understands (4); \
                 upgrade driftwatch"
            )))
        }
    }
    check_terraform_version(raw.terraform_version.as_deref()).map_err(err)?;
    let source: Arc<str> = Arc::from(source);
    let mut resources = Vec::new();
    for r in raw.resources.unwrap_or_default() {
        if r.mode.as_deref().unwrap_or("managed") != "managed" {
            continue;
        }
        let provider = provider_of(r.provider.as_deref(), &r.r#type);
        let base = match &r.module {
            Some(m) if !m.is_empty() => format!("{m}.{}.{}", r.r#type, r.name),
            _ => format!("{}.{}", r.r#type, r.name),
        };
        for inst in r.instances {
            let mut address = base.clone();
            match &inst.index_key {
                Some(Value::Number(n)) => address.push_str(&format!("[{n}]")),
                Some(Value::String(s)) => {
                    address.push_str(&format!("[{}]", Value::String(s.clone())))
                }
                _ => {}
            }
            let deposed = inst.deposed.filter(|d| !d.is_empty());
            if let Some(d) = &deposed {
                address.push_str(&format!(" (deposed {d})"));
            }
            let (mut attributes, flat) = match (inst.attributes, inst.attributes_flat) {
                (Some(a), _) => (a, false),
                (None, Some(a)) => (a, true),
                (None, None) => (Map::new(), false),
            };
            let id = match attributes.get("id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            let masked = super::secrets::mask_declared(
                &r.r#type,
                &mut attributes,
                inst.sensitive_attributes.as_ref(),
                flat,
            );
            resources.push(Declared {
                key: ResourceKey::new(provider.clone(), r.r#type.clone(), id),
                address,
                source: source.clone(),
                attributes,
                masked,
                tainted: inst.status.as_deref() == Some("tainted"),
                deposed,
            });
        }
    }
    Ok(StateFile {
        source,
        terraform_version: raw.terraform_version,
        resources,
    })
}

/// Turns a serde error into a message that says what kind of file this looked like.
fn explain_parse_error(bytes: &[u8], e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => format!(
            "the file ends early (truncated?) at line {}, column {}",
            e.line(),
            e.column()
        ),
        Category::Syntax => format!(
            "not valid JSON at line {}, column {}: {}",
            e.line(),
            e.column(),
            clean_text(&e.to_string(), MESSAGE_CHARS)
        ),
        _ => match serde_json::from_slice::<Probe>(bytes) {
            Ok(Probe { version: Some(v) }) if v != 4 => {
                format!("state format version {v} is not supported (driftwatch reads version 4)")
            }
            Ok(Probe { version: None }) => {
                "not a Terraform state: it has no top-level `version` field".into()
            }
            // serde quotes the offending value, which can be anything the file holds.
            Ok(_) => format!(
                "malformed state v4: {}",
                clean_text(&e.to_string(), MESSAGE_CHARS)
            ),
            Err(_) => "not a Terraform state: expected a JSON object".into(),
        },
    }
}

/// Rejects versions that cannot have written a v4 state, and strings that are no version.
fn check_terraform_version(v: Option<&str>) -> Result<(), String> {
    let Some(v) = v else { return Ok(()) };
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<Option<u64>> = core.split('.').map(|p| p.parse().ok()).collect();
    match parts.as_slice() {
        [Some(major), Some(minor), Some(_)] => {
            if (*major, *minor) < (0, 11) {
                Err(format!(
                    "written by Terraform {}; driftwatch reads states of Terraform 0.11 and newer",
                    quote_input(v)
                ))
            } else {
                Ok(())
            }
        }
        _ => Err(format!(
            "`terraform_version` is {}, which is not a version (expected e.g. \"1.5.7\")",
            quote_input(v)
        )),
    }
}

/// Maps the state's provider reference to driftwatch's provider name.
///
/// Accepts `provider.aws`, `provider.aws.alias`, `module.x.provider.aws` (0.12) and
/// `provider["registry.terraform.io/hashicorp/aws"].alias` (0.13+, OpenTofu).
pub fn provider_of(reference: Option<&str>, r#type: &str) -> String {
    let tf_name = reference.and_then(|r| {
        if let Some(start) = r.find("provider[\"") {
            let rest = &r[start + 10..];
            let end = rest.find('"')?;
            rest[..end].rsplit('/').next().map(str::to_string)
        } else if let Some(start) = r.find("provider.") {
            r[start + 9..].split('.').next().map(str::to_string)
        } else {
            None
        }
    });
    let tf_name = tf_name.unwrap_or_else(|| r#type.split('_').next().unwrap_or(r#type).to_string());
    normalise_provider(&tf_name).to_string()
}

/// driftwatch's provider name for a Terraform provider name (`azurerm` is `azure`).
pub fn normalise_provider(tf_name: &str) -> &str {
    match tf_name {
        "azurerm" => "azure",
        "google" | "google-beta" => "gcp",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_references() {
        assert_eq!(provider_of(Some("provider.aws"), "aws_vpc"), "aws");
        assert_eq!(provider_of(Some("provider.aws.west"), "aws_vpc"), "aws");
        assert_eq!(
            provider_of(Some("module.a.provider.google"), "google_x"),
            "gcp"
        );
        assert_eq!(
            provider_of(
                Some("provider[\"registry.terraform.io/hashicorp/azurerm\"].alt"),
                "azurerm_x"
            ),
            "azure"
        );
        assert_eq!(
            provider_of(
                Some("provider[\"registry.opentofu.org/hashicorp/google-beta\"]"),
                "google_x"
            ),
            "gcp"
        );
        assert_eq!(provider_of(None, "github_repository"), "github");
    }

    #[test]
    fn versions() {
        assert!(check_terraform_version(Some("1.5.7")).is_ok());
        assert!(check_terraform_version(Some("1.9.0-beta1")).is_ok());
        assert!(check_terraform_version(Some("0.11.14")).is_ok());
        assert!(check_terraform_version(Some("0.10.26")).is_err());
        assert!(check_terraform_version(Some("invalid")).is_err());
    }

    #[test]
    fn addresses_modes_and_masks() {
        let state = br#"{"version":4,"terraform_version":"1.6.0","resources":[
          {"mode":"data","type":"aws_ami","name":"x","provider":"provider.aws","instances":[{"attributes":{"id":"ami-1"}}]},
          {"module":"module.net[\"eu\"]","mode":"managed","type":"aws_security_group","name":"web",
           "provider":"provider[\"registry.terraform.io/hashicorp/aws\"]","each":"map",
           "instances":[{"index_key":"a","attributes":{"id":"sg-1"}},
                        {"index_key":"b","status":"tainted","attributes":{"id":"sg-2"}}]},
          {"mode":"managed","type":"aws_db_instance","name":"db","provider":"provider.aws","instances":[
             {"index_key":0,"attributes":{"id":"db-1","password":"hunter2","nested":{"k":"v"}},
              "sensitive_attributes":[[{"type":"get_attr","value":"nested"},{"type":"index","value":{"value":"k","type":"string"}}]]},
             {"index_key":0,"deposed":"00ab","attributes":{"id":"db-0"}}]}
        ]}"#;
        let f = parse_state("s.tfstate", state).unwrap();
        let addrs: Vec<_> = f.resources.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(
            addrs,
            [
                "module.net[\"eu\"].aws_security_group.web[\"a\"]",
                "module.net[\"eu\"].aws_security_group.web[\"b\"]",
                "aws_db_instance.db[0]",
                "aws_db_instance.db[0] (deposed 00ab)"
            ]
        );
        assert!(f.resources[1].tainted);
        let db = &f.resources[2];
        assert_eq!(db.attributes["password"], MASK);
        assert_eq!(db.attributes["nested"]["k"], MASK);
        assert!(db.masked.contains(&"password".to_string()));
        assert!(db.masked.contains(&"nested.k".to_string()));
        let text = serde_json::to_string(&f.resources[2].attributes).unwrap();
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn messages_quote_escape_and_cut_what_the_file_holds() {
        let huge = "9".repeat(1_000_000);
        let cases = [
            format!(
                r#"{{"version": 4, "terraform_version": "x[31m
{huge}"}}"#
            ),
            format!(r#"{{"version": 4, "terraform_version": "0.9.{huge}"}}"#),
            format!(r#"{{"version": 4, "resources": [{{"type": 1, "name": "]0;pwn{huge}"}}]}}"#),
            format!(r#"{{"version": 4, "resources": "{huge}"}}"#),
        ];
        for state in cases {
            let e = parse_state("s.tfstate", state.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.len() < 600, "{} bytes: {}", e.len(), &e[..600]);
            assert!(!e.contains('\u{1b}') && !e.contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn rejects_bad_files() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"{\"version\": 4, \"resources\": [", "truncated"),
            (b"{nope", "not valid JSON"),
            (b"[1,2]", "expected a JSON object"),
            (b"{\"hello\": 1}", "no top-level `version`"),
            (b"{\"version\": 3, \"modules\": []}", "version 3"),
            (b"{\"version\": 5, \"resources\": []}", "newer"),
        ];
        for (bytes, needle) in cases {
            let e = parse_state("bad.tfstate", bytes).unwrap_err().to_string();
            assert!(e.contains("bad.tfstate"), "{e}");
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }
}
