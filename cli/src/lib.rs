//! The parts this build of driftwatch offers: every built-in provider, sink and Terraform
//! state backend, listed once. The engine (`driftwatch-core`) knows none of them; the
//! binary, the tests and embedders hand it this list.
//!
//! Each cloud is a cargo feature (all on by default), so a build for offline exports
//! (`--no-default-features`) compiles no cloud SDK.

#![warn(missing_docs)]

pub use driftwatch_core as core;
use driftwatch_core::components::Components;

/// Every built-in part of this build, in the order `validate` and errors list them.
pub fn components() -> Components {
    let c = Components::new()
        .with_provider(driftwatch_provider_inventory::InventoryFactory)
        .with_sink(driftwatch_sink_file::FileSinkFactory);
    #[cfg(feature = "aws")]
    let c = c
        .with_provider(driftwatch_provider_aws::AwsFactory)
        .with_backend(driftwatch_provider_aws::state::S3BackendFactory);
    #[cfg(feature = "azure")]
    let c = c
        .with_provider(driftwatch_provider_azure::AzureFactory)
        .with_backend(driftwatch_provider_azure::state::AzurermBackendFactory);
    #[cfg(feature = "gcp")]
    let c = c
        .with_provider(driftwatch_provider_gcp::GcpFactory)
        .with_backend(driftwatch_provider_gcp::state::GcsBackendFactory);
    #[cfg(feature = "webhook")]
    let c = c.with_sink(driftwatch_sink_webhook::WebhookSinkFactory);
    #[cfg(feature = "otel")]
    let c = c.with_sink(driftwatch_sink_otel::OtelSinkFactory);
    c
}

#[cfg(all(test, feature = "aws", feature = "azure", feature = "gcp"))]
mod tests {
    use super::*;
    use driftwatch_core::iac::remote::parse_location;

    #[test]
    fn locations_parse_or_say_why() {
        let c = components();
        let parse = |p: &str| parse_location(p, &c);
        assert_eq!(parse("envs/a.tfstate").unwrap(), None);
        let l = parse("s3://b/envs/**/*.tfstate").unwrap().unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix()), ("b", "envs/"));
        let l = parse("s3://b/prod.tfstate").unwrap().unwrap();
        assert_eq!(l.prefix(), "prod.tfstate");
        let l = parse("azurerm://acct1/tfstate/envs/*.tfstate")
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.scheme.as_str(), l.account.as_deref()),
            ("azurerm", Some("acct1"))
        );
        assert_eq!((l.bucket.as_str(), l.prefix()), ("tfstate", "envs/"));
        let l = parse("gcs://acme-tfstate/envs/**/*.tfstate")
            .unwrap()
            .unwrap();
        assert_eq!((l.scheme.as_str(), l.account.as_deref()), ("gcs", None));
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
            assert!(parse(bad).is_err(), "{bad}");
        }
        let e = parse("oss://b/k").unwrap_err().to_string();
        assert!(
            e.contains("available: `s3://`, `azurerm://`, `gcs://`"),
            "{e}"
        );
    }

    #[test]
    fn every_kind_is_listed_once() {
        let c = components();
        assert_eq!(c.provider_kinds(), ["inventory", "aws", "azure", "gcp"]);
        assert_eq!(c.schemes(), ["s3", "azurerm", "gcs"]);
    }
}
