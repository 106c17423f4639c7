//! The driftwatch runtime: config, IaC readers, the diff engine, output formats, and the
//! scan that ties them together. The `driftwatch` binary is a thin CLI over this crate.

#![warn(missing_docs)]

pub mod agent;
pub mod config;
pub mod deliver;
pub mod diff;
pub mod govern;
pub mod iac;
pub mod output;
pub mod plugin;
pub mod registry;
pub mod scan;
