//! The `inventory` provider as a plugin: `libdriftwatch_plugin_inventory.so`, loaded
//! through `[[plugins]]`. The provider itself lives in `driftwatch-provider-inventory`,
//! which the `driftwatch` binary links; only this crate exports the entry point.

driftwatch_plugin_sdk::export_provider!(driftwatch_provider_inventory::InventoryFactory);

// A plugin owns its allocator, and this provider allocates millions of small JSON nodes.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
