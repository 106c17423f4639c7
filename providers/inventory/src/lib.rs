//! A driftwatch provider that reads offline inventory exports instead of calling cloud
//! APIs, so drift can be checked without credentials: AWS Config snapshots, Google Cloud
//! Asset Inventory exports and Azure Resource Graph results.
//!
//! Each export is normalised into the SDK's [`Resource`] schema, with attributes in the
//! shape the matching Terraform provider stores in state, so the diff can compare them
//! with declared resources directly.

#![warn(missing_docs)]

mod aws;
pub mod azure;
pub mod gcp;
mod json;

use async_trait::async_trait;
use driftwatch_plugin_sdk::input::{clean_text, quote_input, read_regular_file};
use driftwatch_plugin_sdk::{
    CollectContext, CollectReport, Emit, Provider, ProviderError, ProviderFactory, ProviderInfo,
    Resource, Scope,
};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Largest export file read: exports are read whole, and one this large is already a
/// few hundred thousand resources.
pub const MAX_EXPORT_BYTES: u64 = 2 << 30;

/// The kind of export a provider instance reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// AWS Config configuration items (`aws-config`).
    AwsConfig,
    /// Google Cloud Asset Inventory assets (`gcp-asset-inventory`).
    GcpAssetInventory,
    /// Azure Resource Graph rows (`azure-resource-graph`).
    AzureResourceGraph,
}

impl Format {
    /// Every format, in the order the config schema lists them.
    pub const ALL: [Format; 3] = [
        Format::AwsConfig,
        Format::GcpAssetInventory,
        Format::AzureResourceGraph,
    ];

    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::AwsConfig => "aws-config",
            Format::GcpAssetInventory => "gcp-asset-inventory",
            Format::AzureResourceGraph => "azure-resource-graph",
        }
    }

    /// The `ResourceKey.provider` of the resources this format yields.
    pub fn provider(self) -> &'static str {
        match self {
            Format::AwsConfig => "aws",
            Format::GcpAssetInventory => "gcp",
            Format::AzureResourceGraph => "azure",
        }
    }

    /// The Terraform types this format can emit, and reports scopes for.
    pub fn resource_types(self) -> &'static [&'static str] {
        match self {
            Format::AwsConfig => aws::TYPES,
            Format::GcpAssetInventory => gcp::TYPES,
            Format::AzureResourceGraph => azure::TYPES,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a format name was not recognised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown format {}: expected one of aws-config, gcp-asset-inventory, azure-resource-graph",
    quote_input(.0)
)]
pub struct UnknownFormat(
    /// The name that was given.
    pub String,
);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// The normalised content of one or more export files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Live resources, in the order the exports list them.
    pub resources: Vec<Resource>,
    /// One scope per supported type and account seen (or one per type without account).
    pub scopes: Vec<Scope>,
    /// Skipped items and other non-fatal notes.
    pub warnings: Vec<String>,
}

enum Inner {
    Aws(aws::Reader),
    Gcp(gcp::Reader),
    Azure(azure::Reader),
}

/// Accumulates export files of one format, so records of one resource spread over several
/// files (history files, separate IAM-policy exports) are merged before mapping.
pub struct ExportReader {
    format: Format,
    inner: Inner,
}

impl ExportReader {
    /// Starts an empty reader for `format`.
    pub fn new(format: Format) -> Self {
        let inner = match format {
            Format::AwsConfig => Inner::Aws(aws::Reader::default()),
            Format::GcpAssetInventory => Inner::Gcp(gcp::Reader::default()),
            Format::AzureResourceGraph => Inner::Azure(azure::Reader::default()),
        };
        Self { format, inner }
    }

    /// Reads one file's bytes; `source_name` names it in errors and warnings.
    pub fn add(&mut self, source_name: &str, bytes: &[u8]) -> Result<(), ProviderError> {
        match &mut self.inner {
            Inner::Aws(r) => r.add(source_name, bytes),
            Inner::Gcp(r) => r.add(source_name, bytes),
            Inner::Azure(r) => r.add(source_name, bytes),
        }
    }

    /// Maps everything read into resources, scopes and warnings.
    pub fn finish(self) -> Parsed {
        let format = self.format;
        let provider = format.provider();
        let types = format.resource_types();
        // AWS Config knows which (account, region, type) it recorded: it says so itself.
        let mut claimed = None;
        let (resources, accounts, warnings, failure, skip_type) = match self.inner {
            Inner::Aws(r) => {
                let (res, acc, warn, covered) = r.finish();
                claimed = Some(covered);
                (res, acc, warn, None, None)
            }
            Inner::Gcp(r) => {
                let (res, acc, warn) = r.finish();
                (res, acc, warn, None, None)
            }
            Inner::Azure(r) => {
                let f = r.finish();
                // Resource groups live in another Resource Graph table than the resources,
                // so an export without any says nothing about them.
                let skip = (!f.has_resource_groups).then_some("azurerm_resource_group");
                (f.resources, f.accounts, f.warnings, f.truncated, skip)
            }
        };
        let scopes = claimed
            .unwrap_or_else(|| scopes(provider, types, &resources, &accounts, failure, skip_type));
        // Warnings quote the export (types, ids) and reach stderr and reports.
        let warnings = warnings
            .into_iter()
            .map(|w| clean_text(&w, 1000).into_owned())
            .collect();
        Parsed {
            resources,
            scopes,
            warnings,
        }
    }
}

/// Types whose listing comes with another type's records: a bucket record carries its
/// public access block, a virtual network record its subnets.
const IMPLIED: &[(&str, &str)] = &[
    ("aws_s3_bucket", "aws_s3_bucket_public_access_block"),
    ("azurerm_virtual_network", "azurerm_subnet"),
];

/// Claims a complete listing only for the (account, type) pairs the export shows records
/// of. An AWS Config recorder or a Resource Graph query may cover only some types, and a
/// type the export never mentions must not turn every declared resource of it into a
/// false `missing`. A truncated export claims nothing complete.
fn scopes(
    provider: &str,
    types: &[&str],
    resources: &[Resource],
    accounts: &BTreeSet<String>,
    failure: Option<String>,
    skip_type: Option<&str>,
) -> Vec<Scope> {
    if let Some(err) = failure {
        let accounts: Vec<Option<&String>> = if accounts.is_empty() {
            vec![None]
        } else {
            accounts.iter().map(Some).collect()
        };
        let mut out = Vec::with_capacity(types.len() * accounts.len());
        for ty in types.iter().filter(|t| Some(**t) != skip_type) {
            for acct in &accounts {
                let mut s = Scope::complete(provider, ty);
                s.account = acct.cloned();
                s.complete = false;
                s.error = Some(err.clone());
                out.push(s);
            }
        }
        return out;
    }
    let mut seen: BTreeSet<(Option<&str>, &str)> = BTreeSet::new();
    for r in resources {
        let ty = r.key.r#type.as_str();
        seen.insert((r.account.as_deref(), ty));
        for (from, implied) in IMPLIED {
            if *from == ty {
                seen.insert((r.account.as_deref(), implied));
            }
        }
    }
    seen.into_iter()
        .filter(|(_, ty)| types.contains(ty) && Some(*ty) != skip_type)
        .map(|(acct, ty)| {
            let mut s = Scope::complete(provider, ty);
            s.account = acct.map(str::to_string);
            s
        })
        .collect()
}

/// Normalises one export file: the entry point for tests, benchmarks and tools.
pub fn parse_export(
    format: Format,
    source_name: &str,
    bytes: &[u8],
) -> Result<Parsed, ProviderError> {
    let mut reader = ExportReader::new(format);
    reader.add(source_name, bytes)?;
    Ok(reader.finish())
}

/// Validated settings of a configured provider.
#[derive(Debug, Clone)]
struct Settings {
    format: Format,
    paths: Vec<String>,
    config_dir: Option<PathBuf>,
}

/// Builds `inventory` providers (`kind = "inventory"`) from their config table.
#[derive(Debug, Clone, Copy, Default)]
pub struct InventoryFactory;

/// The `inventory` provider: reads the export files its config names.
#[derive(Debug, Clone)]
pub struct InventoryProvider {
    settings: Settings,
}

impl ProviderFactory for InventoryFactory {
    // The table is checked key by key by `parse_settings`, whose messages say what each
    // key expects in terms of export formats and globs.
    type Config = Value;

    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: "inventory".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: Format::ALL
                .iter()
                .flat_map(|f| f.resource_types().iter().map(|t| t.to_string()))
                .collect(),
            config_schema: Some(InventoryProvider::config_schema()),
        }
    }

    fn validate(&self, config: &Value) -> Result<(), ProviderError> {
        parse_settings(config).map(|_| ())
    }

    fn build(&self, config: Value) -> Result<Box<dyn Provider>, ProviderError> {
        Ok(Box::new(InventoryProvider {
            settings: parse_settings(&config)?,
        }))
    }
}

impl InventoryProvider {
    /// The JSON Schema of the provider's config table.
    pub fn config_schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "inventory provider",
            "description": "Reads offline inventory exports (no cloud credentials).",
            "type": "object",
            "properties": {
                "format": {
                    "description": "Kind of export the files hold.",
                    "type": "string",
                    "enum": Format::ALL.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
                },
                "paths": {
                    "description": "Export files or glob patterns (`exports/**/*.json`), relative to the config file.",
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "minItems": 1,
                },
                "config_dir": {
                    "description": "Folder relative paths are resolved against; set by the host.",
                    "type": "string",
                },
            },
            "required": ["format", "paths"],
            "additionalProperties": false,
        })
    }

    /// The files the configured paths and globs name, each once, in config order.
    fn files(settings: &Settings) -> Result<Vec<PathBuf>, ProviderError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for pattern in &settings.paths {
            let relative = Path::new(pattern).is_relative();
            let base = settings.config_dir.as_deref().filter(|_| relative);
            let found: Vec<PathBuf> = if is_glob(pattern) {
                // The folder is literal text, not part of the pattern.
                let full = match base {
                    Some(dir) => format!(
                        "{}/{pattern}",
                        glob::Pattern::escape(&dir.to_string_lossy())
                    ),
                    None => pattern.clone(),
                };
                let paths = glob::glob(&full).map_err(|e| ProviderError::Input {
                    source_name: pattern.clone(),
                    message: format!("invalid glob pattern: {e}"),
                })?;
                let mut files: Vec<PathBuf> = Vec::new();
                for p in paths {
                    let p = p.map_err(|e| ProviderError::Input {
                        source_name: e.path().display().to_string(),
                        message: format!("cannot read: {}", e.error()),
                    })?;
                    if p.is_file() {
                        files.push(p);
                    }
                }
                if files.is_empty() {
                    return Err(ProviderError::Input {
                        source_name: pattern.clone(),
                        message: format!(
                            "no file matches this pattern (searched {})",
                            quote_input(&full)
                        ),
                    });
                }
                files.sort();
                files
            } else {
                let path = match base {
                    Some(dir) => dir.join(pattern),
                    None => PathBuf::from(pattern),
                };
                if path.is_dir() {
                    return Err(ProviderError::Input {
                        source_name: path.display().to_string(),
                        message: format!(
                            "is a folder: name files or use a glob such as {}",
                            quote_input(&format!("{pattern}/**/*.json"))
                        ),
                    });
                }
                if !path.exists() {
                    return Err(ProviderError::Input {
                        source_name: path.display().to_string(),
                        message: format!(
                            "file not found (from paths entry {})",
                            quote_input(pattern)
                        ),
                    });
                }
                vec![path]
            };
            for f in found {
                if seen.insert(f.clone()) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }
}

fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

fn config_err(path: impl Into<String>, message: impl Into<String>) -> ProviderError {
    ProviderError::Config {
        path: path.into(),
        message: message.into(),
    }
}

fn parse_settings(config: &Value) -> Result<Settings, ProviderError> {
    let Value::Object(m) = config else {
        return Err(config_err(
            "",
            format!("expected a table, found {}", json::kind(config)),
        ));
    };
    if let Some(k) = m
        .keys()
        .find(|k| !matches!(k.as_str(), "format" | "paths" | "config_dir"))
    {
        return Err(config_err(
            k.as_str(),
            "unknown key: the inventory provider accepts `format` and `paths`",
        ));
    }
    let format = match m.get("format") {
        None | Some(Value::Null) => {
            return Err(config_err(
                "format",
                "missing: set it to aws-config, gcp-asset-inventory or azure-resource-graph",
            ))
        }
        Some(Value::String(s)) => s
            .parse::<Format>()
            .map_err(|e| config_err("format", e.to_string()))?,
        Some(other) => {
            return Err(config_err(
                "format",
                format!("expected a string, found {}", json::kind(other)),
            ))
        }
    };
    let paths = match m.get("paths") {
        None | Some(Value::Null) => {
            return Err(config_err(
                "paths",
                "missing: list the export files or globs to read",
            ))
        }
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(config_err(
                "paths",
                "is empty: list at least one export file or glob",
            ))
        }
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) if !s.trim().is_empty() => {
                        if is_glob(s) {
                            glob::Pattern::new(s).map_err(|e| {
                                config_err(format!("paths[{i}]"), format!("invalid glob: {e}"))
                            })?;
                        }
                        out.push(s.clone());
                    }
                    Value::String(_) => {
                        return Err(config_err(format!("paths[{i}]"), "is an empty string"))
                    }
                    other => {
                        return Err(config_err(
                            format!("paths[{i}]"),
                            format!("expected a string, found {}", json::kind(other)),
                        ))
                    }
                }
            }
            out
        }
        Some(other) => {
            return Err(config_err(
                "paths",
                format!("expected a list of strings, found {}", json::kind(other)),
            ))
        }
    };
    let config_dir = match m.get("config_dir") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(PathBuf::from(s)),
        Some(other) => {
            return Err(config_err(
                "config_dir",
                format!("expected a string, found {}", json::kind(other)),
            ))
        }
    };
    Ok(Settings {
        format,
        paths,
        config_dir,
    })
}

#[async_trait]
impl Provider for InventoryProvider {
    async fn collect(
        &self,
        ctx: &CollectContext,
        out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError> {
        let settings = &self.settings;
        let files = Self::files(settings)?;
        let mut reader = ExportReader::new(settings.format);
        for file in &files {
            if ctx.is_cancelled() {
                return Err(ProviderError::Cancelled);
            }
            let name = file.display().to_string();
            // Refuses a FIFO or a device before opening it: either would hang the scan or
            // fill its memory.
            let bytes =
                read_regular_file(file, MAX_EXPORT_BYTES).map_err(|e| ProviderError::Input {
                    source_name: name.clone(),
                    message: e.to_string(),
                })?;
            reader.add(&name, &bytes)?;
        }
        let Parsed {
            resources,
            scopes,
            warnings,
        } = reader.finish();
        ctx.emit_all(out, resources)?;
        Ok(CollectReport {
            scopes,
            api_calls: 0,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_escape_and_bound_values_from_the_export() {
        let rtype = format!("\u{1b}[31m\nforged line{}", "x".repeat(1_000_000));
        let export = json!([{ "resourceType": rtype }]).to_string();
        let e = parse_export(Format::AwsConfig, "export.json", export.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.len() < 1200, "{} bytes", e.len());
        assert!(!e.contains('\u{1b}') && !e.contains('\n'), "{e}");
        assert!(e.contains("\\u{1b}[31m\\nforged line"), "{e}");
        let e = "a\u{1b}b\nc".parse::<Format>().unwrap_err().to_string();
        assert!(e.starts_with("unknown format `a\\u{1b}b\\nc`"), "{e}");
    }
}
