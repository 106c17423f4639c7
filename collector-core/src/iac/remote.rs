//! Remote state backends: `s3://bucket/key`, `azurerm://account/container/key` and
//! `gcs://bucket/key` locations, globs included.

use super::{parse_state, IacError, StateFile};
use crate::components::Components;
use driftwatch_plugin_sdk::{StateBackend, StateStore};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;

/// States fetched at once from one backend.
const FETCH_CONCURRENCY: usize = 8;

/// A state location in a remote backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLocation {
    /// The location as configured, for messages.
    pub url: String,
    /// The backend's scheme (`s3`, `azurerm`, `gcs`).
    pub scheme: String,
    /// The store inside the backend, for backends whose locations name one (the storage
    /// account of `azurerm://`).
    pub account: Option<String>,
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

    /// The store this location is read from: its backend and account.
    fn store(&self) -> (String, Option<String>) {
        (self.scheme.clone(), self.account.clone())
    }

    /// The URL of `key` in the same backend and bucket.
    fn url_of(&self, key: &str) -> String {
        match &self.account {
            Some(account) => format!("{}://{account}/{}/{key}", self.scheme, self.bucket),
            None => format!("{}://{}/{key}", self.scheme, self.bucket),
        }
    }
}

/// Parses a `scheme://` location; `Ok(None)` for a local path. Schemes this build cannot
/// read are an error that says what to do.
pub fn parse_location(
    pattern: &str,
    components: &Components,
) -> Result<Option<RemoteLocation>, IacError> {
    let Some((scheme, rest)) = pattern.split_once("://") else {
        return Ok(None);
    };
    let bad = |message: String| IacError::BadLocation {
        pattern: pattern.to_string(),
        message,
    };
    let Some(backend) = components.backend(scheme) else {
        let available: Vec<String> = components
            .schemes()
            .iter()
            .map(|s| format!("`{s}://`"))
            .collect();
        return Err(bad(format!(
            "the `{scheme}://` backend is not available in this build (available: {}); \
             download the state and pass its local path",
            if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            }
        )));
    };
    let (account, rest) = backend.split_account(rest).map_err(bad)?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || key.is_empty() {
        let example = backend.example();
        let glob = example.replace("key.tfstate", "prefix/**/*.tfstate");
        return Err(bad(format!("expected `{example}` or `{glob}`")));
    }
    if key.contains(['*', '?', '[']) {
        glob::Pattern::new(key).map_err(|e| bad(e.to_string()))?;
    }
    Ok(Some(RemoteLocation {
        url: pattern.to_string(),
        scheme: scheme.to_string(),
        account,
        bucket: bucket.to_string(),
        key: key.to_string(),
    }))
}

fn remote_error(loc: &RemoteLocation, message: impl Into<String>) -> IacError {
    IacError::Remote {
        location: loc.url.clone(),
        message: message.into(),
    }
}

/// The configured state backends of a scan, by scheme.
pub type Backends = BTreeMap<String, Arc<dyn StateBackend>>;

type Store = (String, Option<String>);

/// Parses one fetched state (`url`, bytes): the plain parser, or a cache that answers
/// unchanged states without parsing them again.
pub type Parse = Arc<dyn Fn(&str, &[u8]) -> Result<Arc<StateFile>, IacError> + Send + Sync>;

/// Lists and reads every state the locations name, sorted by URL and deduplicated.
pub async fn load(
    locations: &[RemoteLocation],
    backends: &Backends,
) -> Result<Vec<StateFile>, IacError> {
    let parse: Parse = Arc::new(|url, bytes| parse_state(url, bytes).map(Arc::new));
    Ok(load_with(locations, backends, parse)
        .await?
        .into_iter()
        .map(|f| Arc::try_unwrap(f).unwrap_or_else(|shared| (*shared).clone()))
        .collect())
}

/// [`load`], with each fetched state handed to `parse`.
pub async fn load_with(
    locations: &[RemoteLocation],
    backends: &Backends,
    parse: Parse,
) -> Result<Vec<Arc<StateFile>>, IacError> {
    if locations.is_empty() {
        return Ok(Vec::new());
    }
    let mut stores: BTreeMap<Store, Arc<dyn StateStore>> = BTreeMap::new();
    for loc in locations {
        if stores.contains_key(&loc.store()) {
            continue;
        }
        let backend = backends.get(&loc.scheme).ok_or_else(|| {
            remote_error(
                loc,
                format!("the `{}://` backend is not configured", loc.scheme),
            )
        })?;
        let store = backend
            .connect(loc.account.as_deref())
            .await
            .map_err(|e| remote_error(loc, e.to_string()))?;
        stores.insert(loc.store(), store);
    }
    // (url, store, bucket, key) of every state to read.
    let mut objects: Vec<(String, Store, String, String)> = Vec::new();
    for loc in locations {
        if !loc.is_glob() {
            objects.push((
                loc.url_of(&loc.key),
                loc.store(),
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
        let keys = stores[&loc.store()]
            .list(&loc.bucket, loc.prefix())
            .await
            .map_err(|e| remote_error(loc, e.to_string()))?;
        let before = objects.len();
        objects.extend(
            keys.into_iter()
                .filter(|k| pattern.matches_with(k, opts))
                .map(|k| (loc.url_of(&k), loc.store(), loc.bucket.clone(), k)),
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
    let mut files: Vec<Arc<StateFile>> = stream::iter(objects)
        .map(|(url, at, bucket, key)| {
            let store = stores[&at].clone();
            let parse = parse.clone();
            async move {
                let bytes = store
                    .get(&bucket, &key)
                    .await
                    .map_err(|e| IacError::Remote {
                        location: url.clone(),
                        message: e.to_string(),
                    })?;
                let at = url.clone();
                tokio::task::spawn_blocking(move || parse(&url, &bytes))
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
