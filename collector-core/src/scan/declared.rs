//! Stage 1, read the declared estate: every local and remote Terraform state, parsed. The
//! agent keeps a [`StateCache`], so a state is read and parsed again only when it changed.

use super::collect::spinner;
use crate::iac::remote::{self, Backends, RemoteLocation};
use crate::iac::{self, Declared, IacError, StateFile};
use driftwatch_plugin_sdk::report::StateSummary;
use indicatif::MultiProgress;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Where the declared estate comes from.
#[derive(Clone)]
pub struct StateSources {
    /// Local state files.
    pub local: Vec<PathBuf>,
    /// Remote state locations (globs included).
    pub remote: Vec<RemoteLocation>,
    /// The configured state backends, by scheme.
    pub backends: Backends,
}

/// Every state of the declared estate, parsed.
#[derive(Clone, Default)]
pub struct DeclaredEstate {
    /// The states, sorted: local files first, then remote states by URL.
    pub files: Vec<Arc<StateFile>>,
}

impl DeclaredEstate {
    /// One summary per state, for the scan document.
    pub fn summaries(&self) -> Vec<StateSummary> {
        self.files
            .iter()
            .map(|f| StateSummary {
                source: f.source.to_string(),
                resources: f.resources.len(),
                terraform_version: f.terraform_version.clone(),
            })
            .collect()
    }

    /// Every declared resource; moved out of states nothing else holds, copied from those
    /// a cache keeps.
    pub fn into_resources(self) -> Vec<Declared> {
        let mut out = Vec::with_capacity(self.files.iter().map(|f| f.resources.len()).sum());
        for f in self.files {
            match Arc::try_unwrap(f) {
                Ok(f) => out.extend(f.resources),
                Err(shared) => out.extend(shared.resources.iter().cloned()),
            }
        }
        out
    }
}

/// What a state looked like when it was last parsed.
struct Cached {
    /// Local: modification time and length; remote: a digest of its bytes.
    fingerprint: Fingerprint,
    file: Arc<StateFile>,
}

#[derive(PartialEq, Eq)]
enum Fingerprint {
    Local(Option<SystemTime>, u64),
    /// SHA-256 of the bytes fetched.
    Remote([u8; 32]),
}

/// Parsed states kept between scans: a local state is read again only when its
/// modification time or length changed; a remote one is parsed again only when its
/// content did.
#[derive(Default)]
pub struct StateCache {
    entries: Mutex<HashMap<String, Cached>>,
    /// States parsed (not taken from the cache) since the cache was made, for tests and
    /// logs.
    parsed: std::sync::atomic::AtomicU64,
}

impl StateCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many states were parsed rather than reused since the cache was made.
    pub fn parsed(&self) -> u64 {
        self.parsed.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn local(&self, path: &PathBuf) -> Result<Arc<StateFile>, IacError> {
        let key = path.display().to_string();
        let meta = std::fs::metadata(path).ok();
        let fingerprint = Fingerprint::Local(
            meta.as_ref().and_then(|m| m.modified().ok()),
            meta.as_ref().map_or(0, |m| m.len()),
        );
        if let Some(c) = self.entries.lock().unwrap().get(&key) {
            if c.fingerprint == fingerprint {
                return Ok(c.file.clone());
            }
        }
        let file = Arc::new(iac::read_state_file(path, &super::display_path(path))?);
        self.parsed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.entries.lock().unwrap().insert(
            key,
            Cached {
                fingerprint,
                file: file.clone(),
            },
        );
        Ok(file)
    }

    fn remote(&self, url: &str, bytes: &[u8]) -> Result<Arc<StateFile>, IacError> {
        use sha2::Digest;
        let fingerprint = Fingerprint::Remote(sha2::Sha256::digest(bytes).into());
        if let Some(c) = self.entries.lock().unwrap().get(url) {
            if c.fingerprint == fingerprint {
                return Ok(c.file.clone());
            }
        }
        let file = Arc::new(iac::parse_state(url, bytes)?);
        self.parsed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.entries.lock().unwrap().insert(
            url.to_string(),
            Cached {
                fingerprint,
                file: file.clone(),
            },
        );
        Ok(file)
    }
}

/// Reads every state `sources` names; with a `cache`, unchanged states are not read or
/// parsed again.
pub async fn read_declared(
    sources: StateSources,
    cache: Option<Arc<StateCache>>,
    progress: &MultiProgress,
) -> Result<DeclaredEstate, IacError> {
    let bar = spinner(
        progress,
        format!("reading {} state file(s)", sources.local.len()),
    );
    let local = {
        let (bar, cache, paths) = (bar.clone(), cache.clone(), sources.local);
        tokio::task::spawn_blocking(move || -> Result<Vec<Arc<StateFile>>, IacError> {
            let mut out = Vec::with_capacity(paths.len());
            for path in &paths {
                let f = match &cache {
                    Some(c) => c.local(path)?,
                    None => Arc::new(iac::read_state_file(path, &super::display_path(path))?),
                };
                bar.inc(f.resources.len() as u64);
                out.push(f);
            }
            Ok(out)
        })
    };
    let parse: remote::Parse = match cache {
        Some(c) => Arc::new(move |url, bytes| c.remote(url, bytes)),
        None => Arc::new(|url, bytes| iac::parse_state(url, bytes).map(Arc::new)),
    };
    let remote = remote::load_with(&sources.remote, &sources.backends, parse).await;
    let mut files = local.await.map_err(|e| IacError::Remote {
        location: "local states".into(),
        message: format!("reader task: {e}"),
    })??;
    files.extend(remote?);
    bar.finish_and_clear();
    Ok(DeclaredEstate { files })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(serial: u64, ids: &[&str]) -> String {
        let instances: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"schema_version":0,"attributes":{{"id":"{id}"}}}}"#))
            .collect();
        format!(
            r#"{{"version":4,"terraform_version":"1.9.8","serial":{serial},"lineage":"l","outputs":{{}},
               "resources":[{{"mode":"managed","type":"aws_vpc","name":"v","provider":"provider[\"registry.terraform.io/hashicorp/aws\"]",
               "instances":[{}]}}]}}"#,
            instances.join(",")
        )
    }

    async fn read(dir: &std::path::Path, cache: &Arc<StateCache>) -> DeclaredEstate {
        let sources = StateSources {
            local: vec![dir.join("a.tfstate")],
            remote: Vec::new(),
            backends: Backends::new(),
        };
        let hidden = MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden());
        read_declared(sources, Some(cache.clone()), &hidden)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_unchanged_state_is_parsed_once_and_a_changed_one_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tfstate");
        std::fs::write(&path, state(1, &["vpc-1"])).unwrap();
        let cache = Arc::new(StateCache::new());
        let first = read(dir.path(), &cache).await;
        let second = read(dir.path(), &cache).await;
        assert_eq!(cache.parsed(), 1);
        assert!(Arc::ptr_eq(&first.files[0], &second.files[0]));
        assert_eq!(second.clone().into_resources().len(), 1);
        // A new serial with one more resource: a different length, read again.
        std::fs::write(&path, state(2, &["vpc-1", "vpc-2"])).unwrap();
        let third = read(dir.path(), &cache).await;
        assert_eq!(cache.parsed(), 2);
        assert_eq!(third.into_resources().len(), 2);
        // The cache's copy stays whole when a scan takes the resources.
        assert_eq!(read(dir.path(), &cache).await.into_resources().len(), 2);
        assert_eq!(cache.parsed(), 2);
    }
}
