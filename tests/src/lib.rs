//! Helpers shared by driftwatch's workspace-level end-to-end tests.

#![warn(missing_docs)]

pub mod arm_fixture;
pub mod aws_fixture;
pub mod azurite;
pub mod moto;

use std::path::PathBuf;

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A folder of test data under `tests/fixtures/`.
pub fn fixtures(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(sub)
}
