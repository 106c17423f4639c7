//! A provider plugin that panics in every call. `DW_PANICKY_SPARE` names the calls that
//! should work (`info`, `configure`), so each later stage's panic can be tested too.

use driftwatch_plugin_sdk::{
    async_trait, export_provider, CollectContext, CollectReport, Emit, Provider, ProviderError,
    ProviderInfo,
};

fn spared(call: &str) -> bool {
    std::env::var("DW_PANICKY_SPARE")
        .map(|v| v.split(',').any(|c| c == call))
        .unwrap_or(false)
}

/// The panicking provider.
#[derive(Default)]
pub struct Panicky;

#[async_trait]
impl Provider for Panicky {
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

    fn configure(&mut self, _config: &serde_json::Value) -> Result<(), ProviderError> {
        if !spared("configure") {
            panic!("panicky: configure");
        }
        Ok(())
    }

    async fn collect(
        &self,
        _ctx: &CollectContext,
        _out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError> {
        panic!("panicky: collect");
    }
}

use driftwatch_plugin_sdk::serde_json;

export_provider!(Panicky);
