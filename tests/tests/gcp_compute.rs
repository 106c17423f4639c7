//! The gcp provider against the Compute fixture server and a real gcp-storage-emulator
//! behind the Cloud Storage gateway, all on 127.0.0.1: exact findings for an estate in
//! sync and a drifted one, paging, throttling, failed and unreachable listings, per-region
//! listing, credentials, and config errors.

use driftwatch_plugin_sdk::ScanReport;
use driftwatch_tests::gce_fixture::{
    bucket_state, in_project, instance, terraform_state, GceFixture, GceSpec, PROJECT,
};
use driftwatch_tests::gcs::{BucketSeed, GcsEmulator, GcsGateway};
use driftwatch_tests::scan_config;
use serde_json::{json, Value};
use std::time::Duration;

/// The two buckets of the example estate.
fn buckets() -> Vec<BucketSeed> {
    let backups = BucketSeed::private(
        "acme-prod-backups",
        json!({"env": "prod", "data-class": "confidential"}),
    );
    let assets = BucketSeed {
        name: "acme-prod-assets".into(),
        location: "US".into(),
        labels: json!({"env": "prod", "team": "web"}),
        versioning: false,
        uniform: true,
        enforced: false,
        public: false,
    };
    vec![backups, assets]
}

struct Estate {
    compute: GceFixture,
    gateway: GcsGateway,
    _emulator: GcsEmulator,
    dir: tempfile::TempDir,
}

impl Estate {
    /// Starts the servers, seeds the buckets and writes the matching state.
    fn start(spec: GceSpec, extra_buckets: &[BucketSeed], bucket_page: usize) -> Estate {
        let emulator = GcsEmulator::start();
        let seeds = buckets();
        for b in seeds.iter().chain(extra_buckets) {
            emulator.seed(b);
        }
        let gateway = GcsGateway::start(&emulator, bucket_page);
        let compute = GceFixture::start(spec);
        let dir = tempfile::tempdir().unwrap();
        let state: Vec<Value> = seeds.iter().map(bucket_state).collect();
        std::fs::write(
            dir.path().join("main.tfstate"),
            terraform_state(&state).to_string(),
        )
        .unwrap();
        Estate {
            compute,
            gateway,
            _emulator: emulator,
            dir,
        }
    }

    fn settings(&self, projects: &[&str]) -> String {
        let creds = self.compute.credentials_file(self.dir.path());
        format!(
            "projects = {projects:?}\ncredentials_file = \"{}\"\ncompute_endpoint = \"{}\"\n\
             storage_endpoint = \"{}\"\nmax_attempts = 3\n",
            creds.display(),
            self.compute.endpoint,
            self.gateway.endpoint
        )
    }

    fn scan(&self, extra: &str) -> ScanReport {
        self.scan_projects(&[PROJECT], extra)
    }

    fn scan_projects(&self, projects: &[&str], extra: &str) -> ScanReport {
        let text = format!(
            "[iac]\nstates = [\"main.tfstate\"]\n\n[[providers]]\nkind = \"gcp\"\n{}{extra}",
            self.settings(projects)
        );
        scan_config(self.dir.path(), &text)
    }
}

fn findings(report: &ScanReport) -> Vec<(String, String, String, Vec<String>)> {
    let mut got: Vec<_> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.kind.as_str().to_string(),
                f.resource.key.r#type.clone(),
                f.resource.key.id.clone(),
                f.changes.iter().map(|c| c.path.clone()).collect(),
            )
        })
        .collect();
    got.sort();
    got
}

#[test]
fn an_estate_in_sync_has_no_findings() {
    let estate = Estate::start(GceSpec::example(), &[], 1000);
    let report = estate.scan("");
    let p = &report.summary.providers[0];
    assert_eq!(
        (p.kind.as_str(), p.status.as_str()),
        ("gcp", "ok"),
        "{:?}",
        p
    );
    assert!(!report.summary.partial, "{:?}", report.summary.coverage);
    assert_eq!(
        findings(&report),
        vec![],
        "the default network, its subnetworks and rules are cloud defaults"
    );
    assert_eq!(report.summary.resources.declared, 10);
    // Firewalls, networks, subnetworks, instances: one page each; ListBuckets, and the IAM
    // policy of the bucket whose public access prevention is not enforced.
    assert_eq!(estate.compute.seen().len(), 4);
    assert_eq!(estate.gateway.calls(), 2);
    assert_eq!(p.api_calls, 6);
    assert!(
        estate.compute.token_calls() >= 1,
        "the authorized_user file's token endpoint"
    );
    assert!(estate.compute.seen().iter().all(|s| s.status == 200));
}

#[test]
fn drift_is_found_exactly() {
    let mut spec = GceSpec::example();
    // SSH opened to the world on the rule that admits HTTPS from 0.0.0.0/0.
    let https = spec
        .items("firewalls")
        .iter_mut()
        .find(|f| f["name"] == "prod-allow-https")
        .unwrap();
    https["allowed"] = json!([{"IPProtocol": "tcp", "ports": ["443", "22"]}]);
    // The staging network was deleted from the console.
    spec.items("networks")
        .retain(|n| n["name"] != "staging-net");
    // A label changed on batch-1.
    let batch = spec
        .items("instances")
        .iter_mut()
        .find(|i| i["name"] == "batch-1")
        .unwrap();
    *batch = instance(
        "batch-1",
        "us-central1-a",
        "n2-standard-4",
        json!({"env": "prod", "team": "ml"}),
        &[],
    );
    // A bucket nobody declared, readable by everyone.
    let scratch = BucketSeed {
        name: "acme-scratch".into(),
        location: "US".into(),
        labels: json!({}),
        versioning: false,
        uniform: false,
        enforced: false,
        public: true,
    };
    let estate = Estate::start(spec, &[scratch], 1000);
    // The shipped policy library, as the quickstart loads it.
    let policies = driftwatch_tests::repo_root().join("policies");
    let report = estate.scan(&format!(
        "\n[governance]\npolicies = [\"{}\"]\naudit_log = \"audit.jsonl\"\n",
        policies.display()
    ));
    assert!(!report.summary.partial, "{:?}", report.summary.coverage);
    let fw = |name: &str| format!("projects/{PROJECT}/global/firewalls/{name}");
    assert_eq!(
        findings(&report),
        vec![
            (
                "changed".into(),
                "google_compute_firewall".into(),
                fw("prod-allow-https"),
                vec!["allow".into()]
            ),
            (
                "changed".into(),
                "google_compute_instance".into(),
                format!("projects/{PROJECT}/zones/us-central1-a/instances/batch-1"),
                vec!["labels.team".into()]
            ),
            (
                "missing".into(),
                "google_compute_network".into(),
                format!("projects/{PROJECT}/global/networks/staging-net"),
                vec![]
            ),
            (
                "unmanaged".into(),
                "google_storage_bucket".into(),
                "acme-scratch".into(),
                vec![]
            ),
        ]
    );
    // The cross-cloud facet: SSH from anywhere on the changed rule, and a public bucket.
    let rule = report
        .findings
        .iter()
        .find(|f| f.resource.key.id == fw("prod-allow-https"))
        .unwrap();
    let ingress = &rule
        .facets
        .network
        .as_ref()
        .expect("the rule's facet")
        .ingress;
    assert!(
        ingress
            .iter()
            .any(|r| r.sources.contains(&"0.0.0.0/0".to_string())
                && r.ports.iter().any(|p| p.from <= 22 && 22 <= p.to)),
        "{ingress:?}"
    );
    // The one Rego rule that catches SSH open to the world on AWS and Azure catches it here.
    assert_eq!(rule.status.as_str(), "violation", "{:?}", rule.notes);
    assert!(
        rule.policies
            .iter()
            .any(|p| p.contains("management_port_open_to_world")),
        "{:?}",
        rule.policies
    );
    let bucket = report
        .findings
        .iter()
        .find(|f| f.resource.key.id == "acme-scratch")
        .unwrap();
    let storage = bucket.facets.storage.as_ref().expect("the bucket's facet");
    assert!(storage.public, "allUsers may read acme-scratch");
}

#[test]
fn every_page_is_followed_and_throttling_waits_for_retry_after() {
    let mut spec = GceSpec::example();
    spec.page = 2;
    spec.throttle = vec![("/global/firewalls".into(), 2)];
    let estate = Estate::start(spec, &[], 1);
    let report = estate.scan("");
    assert!(!report.summary.partial, "{:?}", report.summary.coverage);
    assert_eq!(findings(&report), vec![]);
    // 6 firewalls at 2 a page after two throttled answers; 3 networks, 4 subnetworks, 2
    // instances.
    assert_eq!(estate.compute.calls("/global/firewalls"), 2 + 3);
    assert_eq!(estate.compute.calls("/global/networks"), 2);
    assert_eq!(estate.compute.calls("/aggregated/subnetworks"), 2);
    assert_eq!(estate.compute.calls("/aggregated/instances"), 1);
    // Buckets one a page, plus one IAM policy.
    assert_eq!(estate.gateway.calls(), 2 + 1);
    let p = &report.summary.providers[0];
    assert_eq!(
        p.api_calls as usize,
        estate.compute.seen().len() + estate.gateway.calls()
    );
    let firewall_calls: Vec<_> = estate
        .compute
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("/global/firewalls"))
        .collect();
    assert_eq!(
        firewall_calls.iter().map(|s| s.status).collect::<Vec<_>>(),
        vec![429, 403, 200, 200, 200],
        "a 429, then Compute's 403 rateLimitExceeded, both retried"
    );
    assert!(
        firewall_calls[1].at.duration_since(firewall_calls[0].at) >= Duration::from_millis(990),
        "a retry came sooner than Retry-After"
    );
}

#[test]
fn a_failed_listing_makes_the_scan_partial_and_nothing_missing() {
    let mut spec = GceSpec::example();
    spec.fail = vec!["/aggregated/instances".into()];
    spec.items("networks")
        .retain(|n| n["name"] != "staging-net");
    spec.items("instances").clear();
    let estate = Estate::start(spec, &[], 1000);
    let report = estate.scan("");
    assert!(report.summary.partial);
    let failed = &report.summary.coverage.failed_scopes;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].r#type, "google_compute_instance");
    let error = failed[0].error.as_deref().unwrap_or("");
    assert!(
        error.contains("instances.aggregatedList") && error.contains("500"),
        "{error}"
    );
    assert!(error.contains("after 3 attempts"), "{error}");
    assert_eq!(estate.compute.calls("/aggregated/instances"), 3);
    // Both instances are gone from the answer, but their listing failed: not missing.
    let got = findings(&report);
    assert_eq!(
        got,
        vec![(
            "missing".into(),
            "google_compute_network".into(),
            format!("projects/{PROJECT}/global/networks/staging-net"),
            vec![]
        )]
    );
}

#[test]
fn unreachable_zones_leave_instances_unjudged() {
    // Both ways Compute says it: the answer's `unreachables`, and a scope's warning.
    for as_warning in [false, true] {
        let mut spec = GceSpec::example();
        spec.unreachable = vec!["zones/us-central1-a".into()];
        spec.unreachable_as_warning = as_warning;
        spec.items("instances").retain(|i| i["name"] != "batch-1");
        let estate = Estate::start(spec, &[], 1000);
        let report = estate.scan("");
        assert!(
            report.summary.partial,
            "as warning: {as_warning}: {:?} {:?}",
            report.summary.coverage, report.findings
        );
        let failed = &report.summary.coverage.failed_scopes;
        assert_eq!(failed.len(), 1, "{failed:?}");
        let error = failed[0].error.as_deref().unwrap();
        assert!(
            error.contains("unreachable: zones/us-central1-a"),
            "{error}"
        );
        assert_eq!(findings(&report), vec![], "batch-1 is not judged missing");
    }
}

#[test]
fn per_region_listing_judges_only_the_listed_regions() {
    let mut spec = GceSpec::example();
    // Gone from us-central1, which is not listed: not judged.
    spec.items("subnetworks")
        .retain(|s| s["name"] != "prod-usc1");
    spec.items("instances").retain(|i| i["name"] != "batch-1");
    // Gone from europe-west1, which is: missing.
    spec.items("instances").retain(|i| i["name"] != "web-1");
    let estate = Estate::start(spec, &[], 1000);
    let report = estate.scan("regions = [\"europe-west1\"]\nzones = [\"europe-west1-b\"]\n");
    assert!(!report.summary.partial, "{:?}", report.summary.coverage);
    assert_eq!(estate.compute.calls("/regions/europe-west1/subnetworks"), 1);
    assert_eq!(estate.compute.calls("/zones/europe-west1-b/instances"), 1);
    assert_eq!(estate.compute.calls("/aggregated/"), 0);
    assert_eq!(
        findings(&report),
        vec![(
            "missing".into(),
            "google_compute_instance".into(),
            format!("projects/{PROJECT}/zones/europe-west1-b/instances/web-1"),
            vec![]
        )]
    );
}

#[test]
fn several_projects_are_listed_each_in_its_own_scopes() {
    const STAGING: &str = "acme-staging-20931";
    let mut spec = GceSpec::example();
    // The staging project holds a copy of the custom network, which no state declares.
    let net = spec
        .items("networks")
        .iter()
        .find(|n| n["name"] == "prod-net")
        .unwrap()
        .clone();
    spec.items("networks").push(in_project(&net, STAGING));
    let estate = Estate::start(spec, &[], 1000);
    let report = estate.scan_projects(&[PROJECT, STAGING], "");
    assert!(!report.summary.partial, "{:?}", report.summary.coverage);
    assert_eq!(
        findings(&report),
        vec![(
            "unmanaged".into(),
            "google_compute_network".into(),
            format!("projects/{STAGING}/global/networks/prod-net"),
            vec![]
        )]
    );
    assert_eq!(
        report.findings[0].resource.account.as_deref(),
        Some(STAGING)
    );
    for project in [PROJECT, STAGING] {
        assert_eq!(
            estate
                .compute
                .calls(&format!("/projects/{project}/global/networks")),
            1,
            "{project}"
        );
    }
}

#[test]
fn a_service_account_key_and_application_default_credentials_both_authenticate() {
    let estate = Estate::start(GceSpec::example(), &[], 1000);
    let settings = |creds: &str| {
        format!(
            "[iac]\nstates = [\"main.tfstate\"]\n\n[[providers]]\nkind = \"gcp\"\n\
             projects = [\"{PROJECT}\"]\n{creds}compute_endpoint = \"{}\"\nstorage_endpoint = \"{}\"\n",
            estate.compute.endpoint, estate.gateway.endpoint
        )
    };
    // A key signs its own JWT: Compute accepts it, and no token is fetched.
    let key = estate.compute.service_account_file(estate.dir.path());
    let report = scan_config(
        estate.dir.path(),
        &settings(&format!("credentials_file = \"{}\"\n", key.display())),
    );
    assert!(!report.summary.partial, "{:?}", report.summary.coverage);
    assert_eq!(report.findings.len(), 0);
    assert_eq!(estate.compute.token_calls(), 0);
    assert!(estate.compute.seen().iter().all(|s| s.status == 200));
    // No `credentials_file`: Application Default Credentials, from the variable gcloud and
    // every Google library read.
    let user = estate.compute.credentials_file(estate.dir.path());
    std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", &user);
    let report = scan_config(estate.dir.path(), &settings(""));
    std::env::remove_var("GOOGLE_APPLICATION_CREDENTIALS");
    assert!(!report.summary.partial, "{:?}", report.summary.coverage);
    assert_eq!(report.findings.len(), 0);
    assert!(
        estate.compute.token_calls() >= 1,
        "the refresh token was exchanged"
    );
}

#[test]
fn a_refused_credential_fails_the_provider_without_calling_compute() {
    let estate = Estate::start(GceSpec::example(), &[], 1000);
    let creds = estate.dir.path().join("bad.json");
    std::fs::write(
        &creds,
        json!({"type": "authorized_user", "client_id": "x", "client_secret": "y",
               "refresh_token": "revoked", "token_uri": format!("{}/token", estate.compute.endpoint)})
        .to_string(),
    )
    .unwrap();
    let text = format!(
        "[iac]\nstates = [\"main.tfstate\"]\n\n[[providers]]\nkind = \"gcp\"\nprojects = [\"{PROJECT}\"]\n\
         credentials_file = \"bad.json\"\ncompute_endpoint = \"{}\"\nstorage_endpoint = \"{}\"\nmax_attempts = 1\n",
        estate.compute.endpoint, estate.gateway.endpoint
    );
    let report = scan_config(estate.dir.path(), &text);
    let p = &report.summary.providers[0];
    assert_eq!(p.status.as_str(), "failed", "{p:?}");
    let error = p.error.as_deref().unwrap_or("");
    assert!(
        !error.contains("revoked") && !error.contains("\"y\""),
        "a secret leaked: {error}"
    );
    assert!(report.summary.partial);
    assert!(report.findings.iter().all(|f| f.kind.as_str() != "missing"));
    assert_eq!(
        estate.compute.seen().len(),
        0,
        "no Compute request without a token"
    );
}

#[test]
fn bad_settings_are_config_errors() {
    use driftwatch_plugin_sdk::DynProviderFactory;
    for (settings, path) in [
        (json!({}), "projects"),
        (json!({"projects": ["a-1", "a-1"]}), "projects[1]"),
        (json!({"projects": ["Bad Project"]}), "projects[0]"),
        (
            json!({"projects": ["p"], "anonymous": true, "credentials_file": "k.json"}),
            "anonymous",
        ),
        (json!({"projects": ["p"], "page_size": 501}), "page_size"),
        (json!({"projects": ["p"], "concurrency": 0}), "concurrency"),
        (
            json!({"projects": ["p"], "compute_endpoint": "ftp://x"}),
            "compute_endpoint",
        ),
        (json!({"projects": ["p"], "region": "x"}), "region"),
    ] {
        match driftwatch_provider_gcp::GcpFactory.create(&settings).err() {
            Some(driftwatch_plugin_sdk::ProviderError::Config { path: got, .. }) => {
                assert_eq!(got, path, "{settings}")
            }
            other => panic!("{settings}: expected a config error at {path}, got {other:?}"),
        }
    }
}
