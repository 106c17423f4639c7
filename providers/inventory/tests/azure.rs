//! Azure Resource Graph results mapped into azurerm shapes.

mod common;

use common::{bytes, find, keys};
use driftwatch_plugin_sdk::{PortRange, ProviderError, RuleAction};
use driftwatch_provider_inventory::{parse_export, Format, Parsed};
use serde_json::{json, Value};

const SUB: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
const RG: &str = "/subscriptions/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0/resourceGroups";

fn graph() -> Parsed {
    parse_export(
        Format::AzureResourceGraph,
        "resource-graph.json",
        &bytes("azure/resource-graph.json"),
    )
    .expect("fixture parses")
}

fn id(rest: &str) -> String {
    format!("{RG}/{rest}")
}

#[test]
fn every_supported_row_becomes_a_resource() {
    let p = graph();
    let want: Vec<(String, String)> = [
        (
            "azurerm_network_security_group",
            id("Prod-Network-RG/providers/Microsoft.Network/networkSecurityGroups/web-nsg"),
        ),
        (
            "azurerm_virtual_network",
            id("Prod-Network-RG/providers/Microsoft.Network/virtualNetworks/prod-vnet"),
        ),
        (
            "azurerm_subnet",
            id("Prod-Network-RG/providers/Microsoft.Network/virtualNetworks/prod-vnet/subnets/app"),
        ),
        (
            "azurerm_subnet",
            id("Prod-Network-RG/providers/Microsoft.Network/virtualNetworks/prod-vnet/subnets/data"),
        ),
        (
            "azurerm_storage_account",
            id("Prod-Data-RG/providers/Microsoft.Storage/storageAccounts/acmeprodassets01"),
        ),
        ("azurerm_resource_group", id("Prod-Network-RG")),
        ("azurerm_resource_group", id("NetworkWatcherRG")),
    ]
    .into_iter()
    .map(|(t, i)| (t.to_string(), i))
    .collect();
    assert_eq!(keys(&p), want);
    for r in &p.resources {
        assert_eq!(r.key.provider, "azure");
        assert_eq!(r.account.as_deref(), Some(SUB));
        assert_eq!(r.region.as_deref(), Some("westeurope"));
    }
    assert_eq!(
        p.warnings,
        [
            "skipped 1 row(s) of unsupported type microsoft.compute/disks",
            "skipped 1 row(s) of unsupported type microsoft.compute/virtualmachines",
        ]
    );
    assert_eq!(p.scopes.len(), 5);
    assert!(p
        .scopes
        .iter()
        .all(|s| s.complete && s.account.as_deref() == Some(SUB) && s.provider == "azure"));
}

#[test]
fn nsg_custom_rules_in_azurerm_shape() {
    let p = graph();
    let nsg = find(
        &p,
        "azurerm_network_security_group",
        &id("Prod-Network-RG/providers/Microsoft.Network/networkSecurityGroups/web-nsg"),
    );
    assert_eq!(nsg.name.as_deref(), Some("web-nsg"));
    assert_eq!(nsg.attributes["name"], json!("web-nsg"));
    assert_eq!(nsg.attributes["location"], json!("westeurope"));
    // The group's case comes from the id, as Terraform stores it.
    assert_eq!(
        nsg.attributes["resource_group_name"],
        json!("Prod-Network-RG")
    );
    assert_eq!(
        nsg.attributes["tags"],
        json!({"env": "prod", "owner": "netops"})
    );
    let rules = nsg.attributes["security_rule"].as_array().unwrap();
    assert_eq!(
        rules.len(),
        3,
        "default rules are not part of security_rule"
    );
    assert_eq!(
        rules[0],
        json!({
            "name": "allow-ssh-from-internet",
            "description": "",
            "protocol": "Tcp",
            "source_port_range": "*",
            "source_port_ranges": [],
            "destination_port_range": "22",
            "destination_port_ranges": [],
            "source_address_prefix": "Internet",
            "source_address_prefixes": [],
            "destination_address_prefix": "*",
            "destination_address_prefixes": [],
            "source_application_security_group_ids": [],
            "destination_application_security_group_ids": [],
            "access": "Allow",
            "priority": 100,
            "direction": "Inbound",
        })
    );
    assert_eq!(rules[1]["destination_port_range"], json!(""));
    assert_eq!(
        rules[1]["destination_port_ranges"],
        json!(["80", "443", "8000-8100"])
    );
    assert_eq!(
        rules[1]["source_address_prefixes"],
        json!(["10.0.0.0/8", "192.168.0.0/16"])
    );
    assert_eq!(
        rules[1]["description"],
        json!("HTTP and HTTPS from the corporate ranges")
    );
    assert_eq!(rules[2]["direction"], json!("Outbound"));
    assert_eq!(rules[2]["protocol"], json!("*"));
}

#[test]
fn nsg_facet_merges_custom_and_default_inbound_rules_by_priority() {
    let p = graph();
    let nsg = find(
        &p,
        "azurerm_network_security_group",
        &id("Prod-Network-RG/providers/Microsoft.Network/networkSecurityGroups/web-nsg"),
    );
    let ingress = &nsg.facets.network.as_ref().unwrap().ingress;
    let summary: Vec<(Option<i64>, Option<&str>, bool)> = ingress
        .iter()
        .map(|r| (r.priority, r.name.as_deref(), r.cloud_default))
        .collect();
    assert_eq!(
        summary,
        [
            (Some(100), Some("allow-ssh-from-internet"), false),
            (Some(200), Some("allow-web-from-corp"), false),
            (Some(65000), Some("AllowVnetInBound"), true),
            (Some(65001), Some("AllowAzureLoadBalancerInBound"), true),
            (Some(65500), Some("DenyAllInBound"), true),
        ]
    );
    let ssh = &ingress[0];
    assert_eq!(ssh.protocol, "tcp");
    assert_eq!(ssh.ports, [PortRange { from: 22, to: 22 }]);
    assert_eq!(ssh.sources, ["Internet"]);
    assert!(ssh.opens_to_world(22));
    let web = &ingress[1];
    assert_eq!(
        web.ports,
        [
            PortRange { from: 80, to: 80 },
            PortRange { from: 443, to: 443 },
            PortRange {
                from: 8000,
                to: 8100
            },
        ]
    );
    assert_eq!(web.sources, ["10.0.0.0/8", "192.168.0.0/16"]);
    let deny = &ingress[4];
    assert_eq!(deny.action, RuleAction::Deny);
    assert_eq!(deny.protocol, "all");
    assert!(deny.ports.is_empty());
    assert_eq!(deny.sources, ["*"]);
}

#[test]
fn vnet_and_its_subnets() {
    let p = graph();
    let vnet_id = id("Prod-Network-RG/providers/Microsoft.Network/virtualNetworks/prod-vnet");
    let vnet = find(&p, "azurerm_virtual_network", &vnet_id);
    assert_eq!(vnet.attributes["address_space"], json!(["10.10.0.0/16"]));
    assert_eq!(
        vnet.attributes["dns_servers"],
        json!(["10.10.0.4", "10.10.0.5"])
    );
    assert_eq!(vnet.attributes["tags"], json!({"env": "prod"}));
    let nsg_id = id("Prod-Network-RG/providers/Microsoft.Network/networkSecurityGroups/web-nsg");
    assert_eq!(
        vnet.attributes["subnet"],
        json!([
            {"name": "app", "id": format!("{vnet_id}/subnets/app"), "address_prefix": "10.10.1.0/24",
             "address_prefixes": ["10.10.1.0/24"], "security_group": nsg_id},
            {"name": "data", "id": format!("{vnet_id}/subnets/data"), "address_prefix": "10.10.2.0/24",
             "address_prefixes": ["10.10.2.0/24", "10.10.3.0/24"], "security_group": ""},
        ])
    );
    let app = find(&p, "azurerm_subnet", &format!("{vnet_id}/subnets/app"));
    assert_eq!(
        Value::Object(app.attributes.clone()),
        json!({
            "name": "app",
            "resource_group_name": "Prod-Network-RG",
            "virtual_network_name": "prod-vnet",
            "address_prefixes": ["10.10.1.0/24"],
            "service_endpoints": ["Microsoft.Storage", "Microsoft.KeyVault"],
        })
    );
    let data = find(&p, "azurerm_subnet", &format!("{vnet_id}/subnets/data"));
    assert_eq!(
        data.attributes["address_prefixes"],
        json!(["10.10.2.0/24", "10.10.3.0/24"])
    );
    assert_eq!(data.attributes["service_endpoints"], json!([]));
    assert!(data.tags.is_empty());
}

#[test]
fn storage_account() {
    let p = graph();
    let sa = find(
        &p,
        "azurerm_storage_account",
        &id("Prod-Data-RG/providers/Microsoft.Storage/storageAccounts/acmeprodassets01"),
    );
    assert_eq!(
        Value::Object(sa.attributes.clone()),
        json!({
            "name": "acmeprodassets01",
            "location": "westeurope",
            "resource_group_name": "Prod-Data-RG",
            "tags": {"env": "prod", "data-class": "public"},
            "account_kind": "StorageV2",
            "account_tier": "Standard",
            "account_replication_type": "GRS",
            "access_tier": "Hot",
            "https_traffic_only_enabled": true,
            "enable_https_traffic_only": true,
            "min_tls_version": "TLS1_2",
            "allow_nested_items_to_be_public": true,
            "public_network_access_enabled": true,
            "is_hns_enabled": false,
            "shared_access_key_enabled": false,
        })
    );
    let storage = sa.facets.storage.as_ref().unwrap();
    assert!(storage.public);
    assert_eq!(storage.encrypted, Some(true));
    assert_eq!(storage.versioning, None);
}

#[test]
fn resource_groups() {
    let p = graph();
    let rg = find(&p, "azurerm_resource_group", &id("Prod-Network-RG"));
    assert_eq!(
        Value::Object(rg.attributes.clone()),
        json!({"name": "Prod-Network-RG", "location": "westeurope",
               "tags": {"env": "prod", "costCenter": "1234"}})
    );
    assert!(!rg.cloud_default);
    let watcher = find(&p, "azurerm_resource_group", &id("NetworkWatcherRG"));
    assert!(watcher.cloud_default);
    assert_eq!(watcher.attributes["tags"], json!({}));
}

#[test]
fn other_result_shapes() {
    let row = json!({
        "id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/x",
        "name": "x",
        "type": "Microsoft.Network/virtualNetworks/subnets",
        "properties": {"addressPrefix": "10.0.0.0/24"}
    });
    for doc in [
        json!([row]),
        json!({"value": [row]}),
        json!({"data": [row]}),
        row.clone(),
    ] {
        let p = parse_export(
            Format::AzureResourceGraph,
            "x.json",
            doc.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(p.resources.len(), 1, "{doc}");
        let s = &p.resources[0];
        assert_eq!(s.key.r#type, "azurerm_subnet");
        assert_eq!(s.account.as_deref(), Some("s1"), "parsed from the id");
        assert_eq!(s.attributes["virtual_network_name"], json!("v"));
        assert_eq!(s.attributes["address_prefixes"], json!(["10.0.0.0/24"]));
        // No resource group rows: their listing is not claimed complete.
        assert!(p
            .scopes
            .iter()
            .all(|s| s.r#type != "azurerm_resource_group"));
        assert_eq!(p.scopes.len(), 1, "only the subnet type has records");
        assert!(p.warnings.iter().any(|w| w.contains("ResourceContainers")));
    }
}

#[test]
fn subnets_listed_twice_are_emitted_once() {
    let vnet = json!({
        "id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v",
        "name": "v", "type": "microsoft.network/virtualnetworks", "location": "eastus",
        "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [{"id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a",
                         "name": "a", "properties": {"addressPrefix": "10.0.1.0/24"}}]}
    });
    let subnet = json!({
        "id": "/subscriptions/S1/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/v/subnets/A",
        "name": "a", "type": "microsoft.network/virtualnetworks/subnets",
        "properties": {"addressPrefix": "10.0.1.0/24"}
    });
    let p = parse_export(
        Format::AzureResourceGraph,
        "x.json",
        json!({"data": [vnet, subnet]}).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(p.resources.len(), 2);
}

#[test]
fn truncated_results_make_scopes_incomplete() {
    let doc = json!({
        "count": 1,
        "data": [{"id": "/subscriptions/s1/resourceGroups/rg", "name": "rg",
                  "type": "microsoft.resources/subscriptions/resourcegroups", "location": "eastus"}],
        "skip_token": "ew0KICAiJGlkIjogIjEiLA0KICAiTWF4Um93cyI6IDEsDQp9",
        "total_records": 250
    });
    let p = parse_export(
        Format::AzureResourceGraph,
        "page1.json",
        doc.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(p.scopes.len(), 5);
    for s in &p.scopes {
        assert!(!s.complete);
        assert_eq!(
            s.error.as_deref(),
            Some("the Resource Graph result is truncated: 1 of 250 rows exported (skip_token set)")
        );
    }
    assert!(p.warnings[0].starts_with("page1.json: `skip_token` is set"));
}

#[test]
fn malformed_inputs_are_errors_not_panics() {
    let cases: &[(&str, &str)] = &[
        ("{\"data\": [", "invalid JSON"),
        ("{\"rows\": []}", "not an Azure Resource Graph result"),
        (
            "{\"data\": {\"columns\": [], \"rows\": []}}",
            "table-format results are not supported",
        ),
        ("{\"data\": 5}", "`data` must be an array of rows"),
        ("[\"x\"]", "$[0]: expected a row object"),
        (
            "[{\"id\": \"/subscriptions/s/x\"}]",
            "$[0]: row has no `type`",
        ),
        (
            "{\"data\": [{\"type\": \"microsoft.storage/storageaccounts\"}]}",
            "data[0]: microsoft.storage/storageaccounts row has no `id`",
        ),
        ("true", "not an Azure Resource Graph result"),
    ];
    for (text, want) in cases {
        match parse_export(Format::AzureResourceGraph, "bad.json", text.as_bytes()) {
            Err(ProviderError::Input {
                source_name,
                message,
            }) => {
                assert_eq!(source_name, "bad.json");
                assert!(message.contains(want), "{text}: {message}");
            }
            other => panic!("{text}: expected an input error, got {other:?}"),
        }
    }
}
