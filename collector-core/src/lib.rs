//! The driftwatch engine: config, IaC readers, the diff engine, governance, delivery,
//! the plugin host, the agent and output formats, and the scan that ties them together.
//! It knows no cloud: providers, sinks and state backends come in as factories
//! ([`components::Components`]), which the `driftwatch` binary lists.

#![warn(missing_docs)]

pub mod agent;
pub mod clock;
pub mod components;
pub mod config;
pub mod deliver;
pub mod diff;
pub mod govern;
pub mod iac;
pub mod output;
pub mod plugin;
pub mod scan;
