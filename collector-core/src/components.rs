//! The parts a build of driftwatch offers, by the name config gives them: provider kinds,
//! sink kinds and state backends. The engine knows none of them; the binary lists them
//! once and hands the list to every scan.

use crate::deliver::ConfiguredSink;
use crate::plugin::Plugin;
use driftwatch_plugin_sdk::{
    DynProviderFactory, DynSinkFactory, DynStateBackendFactory, ProviderFactory, ReportSink,
    SinkFactory, StateBackendFactory,
};
use std::sync::Arc;

/// Every provider, sink and state backend factory of a build.
#[derive(Clone, Default)]
pub struct Components {
    providers: Vec<(String, Arc<dyn DynProviderFactory>)>,
    sinks: Vec<Arc<dyn DynSinkFactory>>,
    backends: Vec<Arc<dyn DynStateBackendFactory>>,
}

impl Components {
    /// No parts: add them with the `with_*` builders.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a provider kind, named by its factory's `info().name`.
    pub fn with_provider(mut self, factory: impl ProviderFactory) -> Self {
        let kind = factory.describe().name;
        self.providers.push((kind, Arc::new(factory)));
        self
    }

    /// Adds a sink kind.
    pub fn with_sink(mut self, factory: impl SinkFactory) -> Self {
        self.sinks.push(Arc::new(factory));
        self
    }

    /// Adds a state backend (`scheme://` locations in `[iac] states`).
    pub fn with_backend(mut self, factory: impl StateBackendFactory) -> Self {
        self.backends.push(Arc::new(factory));
        self
    }

    /// The built-in provider kinds, in the order they were added.
    pub fn provider_kinds(&self) -> Vec<&str> {
        self.providers.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// The sink kinds, in the order they were added.
    pub fn sink_kinds(&self) -> Vec<&'static str> {
        self.sinks.iter().map(|s| s.kind()).collect()
    }

    /// The state backends' schemes, in the order they were added.
    pub fn schemes(&self) -> Vec<&'static str> {
        self.backends.iter().map(|b| b.scheme()).collect()
    }

    /// The factory of provider `kind`: a built-in one, or a loaded plugin registered under
    /// that name.
    pub fn provider<'a>(
        &'a self,
        kind: &str,
        plugins: &'a [Plugin],
    ) -> Option<&'a dyn DynProviderFactory> {
        self.providers
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, f)| f.as_ref())
            .or_else(|| {
                plugins
                    .iter()
                    .find(|p| p.name == kind)
                    .map(|p| p as &dyn DynProviderFactory)
            })
    }

    /// The factory of sink `kind`.
    pub fn sink(&self, kind: &str) -> Option<&dyn DynSinkFactory> {
        self.sinks
            .iter()
            .find(|s| s.kind() == kind)
            .map(|s| s.as_ref())
    }

    /// The backend of `scheme://` locations.
    pub fn backend(&self, scheme: &str) -> Option<&dyn DynStateBackendFactory> {
        self.backends
            .iter()
            .find(|b| b.scheme() == scheme)
            .map(|b| b.as_ref())
    }
}

/// A configured sink: a document rewritten on every scan, or a stream of events that the
/// delivery runtime queues, spools and retries.
pub enum SinkSetup {
    /// A sink that writes the whole scan document (`kind = "file"`, `format = "json"`).
    Report(Arc<dyn ReportSink>),
    /// Every other sink.
    Stream(ConfiguredSink),
}
