//! A provider plugin that panics in every call. `DW_PANICKY_SPARE` names the calls that
//! should work (`info`, `configure`), so each later stage's panic can be tested too.

use driftwatch_plugin_sdk::{
    async_trait, export_provider, CollectContext, CollectReport, Emit, Provider, ProviderError,
    ProviderFactory, ProviderInfo,
};

fn spared(call: &str) -> bool {
    std::env::var("DW_PANICKY_SPARE")
        .map(|v| v.split(',').any(|c| c == call))
        .unwrap_or(false)
}

/// Builds the panicking provider (when `configure` is spared).
#[derive(Default)]
pub struct PanickyFactory;

/// The panicking provider.
pub struct Panicky;

impl ProviderFactory for PanickyFactory {
    type Config = serde_json::Value;

    fn info(&self) -> ProviderInfo {
        if !spared("info") {
            panic!("panicky: info");
        }
        ProviderInfo {
            name: "panicky".into(),
            version: "0.0.1".into(),
            resource_types: vec!["panicky_thing".into()],
            config_schema: None,
        }
    }

    fn build(&self, _config: serde_json::Value) -> Result<Box<dyn Provider>, ProviderError> {
        if !spared("configure") {
            panic!("panicky: configure");
        }
        Ok(Box::new(Panicky))
    }
}

#[async_trait]
impl Provider for Panicky {
    async fn collect(
        &self,
        _ctx: &CollectContext,
        _out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError> {
        panic!("panicky: collect");
    }
}

use driftwatch_plugin_sdk::serde_json;

export_provider!(PanickyFactory);
