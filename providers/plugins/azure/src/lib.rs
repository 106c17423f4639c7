//! The `azure` provider as a plugin: `libdriftwatch_plugin_azure.so`, loaded through
//! `[[plugins]]`. The provider itself lives in `driftwatch-provider-azure`, which the
//! `driftwatch` binary links; only this crate exports the entry point, so a binary that
//! links several providers never defines it twice.

driftwatch_plugin_sdk::export_provider!(driftwatch_provider_azure::AzureFactory);
