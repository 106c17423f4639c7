//! Helpers shared by the integration tests.
#![allow(dead_code)]

use driftwatch_plugin_sdk::Resource;
use driftwatch_provider_inventory::Parsed;
use std::path::PathBuf;

/// Path of a fixture under `tests/data`.
pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// Bytes of a fixture under `tests/data`.
pub fn bytes(rel: &str) -> Vec<u8> {
    std::fs::read(data(rel)).expect("fixture exists")
}

/// The one resource with this type and id; fails the test when absent or duplicated.
pub fn find<'a>(p: &'a Parsed, ty: &str, id: &str) -> &'a Resource {
    let hits: Vec<&Resource> = p
        .resources
        .iter()
        .filter(|r| r.key.r#type == ty && r.key.id == id)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one {ty} {id}, found {}",
        hits.len()
    );
    hits[0]
}

/// Type and id of every resource, in emission order.
pub fn keys(p: &Parsed) -> Vec<(String, String)> {
    p.resources
        .iter()
        .map(|r| (r.key.r#type.clone(), r.key.id.clone()))
        .collect()
}
