//! The Azure provider against the ARM fixture server, which serves Microsoft's own example
//! responses: an estate in sync gives no finding (default NSG rules, NetworkWatcherRG and
//! ids written in another case included), each kind of portal drift gives exactly its
//! finding, every `nextLink` is followed, 429 is retried after `Retry-After`, and a listing
//! that keeps failing leaves its scope incomplete instead of calling resources missing.

use driftwatch_plugin_sdk::DynProviderFactory;
use driftwatch_plugin_sdk::{
    CollectContext, CollectReport, Emit, FindingKind, ProviderError, Resource, ScanReport,
};
use driftwatch_provider_azure::AzureFactory;
use driftwatch_tests::arm_fixture::{
    storage_account, terraform_state as state, ArmFixture, ArmSpec, RG1, RG2, SUBSCRIPTION,
};
use driftwatch_tests::scan_config;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn scan_now(dir: &Path, fixture: &ArmFixture) -> ScanReport {
    ArmFixture::credentials_env();
    let text = format!(
        "[iac]\nstates = [\"main.tfstate\"]\n\n[[providers]]\nkind = \"azure\"\n{}",
        fixture.provider_settings()
    );
    scan_config(dir, &text)
}

fn findings(report: &ScanReport) -> Vec<(FindingKind, String, Vec<String>)> {
    let mut got: Vec<_> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.kind,
                f.resource.key.id.to_ascii_lowercase(),
                f.changes.iter().map(|c| c.path.clone()).collect(),
            )
        })
        .collect();
    got.sort();
    got
}

fn with_state() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.tfstate"), state().to_string()).unwrap();
    dir
}

#[test]
fn an_estate_in_sync_has_no_finding() {
    let fixture = ArmFixture::start(ArmSpec::examples());
    let dir = with_state();
    let report = scan_now(dir.path(), &fixture);
    let summary = &report.summary;
    assert!(!summary.partial, "{:?}", summary.coverage.failed_scopes);
    assert_eq!(
        findings(&report),
        vec![],
        "an estate in sync has no finding"
    );
    // NetworkWatcherRG is Azure's own.
    assert_eq!(summary.resources.cloud_defaults, 1);
    // Every ARM request the fixture saw is counted; pages of one item mean one request per
    // item: 3 NSGs, 2 vnets, 3 groups, 1 account.
    assert_eq!(fixture.seen().len(), 3 + 2 + 3 + 1);
    assert_eq!(summary.providers[0].api_calls, 3 + 2 + 3 + 1);
}

#[test]
fn each_kind_of_portal_drift_gives_exactly_its_finding() {
    let mut spec = ArmSpec::examples();
    // SSH opened to the world on nsg1 from the portal.
    let nsgs = spec.items("nsg");
    nsgs[0]["properties"]["securityRules"] = json!([{
        "name": "ssh-incident-4411",
        "id": format!("{RG1}/providers/Microsoft.Network/networkSecurityGroups/nsg1/securityRules/ssh-incident-4411"),
        "properties": {"protocol": "TCP", "sourcePortRange": "*", "destinationPortRange": "22",
            "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "access": "Allow",
            "priority": 100, "direction": "Inbound", "provisioningState": "Succeeded"}}]);
    // vnet2 deleted.
    spec.items("vnet").retain(|v| v["name"] != "vnet2");
    // An unmanaged storage account, and a tag changed on the managed one.
    let accounts = spec.items("storage");
    accounts[0]["tags"]["owner"] = json!("someone-else");
    accounts.push(storage_account("shadowexport", "rg2", json!({})));
    let fixture = ArmFixture::start(spec);
    let dir = with_state();
    let report = scan_now(dir.path(), &fixture);
    assert!(!report.summary.partial);
    let id = |s: String| s.to_ascii_lowercase();
    let mut want = vec![
        (
            FindingKind::Changed,
            id(format!(
                "{RG1}/providers/Microsoft.Network/networkSecurityGroups/nsg1"
            )),
            vec!["security_rule".to_string()],
        ),
        (
            FindingKind::Missing,
            id(format!(
                "{RG2}/providers/Microsoft.Network/virtualNetworks/vnet2"
            )),
            vec![],
        ),
        (
            FindingKind::Changed,
            id(format!(
                "{RG1}/providers/Microsoft.Storage/storageAccounts/acmetfstate"
            )),
            vec!["tags.owner".to_string()],
        ),
        (
            FindingKind::Unmanaged,
            id(format!(
                "{RG2}/providers/Microsoft.Storage/storageAccounts/shadowexport"
            )),
            vec![],
        ),
    ];
    want.sort();
    assert_eq!(findings(&report), want);
    let nsg1 = report
        .findings
        .iter()
        .find(|f| f.resource.key.id.ends_with("/nsg1"))
        .unwrap();
    let actual = &nsg1.changes[0].actual;
    // Rules compare in a canonical form: singular and plural fields as one list.
    assert_eq!(
        actual[0]["destination_port_ranges"],
        json!(["22"]),
        "{actual}"
    );
    assert_eq!(
        actual[0]["source_address_prefixes"],
        json!(["*"]),
        "{actual}"
    );
    // The cross-cloud facet shows port 22 open to the world next to Azure's defaults.
    let ingress = &nsg1.facets.network.as_ref().unwrap().ingress;
    assert!(ingress
        .iter()
        .any(|r| !r.cloud_default && r.ports.iter().any(|p| p.from <= 22 && 22 <= p.to)));
    assert_eq!(ingress.iter().filter(|r| r.cloud_default).count(), 3);
}

#[derive(Default)]
struct Gather(Vec<Resource>);

impl Emit for Gather {
    fn emit(&mut self, batch: Vec<Resource>) -> Result<(), ProviderError> {
        self.0.extend(batch);
        Ok(())
    }
}

fn collect(
    fixture: &ArmFixture,
    extra: Value,
) -> Result<(Vec<Resource>, CollectReport), ProviderError> {
    ArmFixture::credentials_env();
    let mut config = json!({"endpoint": fixture.endpoint, "authority_host": fixture.endpoint,
        "subscriptions": [SUBSCRIPTION], "rate_limit": 1000});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let p = AzureFactory.create(&config)?;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut out = Gather::default();
    let report = rt.block_on(p.collect(&CollectContext::new(100), &mut out))?;
    Ok((out.0, report))
}

fn count(rs: &[Resource], ty: &str) -> usize {
    rs.iter().filter(|r| r.key.r#type == ty).count()
}

#[test]
fn every_next_link_is_followed_and_429_waits_for_retry_after() {
    let mut spec = ArmSpec::examples();
    for i in 0..5 {
        spec.items("storage")
            .push(storage_account(&format!("acct{i}"), "rg2", json!({})));
    }
    spec.page = 2;
    spec.throttle = vec![("virtualnetworks".into(), 2)];
    let fixture = ArmFixture::start(spec);
    let (resources, report) = collect(&fixture, json!({})).unwrap();
    assert!(
        report.scopes.iter().all(|s| s.complete),
        "{:?}",
        report.scopes
    );
    assert_eq!(count(&resources, "azurerm_storage_account"), 6);
    assert_eq!(count(&resources, "azurerm_network_security_group"), 3);
    assert_eq!(count(&resources, "azurerm_virtual_network"), 2);
    assert_eq!(count(&resources, "azurerm_subnet"), 1);
    assert_eq!(count(&resources, "azurerm_resource_group"), 3);
    // Pages of two: 3 for 6 accounts, 2 for 3 NSGs, 2 for 3 groups, 1 for 2 vnets after
    // two throttled attempts.
    assert_eq!(fixture.calls("storageaccounts"), 3);
    assert_eq!(fixture.calls("networksecuritygroups"), 2);
    assert_eq!(fixture.calls("resourcegroups"), 2);
    assert_eq!(fixture.calls("virtualnetworks"), 3);
    assert_eq!(report.api_calls, 3 + 2 + 2 + 3);
    // Each retry came no sooner than the server's Retry-After of one second.
    let vnet: Vec<_> = fixture
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("virtualnetworks"))
        .collect();
    assert_eq!(
        vnet.iter().map(|s| s.status).collect::<Vec<_>>(),
        [429, 429, 200]
    );
    for pair in vnet.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_secs(1));
    }
}

#[test]
fn a_listing_that_keeps_failing_is_partial_never_missing() {
    let mut spec = ArmSpec::examples();
    spec.fail = vec!["storageaccounts".into()];
    spec.items("vnet").retain(|v| v["name"] != "vnet2");
    let fixture = ArmFixture::start(spec);
    let (_, report) = collect(&fixture, json!({"max_attempts": 2})).unwrap();
    let failed: Vec<_> = report.scopes.iter().filter(|s| !s.complete).collect();
    assert_eq!(failed.len(), 1, "{:?}", report.scopes);
    assert_eq!(failed[0].r#type, "azurerm_storage_account");
    assert!(
        failed[0].error.as_deref().unwrap().contains("500"),
        "{:?}",
        failed[0].error
    );
    // Retried once (two attempts), then given up on.
    assert_eq!(fixture.calls("storageaccounts"), 2);

    // In a scan, the declared account is not called missing; vnet2, which was listed and is
    // gone, is.
    let dir = with_state();
    let report = scan_now(dir.path(), &fixture);
    assert!(report.summary.partial);
    assert_eq!(
        findings(&report),
        vec![(
            FindingKind::Missing,
            format!("{RG2}/providers/Microsoft.Network/virtualNetworks/vnet2").to_ascii_lowercase(),
            vec![]
        )]
    );
}

#[test]
fn bad_credentials_fail_the_provider_with_the_reason() {
    let fixture = ArmFixture::start(ArmSpec {
        reject_tokens: true,
        ..ArmSpec::examples()
    });
    ArmFixture::credentials_env();
    let p = AzureFactory
        .create(
            &json!({"endpoint": fixture.endpoint, "authority_host": fixture.endpoint,
        "subscriptions": [SUBSCRIPTION], "max_attempts": 1}),
        )
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(p.collect(&CollectContext::new(100), &mut Gather::default()))
        .unwrap_err();
    assert!(err.to_string().contains("token"), "{err}");
    // Azure AD was asked and refused; ARM never saw a request.
    assert!(!fixture.token_statuses().is_empty());
    assert!(fixture.token_statuses().iter().all(|&s| s == 401));
    assert_eq!(fixture.seen().len(), 0, "no ARM request without a token");
}

#[test]
fn subscriptions_are_listed_when_none_is_configured() {
    let mut spec = ArmSpec::examples();
    spec.lists.insert(
        "/subscriptions".into(),
        vec![
            json!({"id": "/subscriptions/subid", "subscriptionId": "subid", "state": "Enabled",
                   "displayName": "examples"}),
            json!({"id": "/subscriptions/gone", "subscriptionId": "gone", "state": "Disabled",
                   "displayName": "old"}),
        ],
    );
    let fixture = ArmFixture::start(spec);
    ArmFixture::credentials_env();
    let p = AzureFactory
        .create(&json!({"endpoint": fixture.endpoint, "authority_host": fixture.endpoint}))
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut out = Gather::default();
    let report = rt
        .block_on(p.collect(&CollectContext::new(100), &mut out))
        .unwrap();
    assert!(report
        .scopes
        .iter()
        .all(|s| s.account.as_deref() == Some("subid")));
    assert_eq!(out.0.len(), 3 + 2 + 1 + 3 + 1);
}

#[test]
fn a_next_link_to_another_host_is_refused_not_followed() {
    // Another origin on loopback that nothing serves: were the token sent there, the
    // listing would fail with a connection error instead of the refusal.
    let mut spec = ArmSpec::examples();
    spec.page = 1;
    spec.next_link_origin = Some("http://127.0.0.1:9".into());
    let fixture = ArmFixture::start(spec);
    let (_, report) = collect(&fixture, json!({"max_attempts": 1})).unwrap();
    let nsg = report
        .scopes
        .iter()
        .find(|s| s.r#type == "azurerm_network_security_group")
        .unwrap();
    assert!(!nsg.complete);
    let error = nsg.error.as_deref().unwrap();
    assert!(
        error.contains("refusing to send the ARM token to http://127.0.0.1:9"),
        "{error}"
    );
    // The storage listing has one item, so one page and no nextLink: it completes.
    assert!(report
        .scopes
        .iter()
        .any(|s| s.r#type == "azurerm_storage_account" && s.complete));
}

#[test]
fn a_subscription_listed_twice_is_a_config_error() {
    let err = AzureFactory
        .create(&json!({"subscriptions": ["abc", "ABC"]}))
        .err()
        .unwrap();
    assert!(err.to_string().contains("subscriptions[1]"), "{err}");
    let err = AzureFactory
        .create(&json!({"concurrency": 100000}))
        .err()
        .unwrap();
    assert!(err.to_string().contains("concurrency"), "{err}");
}
