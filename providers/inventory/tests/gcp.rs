//! Cloud Asset Inventory exports mapped into google provider shapes.

mod common;

use common::{bytes, find, keys};
use driftwatch_plugin_sdk::{PortRange, ProviderError, RuleAction};
use driftwatch_provider_inventory::{parse_export, ExportReader, Format, Parsed};
use serde_json::{json, Value};

const PROJECT: &str = "acme-prod-421107";
const API: &str = "https://www.googleapis.com/compute/v1/projects/acme-prod-421107";

fn assets() -> Parsed {
    parse_export(
        Format::GcpAssetInventory,
        "assets.jsonl",
        &bytes("gcp/assets.jsonl"),
    )
    .expect("fixture parses")
}

fn pid(rest: &str) -> String {
    format!("projects/{PROJECT}/{rest}")
}

#[test]
fn every_supported_asset_becomes_a_resource() {
    let p = assets();
    let want: Vec<(String, String)> = [
        (
            "google_storage_bucket",
            "acme-prod-public-assets".to_string(),
        ),
        ("google_storage_bucket", "acme-prod-backups".to_string()),
        ("google_compute_network", pid("global/networks/default")),
        ("google_compute_network", pid("global/networks/prod-vpc")),
        (
            "google_compute_firewall",
            pid("global/firewalls/default-allow-ssh"),
        ),
        (
            "google_compute_firewall",
            pid("global/firewalls/prod-allow-web"),
        ),
        (
            "google_compute_firewall",
            pid("global/firewalls/prod-deny-telnet"),
        ),
        (
            "google_compute_firewall",
            pid("global/firewalls/prod-egress-lockdown"),
        ),
        (
            "google_compute_subnetwork",
            pid("regions/europe-west1/subnetworks/default"),
        ),
        (
            "google_compute_subnetwork",
            pid("regions/europe-west1/subnetworks/prod-app"),
        ),
        (
            "google_compute_instance",
            pid("zones/europe-west1-b/instances/web-1"),
        ),
    ]
    .into_iter()
    .map(|(t, i)| (t.to_string(), i))
    .collect();
    assert_eq!(keys(&p), want);
    for r in &p.resources {
        assert_eq!(r.key.provider, "gcp");
        assert_eq!(r.account.as_deref(), Some(PROJECT), "{}", r.key);
    }
    assert_eq!(
        p.warnings,
        ["skipped 1 asset(s) of unsupported type compute.googleapis.com/Disk"]
    );
    assert_eq!(p.scopes.len(), 5);
    assert!(p
        .scopes
        .iter()
        .all(|s| s.complete && s.provider == "gcp" && s.account.as_deref() == Some(PROJECT)));
}

#[test]
fn public_bucket_merges_its_iam_policy_line() {
    let p = assets();
    let b = find(&p, "google_storage_bucket", "acme-prod-public-assets");
    assert_eq!(
        Value::Object(b.attributes.clone()),
        json!({
            "name": "acme-prod-public-assets",
            // Resolved from the project number through the compute assets.
            "project": PROJECT,
            "location": "EU",
            "storage_class": "STANDARD",
            "labels": {"env": "prod", "team": "web"},
            "versioning": [{"enabled": true}],
            "uniform_bucket_level_access": true,
            "public_access_prevention": "inherited",
        })
    );
    assert_eq!(b.tags.get("team").map(String::as_str), Some("web"));
    assert_eq!(b.region.as_deref(), Some("eu"));
    let storage = b.facets.storage.as_ref().unwrap();
    assert!(storage.public, "allUsers binding, prevention inherited");
    assert_eq!(storage.versioning, Some(true));
    assert_eq!(storage.encrypted, Some(true));
}

#[test]
fn enforced_prevention_keeps_a_bucket_private() {
    let p = assets();
    let b = find(&p, "google_storage_bucket", "acme-prod-backups");
    assert_eq!(b.attributes["location"], json!("EUROPE-WEST1"));
    assert_eq!(b.attributes["storage_class"], json!("NEARLINE"));
    assert_eq!(b.attributes["public_access_prevention"], json!("enforced"));
    assert_eq!(b.attributes["labels"], json!({}));
    assert!(!b.attributes.contains_key("versioning"));
    let storage = b.facets.storage.as_ref().unwrap();
    assert!(!storage.public);
    assert_eq!(storage.versioning, Some(false));
}

#[test]
fn networks() {
    let p = assets();
    let default = find(
        &p,
        "google_compute_network",
        &pid("global/networks/default"),
    );
    assert!(default.cloud_default);
    assert_eq!(
        Value::Object(default.attributes.clone()),
        json!({
            "name": "default",
            "project": PROJECT,
            "description": "Default network for the project",
            "auto_create_subnetworks": true,
            "routing_mode": "REGIONAL",
        })
    );
    assert_eq!(default.region, None);
    let prod = find(
        &p,
        "google_compute_network",
        &pid("global/networks/prod-vpc"),
    );
    assert!(!prod.cloud_default);
    assert_eq!(prod.attributes["mtu"], json!(1460));
    assert_eq!(prod.attributes["routing_mode"], json!("GLOBAL"));
    assert_eq!(prod.attributes["auto_create_subnetworks"], json!(false));
    assert_eq!(prod.attributes["description"], json!(""));
}

#[test]
fn default_allow_ssh_firewall() {
    let p = assets();
    let fw = find(
        &p,
        "google_compute_firewall",
        &pid("global/firewalls/default-allow-ssh"),
    );
    assert!(fw.cloud_default);
    assert_eq!(
        Value::Object(fw.attributes.clone()),
        json!({
            "name": "default-allow-ssh",
            "project": PROJECT,
            "description": "Allow SSH from anywhere",
            "network": format!("{API}/global/networks/default"),
            "priority": 65534,
            "direction": "INGRESS",
            "disabled": false,
            "source_ranges": ["0.0.0.0/0"],
            "destination_ranges": [],
            "source_tags": [],
            "target_tags": [],
            "source_service_accounts": [],
            "target_service_accounts": [],
            "allow": [{"protocol": "tcp", "ports": ["22"]}],
            "deny": [],
        })
    );
    let ingress = &fw.facets.network.as_ref().unwrap().ingress;
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0].protocol, "tcp");
    assert_eq!(ingress[0].ports, [PortRange { from: 22, to: 22 }]);
    assert_eq!(ingress[0].sources, ["0.0.0.0/0"]);
    assert_eq!(ingress[0].priority, Some(65534));
    assert_eq!(ingress[0].name.as_deref(), Some("default-allow-ssh"));
    assert!(ingress[0].opens_to_world(22));
}

#[test]
fn allow_deny_and_egress_firewalls() {
    let p = assets();
    let web = find(
        &p,
        "google_compute_firewall",
        &pid("global/firewalls/prod-allow-web"),
    );
    assert!(!web.cloud_default);
    assert_eq!(
        web.attributes["allow"],
        json!([
            {"protocol": "tcp", "ports": ["80", "443", "8000-8100"]},
            {"protocol": "icmp", "ports": []},
        ])
    );
    assert_eq!(web.attributes["target_tags"], json!(["web"]));
    let ingress = &web.facets.network.as_ref().unwrap().ingress;
    assert_eq!(ingress.len(), 2);
    assert_eq!(
        ingress[0].ports,
        [
            PortRange { from: 80, to: 80 },
            PortRange { from: 443, to: 443 },
            PortRange {
                from: 8000,
                to: 8100
            }
        ]
    );
    assert_eq!(ingress[1].protocol, "icmp");
    assert!(ingress[1].ports.is_empty());

    let deny = find(
        &p,
        "google_compute_firewall",
        &pid("global/firewalls/prod-deny-telnet"),
    );
    assert_eq!(
        deny.attributes["deny"],
        json!([{"protocol": "tcp", "ports": ["23"]}])
    );
    assert_eq!(deny.attributes["allow"], json!([]));
    let rule = &deny.facets.network.as_ref().unwrap().ingress[0];
    assert_eq!(rule.action, RuleAction::Deny);
    assert_eq!(rule.sources, ["0.0.0.0/0", "legacy"]);
    assert_eq!(rule.priority, Some(900));

    let egress = find(
        &p,
        "google_compute_firewall",
        &pid("global/firewalls/prod-egress-lockdown"),
    );
    assert!(
        egress.facets.network.is_none(),
        "egress rules admit nothing"
    );
    assert_eq!(egress.attributes["direction"], json!("EGRESS"));
    assert_eq!(
        egress.attributes["destination_ranges"],
        json!(["0.0.0.0/0"])
    );
    assert_eq!(
        egress.attributes["target_service_accounts"],
        json!(["batch@acme-prod-421107.iam.gserviceaccount.com"])
    );
    assert_eq!(
        egress.attributes["deny"],
        json!([{"protocol": "all", "ports": []}])
    );
}

#[test]
fn subnetworks() {
    let p = assets();
    let app = find(
        &p,
        "google_compute_subnetwork",
        &pid("regions/europe-west1/subnetworks/prod-app"),
    );
    assert!(!app.cloud_default);
    assert_eq!(app.region.as_deref(), Some("europe-west1"));
    assert_eq!(
        Value::Object(app.attributes.clone()),
        json!({
            "name": "prod-app",
            "project": PROJECT,
            "description": "Application tier",
            "ip_cidr_range": "10.40.0.0/20",
            "network": format!("{API}/global/networks/prod-vpc"),
            "region": "europe-west1",
            "private_ip_google_access": true,
            "secondary_ip_range": [
                {"range_name": "pods", "ip_cidr_range": "10.48.0.0/14"},
                {"range_name": "services", "ip_cidr_range": "10.52.0.0/20"},
            ],
        })
    );
    let default = find(
        &p,
        "google_compute_subnetwork",
        &pid("regions/europe-west1/subnetworks/default"),
    );
    assert!(default.cloud_default);
    assert_eq!(default.attributes["secondary_ip_range"], json!([]));
}

#[test]
fn instance() {
    let p = assets();
    let vm = find(
        &p,
        "google_compute_instance",
        &pid("zones/europe-west1-b/instances/web-1"),
    );
    assert_eq!(vm.region.as_deref(), Some("europe-west1-b"));
    assert_eq!(vm.name.as_deref(), Some("web-1"));
    assert_eq!(vm.tags.get("env").map(String::as_str), Some("prod"));
    assert_eq!(
        Value::Object(vm.attributes.clone()),
        json!({
            "name": "web-1",
            "project": PROJECT,
            "description": "",
            "machine_type": "e2-medium",
            "zone": "europe-west1-b",
            "labels": {"env": "prod", "team": "web"},
            "tags": ["web", "http-server"],
            "current_status": "RUNNING",
            "can_ip_forward": false,
            "deletion_protection": true,
        })
    );
}

#[test]
fn iam_policy_in_another_file_is_merged() {
    // The policy changed after the bucket did: its newer time must not hide the bucket.
    let resource = r#"{"name":"//storage.googleapis.com/b1","asset_type":"storage.googleapis.com/Bucket","resource":{"data":{"name":"b1","location":"us"}},"update_time":"2024-01-01T00:00:00Z"}"#;
    let policy = r#"{"name":"//storage.googleapis.com/b1","asset_type":"storage.googleapis.com/Bucket","iam_policy":{"bindings":[{"role":"roles/storage.objectViewer","members":["allAuthenticatedUsers"]}]},"update_time":"2024-03-01T00:00:00Z"}"#;
    let mut reader = ExportReader::new(Format::GcpAssetInventory);
    reader.add("iam.jsonl", policy.as_bytes()).unwrap();
    reader.add("resource.jsonl", resource.as_bytes()).unwrap();
    let p = reader.finish();
    assert_eq!(p.resources.len(), 1);
    let b = &p.resources[0];
    assert!(b.facets.storage.as_ref().unwrap().public);
    assert_eq!(b.attributes["location"], json!("US"));
    // No project number known: the project is left out rather than guessed.
    assert!(!b.attributes.contains_key("project"));
    assert_eq!(b.account, None);
    assert!(p.scopes.iter().all(|s| s.account.is_none()));
}

#[test]
fn asset_list_array_and_deleted_assets() {
    let doc = json!([
        {"name": "//compute.googleapis.com/projects/p1/global/networks/n1",
         "assetType": "compute.googleapis.com/Network",
         "resource": {"data": {"name": "n1", "autoCreateSubnetworks": false}}},
        {"asset": {"name": "//compute.googleapis.com/projects/p1/global/networks/n2",
                   "assetType": "compute.googleapis.com/Network"},
         "deleted": true},
        {"name": "//compute.googleapis.com/projects/p1/global/networks/n3",
         "assetType": "compute.googleapis.com/Network"}
    ]);
    let p = parse_export(
        Format::GcpAssetInventory,
        "list.json",
        doc.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(
        keys(&p),
        [(
            "google_compute_network".to_string(),
            "projects/p1/global/networks/n1".to_string()
        )]
    );
    assert_eq!(
        p.warnings,
        [
            "skipped 1 compute.googleapis.com/Network asset(s) without resource data (IAM-policy-only export?)",
            "skipped 1 deleted compute.googleapis.com/Network asset(s)",
        ]
    );
}

#[test]
fn malformed_inputs_are_errors_not_panics() {
    let line1 = r#"{"name":"//compute.googleapis.com/projects/p/global/networks/n","asset_type":"compute.googleapis.com/Network"}"#;
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{line1}\n{line1}\n{{\"name\": \"x\",\n"),
            "line 3: invalid JSON record",
        ),
        (
            format!("{line1}\n\n{{\"name\":\"x\"}}\n"),
            "line 3: asset x has no `asset_type`",
        ),
        (
            format!("{line1}\n{{\"asset_type\":\"t\"}}\n"),
            "line 2: asset has no `name`",
        ),
        (
            format!("{line1}\n[1]\n"),
            "line 2: expected an asset object",
        ),
        ("{\"assets\": 1}".into(), "`assets` must be an array"),
        ("\"text\"".into(), "not a Cloud Asset Inventory export"),
        (
            r#"[{"name":"n","asset_type":"t","resource":"oops"}]"#.into(),
            "$[0]: `resource` must be an object",
        ),
    ];
    for (text, want) in cases {
        match parse_export(Format::GcpAssetInventory, "bad.jsonl", text.as_bytes()) {
            Err(ProviderError::Input {
                source_name,
                message,
            }) => {
                assert_eq!(source_name, "bad.jsonl");
                assert!(message.contains(want), "{text}: {message}");
            }
            other => panic!("{text}: expected an input error, got {other:?}"),
        }
    }
}
