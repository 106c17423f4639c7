//! The azurerm state backend: lists and reads Terraform states from Blob storage,
//! `azurerm://account/container/key.tfstate` locations, globs included.
//!
//! Credentials: `ARM_ACCESS_KEY` (a storage account key) or `ARM_SAS_TOKEN`, the variables
//! Terraform's azurerm backend reads, else Azure AD through the `AZURE_*` credential chain.

use crate::arm::{credential, describe};
use async_trait::async_trait;
use azure_storage::{CloudLocation, StorageCredentials};
use azure_storage_blobs::prelude::{BlobServiceClient, ClientBuilder};
use driftwatch_plugin_sdk::factory::BackendError;
use driftwatch_plugin_sdk::{StateBackend, StateBackendFactory, StateStore};
use futures::StreamExt;
use serde::Deserialize;
use std::sync::Arc;

/// `[iac.azurerm]`: where and as whom the azurerm state backend reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzurermBackendConfig {
    /// Blob endpoint, `{account}` replaced by the location's account (default
    /// `https://{account}.blob.core.windows.net`; Azurite: `http://127.0.0.1:10000/{account}`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Sign in with Azure AD even when a key or SAS token is in the environment.
    #[serde(default)]
    pub use_azuread: bool,
    /// Login authority for Azure AD (sovereign clouds).
    #[serde(default)]
    pub authority_host: Option<String>,
}

/// Why a state could not be listed or read from Blob storage.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AzureStateError {
    /// What failed, with the service's own words.
    pub message: String,
}

fn err(message: String) -> AzureStateError {
    AzureStateError { message }
}

/// A connected reader of one storage account's states.
#[derive(Clone)]
pub struct AzureStates {
    service: BlobServiceClient,
    /// Which credential signs the requests, for error messages.
    signed_with: &'static str,
}

impl AzureStates {
    /// Picks the credentials and the endpoint; nothing is called until a list or get.
    pub fn connect(cfg: &AzurermBackendConfig, account: &str) -> Result<Self, AzureStateError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (credentials, signed_with) =
            match (cfg.use_azuread, env("ARM_ACCESS_KEY"), env("ARM_SAS_TOKEN")) {
                (false, Some(key), _) => (
                    StorageCredentials::access_key(account.to_string(), key),
                    "the account key in ARM_ACCESS_KEY",
                ),
                (false, None, Some(sas)) => (
                    // The parser's message would quote the token.
                    StorageCredentials::sas_token(sas).map_err(|_| {
                        err("ARM_SAS_TOKEN is not a SAS token (expected `sv=...&sig=...`)".into())
                    })?,
                    "the SAS token in ARM_SAS_TOKEN",
                ),
                _ => (
                    StorageCredentials::token_credential(
                        credential(cfg.authority_host.as_deref()).map_err(err)?,
                    ),
                    "Azure AD (the AZURE_* credential chain)",
                ),
            };
        let uri = cfg
            .endpoint
            .as_deref()
            .unwrap_or("https://{account}.blob.core.windows.net")
            .replace("{account}", account);
        let location = CloudLocation::Custom {
            account: account.to_string(),
            uri: uri.trim_end_matches('/').to_string(),
        };
        Ok(AzureStates {
            service: ClientBuilder::with_location(location, credentials).blob_service_client(),
            signed_with,
        })
    }

    /// Every blob name in `container` that starts with `prefix`.
    pub async fn list(
        &self,
        container: &str,
        prefix: &str,
    ) -> Result<Vec<String>, AzureStateError> {
        let mut pages = self
            .service
            .container_client(container)
            .list_blobs()
            .prefix(prefix.to_string())
            .into_stream();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                err(format!(
                    "listing blobs, signed with {}: {}",
                    self.signed_with,
                    describe(&e)
                ))
            })?;
            names.extend(page.blobs.blobs().map(|b| b.name.clone()));
        }
        Ok(names)
    }

    /// The content of one blob.
    pub async fn get(&self, container: &str, key: &str) -> Result<Vec<u8>, AzureStateError> {
        self.service
            .container_client(container)
            .blob_client(key)
            .get_content()
            .await
            .map_err(|e| {
                err(format!(
                    "reading the blob, signed with {}: {}",
                    self.signed_with,
                    describe(&e)
                ))
            })
    }
}

/// Builds the `azurerm://` state backend from `[iac.azurerm]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AzurermBackendFactory;

/// The `azurerm://` state backend: one client per storage account a location names.
struct AzurermBackend(AzurermBackendConfig);

impl StateBackendFactory for AzurermBackendFactory {
    type Config = AzurermBackendConfig;

    fn scheme(&self) -> &'static str {
        "azurerm"
    }

    fn split_account<'a>(&self, rest: &'a str) -> Result<(Option<String>, &'a str), String> {
        let (account, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = (3..=24).contains(&account.len())
            && account
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !valid {
            return Err(format!(
                "{} is not a storage account name (3 to 24 lowercase letters and digits); \
                 expected `azurerm://account/container/key.tfstate`",
                driftwatch_plugin_sdk::input::quote_input(account)
            ));
        }
        Ok((Some(account.to_string()), rest))
    }

    fn example(&self) -> String {
        "azurerm://account/container/key.tfstate".into()
    }

    fn build(&self, config: AzurermBackendConfig) -> Arc<dyn StateBackend> {
        Arc::new(AzurermBackend(config))
    }
}

#[async_trait]
impl StateBackend for AzurermBackend {
    async fn connect(&self, account: Option<&str>) -> Result<Arc<dyn StateStore>, BackendError> {
        let account = account.ok_or_else(|| BackendError("no storage account named".into()))?;
        AzureStates::connect(&self.0, account)
            .map(|s| Arc::new(s) as Arc<dyn StateStore>)
            .map_err(|e| BackendError(e.message))
    }
}

#[async_trait]
impl StateStore for AzureStates {
    async fn list(&self, container: &str, prefix: &str) -> Result<Vec<String>, BackendError> {
        AzureStates::list(self, container, prefix)
            .await
            .map_err(|e| BackendError(e.message))
    }

    async fn get(&self, container: &str, key: &str) -> Result<Vec<u8>, BackendError> {
        AzureStates::get(self, container, key)
            .await
            .map_err(|e| BackendError(e.message))
    }
}
