//! Remote state backends: `s3://bucket/key` locations, globs included.

use super::{parse_state, IacError, StateFile};
use driftwatch_provider_aws::state::{S3BackendConfig, S3States};
use futures::stream::{self, StreamExt, TryStreamExt};

/// States fetched at once from one backend.
const FETCH_CONCURRENCY: usize = 8;

/// A state location in a remote backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLocation {
    /// The location as configured, for messages.
    pub url: String,
    /// The bucket.
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
    if scheme != "s3" {
        return Err(bad(format!(
            "the `{scheme}://` backend is not available in this build (available: `s3://`); \
             download the state and pass its local path"
        )));
    }
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || key.is_empty() {
        return Err(bad(
            "expected `s3://bucket/key.tfstate` or `s3://bucket/prefix/**/*.tfstate`".into(),
        ));
    }
    if key.contains(['*', '?', '[']) {
        glob::Pattern::new(key).map_err(|e| bad(e.to_string()))?;
    }
    Ok(Some(RemoteLocation {
        url: pattern.to_string(),
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

/// Lists and reads every state the locations name, sorted by URL and deduplicated.
pub async fn load(
    locations: &[RemoteLocation],
    s3: &S3BackendConfig,
) -> Result<Vec<StateFile>, IacError> {
    if locations.is_empty() {
        return Ok(Vec::new());
    }
    let client = S3States::connect(s3).await;
    let mut objects: Vec<(String, String)> = Vec::new();
    for loc in locations {
        if !loc.is_glob() {
            objects.push((loc.bucket.clone(), loc.key.clone()));
            continue;
        }
        let pattern = glob::Pattern::new(&loc.key).map_err(|e| remote_error(loc, e.to_string()))?;
        let opts = glob::MatchOptions {
            require_literal_separator: true,
            ..glob::MatchOptions::new()
        };
        let keys = client
            .list(&loc.bucket, loc.prefix())
            .await
            .map_err(|e| remote_error(loc, e.to_string()))?;
        let before = objects.len();
        objects.extend(
            keys.into_iter()
                .filter(|k| pattern.matches_with(k, opts))
                .map(|k| (loc.bucket.clone(), k)),
        );
        if objects.len() == before {
            return Err(remote_error(
                loc,
                format!(
                    "no object matches (listed s3://{}/{})",
                    loc.bucket,
                    loc.prefix()
                ),
            ));
        }
    }
    objects.sort();
    objects.dedup();
    let mut files: Vec<StateFile> = stream::iter(objects)
        .map(|(bucket, key)| {
            let client = client.clone();
            async move {
                let url = format!("s3://{bucket}/{key}");
                let bytes = client
                    .get(&bucket, &key)
                    .await
                    .map_err(|e| IacError::Remote {
                        location: url.clone(),
                        message: e.to_string(),
                    })?;
                tokio::task::spawn_blocking(move || parse_state(&url, &bytes))
                    .await
                    .map_err(|e| IacError::Remote {
                        location: format!("s3://{bucket}/{key}"),
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
        for bad in [
            "s3://",
            "s3://bucket",
            "s3://bucket/",
            "gcs://b/k",
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
