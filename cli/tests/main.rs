//! The `driftwatch` binary end to end, as a user and a receiver see it: one test binary,
//! so the cloud SDKs the binary links are linked once for all of them.

mod common;

mod agent;
mod cli;
mod governance;
mod plugin_backoff;
mod plugins;
mod sinks;
