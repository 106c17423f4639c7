//! driftwatch against real parts: moto, Azurite, gcp-storage-emulator and fixture servers
//! that speak each cloud API's wire format, all on 127.0.0.1. One module per file below.

mod aws_fixture;
mod aws_moto;
mod aws_moto_accounts;
mod aws_plugin;
mod azure_arm;
mod azure_plugin;
mod azurerm_backend;
mod gcp_compute;
mod gcs_backend;
mod quickstart;
mod tfstate_corpus;
