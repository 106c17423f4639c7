//! Remote state backends: `s3://bucket/key`, `azurerm://account/container/key` and
//! `gcs://bucket/key` locations, globs included.

use super::{parse_state, IacError, StateFile};
use driftwatch_provider_aws::state::{S3BackendConfig, S3States};
use driftwatch_provider_azure::state::{AzureStates, AzurermBackendConfig};
use driftwatch_provider_gcp::state::{GcsBackendConfig, GcsStates};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::BTreeMap;

/// States fetched at once from one backend.
const FETCH_CONCURRENCY: usize = 8;

/// Which service holds a remote state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Backend {
    /// Amazon S3 (`s3://bucket/key`).
    S3,
    /// Azure Blob storage (`azurerm://account/container/key`), in this storage account.
    Azurerm(String),
    /// Google Cloud Storage (`gcs://bucket/key`).
    Gcs,
}

/// How each backend connects: `[iac.s3]`, `[iac.azurerm]` and `[iac.gcs]`.
#[derive(Debug, Clone, Default)]
pub struct Backends {
    /// `s3://` settings.
    pub s3: S3BackendConfig,
    /// `azurerm://` settings.
    pub azurerm: AzurermBackendConfig,
    /// `gcs://` settings.
    pub gcs: GcsBackendConfig,
}

/// A state location in a remote backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLocation {
    /// The location as configured, for messages.
    pub url: String,
    /// The service, and for Blob storage the account.
    pub backend: Backend,
    /// The bucket, or the Blob container.
    pub bucket: String,
    /// The key, or a glob over keys (`envs/**/*.tfstate`).
    pub key: String,
}

impl RemoteLocation {
    /// The literal part of the key before its first glob character: the listing prefix.
    pub fn prefix(&self) -> &str {
        let end = self.key.find(['*', '?', '[']).unwrap_or(self.key.len());
        &self.key[..end]
    }

    fn is_glob(&self) -> bool {
        self.prefix().len() < self.key.len()
    }

    /// The URL of `key` in the same backend and bucket.
    fn url_of(&self, key: &str) -> String {
        match &self.backend {
            Backend::S3 => format!("s3://{}/{key}", self.bucket),
            Backend::Azurerm(account) => format!("azurerm://{account}/{}/{key}", self.bucket),
            Backend::Gcs => format!("gcs://{}/{key}", self.bucket),
        }
    }
}

/// Parses a `scheme://` location; `Ok(None)` for a local path. Schemes this build cannot
/// read are an error that says what to do.
pub fn parse_location(pattern: &str) -> Result<Option<RemoteLocation>, IacError> {
    let Some((scheme, rest)) = pattern.split_once("://") else {
        return Ok(None);
    };
    let bad = |message: String| IacError::BadLocation {
        pattern: pattern.to_string(),
        message,
    };
    let (backend, rest) = match scheme {
        "s3" => (Backend::S3, rest),
        "gcs" => (Backend::Gcs, rest),
        "azurerm" => {
            let (account, rest) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = (3..=24).contains(&account.len())
                && account
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            if !valid {
                return Err(bad(format!(
                    "{} is not a storage account name (3 to 24 lowercase letters and \
                     digits); expected `azurerm://account/container/key.tfstate`",
                    driftwatch_plugin_sdk::input::quote_input(account)
                )));
            }
            (Backend::Azurerm(account.to_string()), rest)
        }
        _ => {
            return Err(bad(format!(
                "the `{scheme}://` backend is not available in this build (available: `s3://`, \
                 `azurerm://`, `gcs://`); download the state and pass its local path"
            )))
        }
    };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || key.is_empty() {
        return Err(bad(match backend {
            Backend::S3 => {
                "expected `s3://bucket/key.tfstate` or `s3://bucket/prefix/**/*.tfstate`".into()
            }
            Backend::Azurerm(_) => "expected `azurerm://account/container/key.tfstate` or \
                                    `azurerm://account/container/prefix/**/*.tfstate`"
                .into(),
            Backend::Gcs => {
                "expected `gcs://bucket/key.tfstate` or `gcs://bucket/prefix/**/*.tfstate`".into()
            }
        }));
    }
    if key.contains(['*', '?', '[']) {
        glob::Pattern::new(key).map_err(|e| bad(e.to_string()))?;
    }
    Ok(Some(RemoteLocation {
        url: pattern.to_string(),
        backend,
        bucket: bucket.to_string(),
        key: key.to_string(),
    }))
}

/// A connected client of one backend.
#[derive(Clone)]
enum Store {
    S3(S3States),
    Azurerm(AzureStates),
    // Boxed: two clients with their configuration, several times the size of the others.
    Gcs(Box<GcsStates>),
}

impl Store {
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, String> {
        match self {
            Store::S3(c) => c.list(bucket, prefix).await.map_err(|e| e.to_string()),
            Store::Azurerm(c) => c.list(bucket, prefix).await.map_err(|e| e.to_string()),
            Store::Gcs(c) => c.list(bucket, prefix).await.map_err(|e| e.to_string()),
        }
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        match self {
            Store::S3(c) => c.get(bucket, key).await.map_err(|e| e.to_string()),
            Store::Azurerm(c) => c.get(bucket, key).await.map_err(|e| e.to_string()),
            Store::Gcs(c) => c.get(bucket, key).await.map_err(|e| e.to_string()),
        }
    }
}

fn remote_error(loc: &RemoteLocation, message: impl Into<String>) -> IacError {
    IacError::Remote {
        location: loc.url.clone(),
        message: message.into(),
    }
}

/// Lists and reads every state the locations name, sorted by URL and deduplicated.
pub async fn load(
    locations: &[RemoteLocation],
    backends: &Backends,
) -> Result<Vec<StateFile>, IacError> {
    if locations.is_empty() {
        return Ok(Vec::new());
    }
    let mut stores: BTreeMap<Backend, Store> = BTreeMap::new();
    for loc in locations {
        if stores.contains_key(&loc.backend) {
            continue;
        }
        let store = match &loc.backend {
            Backend::S3 => Store::S3(S3States::connect(&backends.s3).await),
            Backend::Azurerm(account) => Store::Azurerm(
                AzureStates::connect(&backends.azurerm, account)
                    .map_err(|e| remote_error(loc, e.to_string()))?,
            ),
            Backend::Gcs => Store::Gcs(Box::new(
                GcsStates::connect(&backends.gcs)
                    .await
                    .map_err(|e| remote_error(loc, e.to_string()))?,
            )),
        };
        stores.insert(loc.backend.clone(), store);
    }
    // (url, store, bucket, key) of every state to read.
    let mut objects: Vec<(String, Backend, String, String)> = Vec::new();
    for loc in locations {
        if !loc.is_glob() {
            objects.push((
                loc.url_of(&loc.key),
                loc.backend.clone(),
                loc.bucket.clone(),
                loc.key.clone(),
            ));
            continue;
        }
        let pattern = glob::Pattern::new(&loc.key).map_err(|e| remote_error(loc, e.to_string()))?;
        let opts = glob::MatchOptions {
            require_literal_separator: true,
            ..glob::MatchOptions::new()
        };
        let keys = stores[&loc.backend]
            .list(&loc.bucket, loc.prefix())
            .await
            .map_err(|e| remote_error(loc, e))?;
        let before = objects.len();
        objects.extend(
            keys.into_iter()
                .filter(|k| pattern.matches_with(k, opts))
                .map(|k| (loc.url_of(&k), loc.backend.clone(), loc.bucket.clone(), k)),
        );
        if objects.len() == before {
            return Err(remote_error(
                loc,
                format!("no object matches (listed {})", loc.url_of(loc.prefix())),
            ));
        }
    }
    objects.sort();
    objects.dedup();
    let mut files: Vec<StateFile> = stream::iter(objects)
        .map(|(url, backend, bucket, key)| {
            let store = stores[&backend].clone();
            async move {
                let bytes = store
                    .get(&bucket, &key)
                    .await
                    .map_err(|message| IacError::Remote {
                        location: url.clone(),
                        message,
                    })?;
                let at = url.clone();
                tokio::task::spawn_blocking(move || parse_state(&url, &bytes))
                    .await
                    .map_err(|e| IacError::Remote {
                        location: at,
                        message: format!("parser task: {e}"),
                    })?
            }
        })
        .buffer_unordered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;
    files.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_or_say_why() {
        assert_eq!(parse_location("envs/a.tfstate").unwrap(), None);
        let l = parse_location("s3://b/envs/**/*.tfstate").unwrap().unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix()), ("b", "envs/"));
        let l = parse_location("s3://b/prod.tfstate").unwrap().unwrap();
        assert_eq!(l.prefix(), "prod.tfstate");
        let l = parse_location("azurerm://acct1/tfstate/envs/*.tfstate")
            .unwrap()
            .unwrap();
        assert_eq!(l.backend, Backend::Azurerm("acct1".into()));
        assert_eq!((l.bucket.as_str(), l.prefix()), ("tfstate", "envs/"));
        assert_eq!(
            l.url_of("envs/a.tfstate"),
            "azurerm://acct1/tfstate/envs/a.tfstate"
        );
        let l = parse_location("gcs://acme-tfstate/envs/**/*.tfstate")
            .unwrap()
            .unwrap();
        assert_eq!(l.backend, Backend::Gcs);
        assert_eq!(
            l.url_of("envs/a.tfstate"),
            "gcs://acme-tfstate/envs/a.tfstate"
        );
        for bad in [
            "azurerm://Acct/c/k",
            "azurerm://acct1/c",
            "azurerm://ab/c/k",
            "s3://",
            "s3://bucket",
            "s3://bucket/",
            "gcs://bucket",
            "oss://b/k",
            "s3://b/[z",
        ] {
            assert!(parse_location(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn double_star_matches_zero_or_more_folders() {
        let p = glob::Pattern::new("envs/**/*.tfstate").unwrap();
        let opts = glob::MatchOptions {
            require_literal_separator: true,
            ..glob::MatchOptions::new()
        };
        assert!(p.matches_with("envs/a.tfstate", opts));
        assert!(p.matches_with("envs/prod/eu/a.tfstate", opts));
        assert!(!p.matches_with("envs/prod/a.tfstate.backup", opts));
        assert!(!p.matches_with("other/a.tfstate", opts));
    }
}
