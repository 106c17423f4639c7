//! Built-in providers and sinks, by the `kind` that config names them with.

use crate::plugin::Plugin;
use driftwatch_plugin_sdk::{Provider, Sink};
use driftwatch_sink_file::FileSink;

/// Provider kinds linked into this binary.
pub const PROVIDER_KINDS: &[&str] = &["inventory", "aws"];

/// Sink kinds linked into this binary.
pub const SINK_KINDS: &[&str] = &["file"];

/// A fresh, unconfigured provider of `kind`: a built-in one, or one a loaded plugin
/// registers under its name.
pub fn provider(kind: &str, plugins: &[Plugin]) -> Option<Box<dyn Provider>> {
    match kind {
        "inventory" => Some(Box::new(
            driftwatch_provider_inventory::InventoryProvider::default(),
        )),
        "aws" => Some(Box::new(driftwatch_provider_aws::AwsProvider::default())),
        _ => plugins
            .iter()
            .find(|p| p.name == kind)
            .map(|p| Box::new(p.provider()) as Box<dyn Provider>),
    }
}

/// A configured sink of `kind`, or the key path and message of what is wrong.
pub fn sink(
    kind: &str,
    name: &str,
    settings: &serde_json::Value,
) -> Result<Box<dyn Sink>, (String, String)> {
    match kind {
        "file" => FileSink::from_config(name, settings)
            .map(|s| Box::new(s) as Box<dyn Sink>)
            .map_err(|e| (e.path, e.message)),
        other => Err((
            "kind".into(),
            format!(
                "unknown sink kind `{other}` (available: {})",
                SINK_KINDS.join(", ")
            ),
        )),
    }
}
