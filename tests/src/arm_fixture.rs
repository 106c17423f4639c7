//! An Azure Resource Manager fixture server on 127.0.0.1. No ARM emulator exists, so it
//! serves Microsoft's own example responses (`tests/fixtures/azure/`, from the Azure
//! REST API specifications) plus driftwatch's own examples of the types those lack. It
//! pages every list with `nextLink`, answers 429 with `Retry-After` and 500 on demand,
//! issues tokens on the Azure AD client-credentials endpoint and refuses ARM requests that
//! do not carry one.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The bearer token the fixture issues and requires.
pub const TOKEN: &str = "fixture-access-token";

/// The subscription of Microsoft's examples.
pub const SUBSCRIPTION: &str = "subid";

/// What the fixture serves and how it misbehaves.
#[derive(Debug, Clone, Default)]
pub struct ArmSpec {
    /// Lowercased list path (`/subscriptions/subid/providers/microsoft.network/...`) → the
    /// items it lists.
    pub lists: HashMap<String, Vec<Value>>,
    /// Items per page.
    pub page: usize,
    /// Path substring (lowercase) → number of first calls answered 429, `Retry-After: 1`.
    pub throttle: Vec<(String, usize)>,
    /// Path substrings (lowercase) always answered 500.
    pub fail: Vec<String>,
    /// Refuse every client secret, as Azure AD does a wrong or expired one.
    pub reject_tokens: bool,
    /// Origin (`http://host:port`) that `nextLink`s point to instead of the fixture's own.
    pub next_link_origin: Option<String>,
}

/// The list paths of the four listings the provider makes in `sub`.
pub fn list_path(sub: &str, what: &str) -> String {
    match what {
        "resourcegroups" => format!("/subscriptions/{sub}/resourcegroups"),
        "nsg" => format!("/subscriptions/{sub}/providers/microsoft.network/networksecuritygroups"),
        "vnet" => format!("/subscriptions/{sub}/providers/microsoft.network/virtualnetworks"),
        "storage" => format!("/subscriptions/{sub}/providers/microsoft.storage/storageaccounts"),
        other => panic!("no listing {other}"),
    }
}

fn shared_example(file: &str) -> Value {
    let path = crate::fixtures("azure").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (Microsoft's ARM examples)", path.display()));
    serde_json::from_str(&text).unwrap()
}

impl ArmSpec {
    /// Microsoft's examples of subscription `subid`: NSGs `nsg1`, `nsg3` and `testnsg`
    /// (with rule `rule1`), virtual networks `vnet1` (subnet `test-1`) and `vnet2`; and
    /// driftwatch's own resource groups `rg1`, `rg2`, `NetworkWatcherRG` and storage
    /// account `acmetfstate`.
    pub fn examples() -> ArmSpec {
        let list = |file: &str| -> Vec<Value> {
            shared_example(file)["responses"]["200"]["body"]["value"]
                .as_array()
                .unwrap()
                .clone()
        };
        let mut nsgs = list("NetworkSecurityGroupListAll.json");
        nsgs.push(
            shared_example("NetworkSecurityGroupCreateWithRule.json")["responses"]["200"]["body"]
                .clone(),
        );
        let rg = |name: &str| {
            json!({"id": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}"),
                "name": name, "type": "Microsoft.Resources/resourceGroups",
                "location": "westus", "properties": {"provisioningState": "Succeeded"}})
        };
        let mut lists = HashMap::new();
        lists.insert(list_path(SUBSCRIPTION, "nsg"), nsgs);
        lists.insert(
            list_path(SUBSCRIPTION, "vnet"),
            list("VirtualNetworkListAll.json"),
        );
        lists.insert(
            list_path(SUBSCRIPTION, "resourcegroups"),
            vec![rg("rg1"), rg("rg2"), rg("NetworkWatcherRG")],
        );
        lists.insert(
            list_path(SUBSCRIPTION, "storage"),
            vec![storage_account(
                "acmetfstate",
                "rg1",
                json!({"owner": "platform"}),
            )],
        );
        ArmSpec {
            lists,
            page: 1,
            ..Default::default()
        }
    }

    /// The served items of one listing, to change them.
    pub fn items(&mut self, what: &str) -> &mut Vec<Value> {
        self.lists
            .get_mut(&list_path(SUBSCRIPTION, what))
            .expect("a listing of the examples")
    }
}

/// A storage account as `StorageAccounts_List` returns it.
pub fn storage_account(name: &str, rg: &str, tags: Value) -> Value {
    json!({
        "id": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}"),
        "name": name, "type": "Microsoft.Storage/storageAccounts", "location": "westus",
        "kind": "StorageV2", "sku": {"name": "Standard_LRS", "tier": "Standard"},
        "tags": tags,
        "properties": {
            "provisioningState": "Succeeded", "creationTime": "2024-05-02T09:12:44.1234567Z",
            "primaryLocation": "westus", "statusOfPrimary": "available",
            "accessTier": "Hot", "supportsHttpsTrafficOnly": true,
            "minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": false,
            "allowSharedKeyAccess": true, "isHnsEnabled": false,
            "publicNetworkAccess": "Enabled",
            "encryption": {"keySource": "Microsoft.Storage", "services": {
                "blob": {"keyType": "Account", "enabled": true}}}
        }
    })
}

/// One request the fixture answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Lowercased path.
    pub path: String,
    /// Status answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

/// A running fixture server; it stops with the test process.
pub struct ArmFixture {
    /// `http://127.0.0.1:PORT`: both the ARM endpoint and the login authority.
    pub endpoint: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Statuses of the token requests answered, recorded beside the ARM requests as path
/// `token`.
const TOKEN_PATH: &str = "token";

impl ArmFixture {
    /// Starts the server on a free loopback port.
    pub fn start(spec: ArmSpec) -> ArmFixture {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new((spec, endpoint.clone(), Mutex::new(HashMap::new())));
        let s = seen.clone();
        crate::accept_each(listener, move |conn| serve(conn, &state, &s));
        ArmFixture { endpoint, seen }
    }

    /// Every ARM request answered so far (token requests excluded).
    pub fn seen(&self) -> Vec<Seen> {
        let all = self.seen.lock().unwrap();
        all.iter()
            .filter(|s| s.path != TOKEN_PATH)
            .cloned()
            .collect()
    }

    /// The statuses of the token requests answered so far.
    pub fn token_statuses(&self) -> Vec<u16> {
        let all = self.seen.lock().unwrap();
        all.iter()
            .filter(|s| s.path == TOKEN_PATH)
            .map(|s| s.status)
            .collect()
    }

    /// ARM requests answered so far whose path contains `part`.
    pub fn calls(&self, part: &str) -> usize {
        self.seen().iter().filter(|s| s.path.contains(part)).count()
    }

    /// The provider settings that point at this fixture.
    pub fn provider_settings(&self) -> String {
        format!(
            "endpoint = \"{0}\"\nauthority_host = \"{0}\"\nsubscriptions = [\"{SUBSCRIPTION}\"]\n",
            self.endpoint
        )
    }

    /// The service principal the fixture's token endpoint accepts, in the environment
    /// variables the credential chain reads.
    pub fn credentials_env() {
        std::env::set_var("AZURE_TENANT_ID", "fixture-tenant");
        std::env::set_var("AZURE_CLIENT_ID", "fixture-client");
        std::env::set_var("AZURE_CLIENT_SECRET", "fixture-secret");
        std::env::remove_var("AZURE_FEDERATED_TOKEN_FILE");
        std::env::remove_var("AZURE_CREDENTIAL_KIND");
    }
}

type State = (ArmSpec, String, Mutex<HashMap<String, usize>>);

fn serve(conn: TcpStream, state: &State, seen: &Mutex<Vec<Seen>>) {
    let (spec, endpoint, counts) = state;
    let mut reader = BufReader::new(conn.try_clone().expect("clone the socket"));
    let mut conn = conn;
    while let Some(req) = crate::read_request(&mut reader) {
        let (method, target, body) = (req.method.clone(), req.target.clone(), &req.body);
        let auth = req.header("authorization").unwrap_or("").to_string();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let path = path.to_ascii_lowercase();
        let mut headers = vec![("Content-Type", "application/json".to_string())];
        let (status, reply) = if method == "POST" && path.ends_with("/oauth2/v2.0/token") {
            let form = String::from_utf8_lossy(body);
            let (status, reply) = if !spec.reject_tokens
                && form.contains("client_secret=fixture-secret")
            {
                (
                    200,
                    json!({"token_type": "Bearer", "expires_in": 3600,
                               "ext_expires_in": 3600, "access_token": TOKEN}),
                )
            } else {
                (
                    401,
                    json!({"error": "invalid_client",
                               "error_description": "AADSTS7000215: Invalid client secret provided."}),
                )
            };
            seen.lock().unwrap().push(Seen {
                path: TOKEN_PATH.into(),
                status,
                at: Instant::now(),
            });
            (status, reply)
        } else {
            let n = {
                let mut c = counts.lock().unwrap();
                let n = c.entry(path.clone()).or_default();
                *n += 1;
                *n
            };
            let (status, reply) = arm(spec, endpoint, &path, query, &auth, n, &mut headers);
            seen.lock().unwrap().push(Seen {
                path: path.clone(),
                status,
                at: Instant::now(),
            });
            (status, reply)
        };
        if !crate::write_response(&mut conn, status, &headers, reply.to_string().as_bytes()) {
            return;
        }
    }
}

fn arm_error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

fn arm(
    spec: &ArmSpec,
    endpoint: &str,
    path: &str,
    query: &str,
    auth: &str,
    n: usize,
    headers: &mut Vec<(&'static str, String)>,
) -> (u16, Value) {
    if auth != format!("Bearer {TOKEN}") {
        return (
            401,
            arm_error("AuthenticationFailed", "no valid bearer token"),
        );
    }
    if let Some((_, first)) = spec
        .throttle
        .iter()
        .find(|(p, _)| path.contains(p.as_str()))
    {
        if n <= *first {
            headers.push(("Retry-After", "1".into()));
            return (
                429,
                arm_error("TooManyRequests", "the subscription's read bucket is empty"),
            );
        }
    }
    if spec.fail.iter().any(|p| path.contains(p.as_str())) {
        return (
            500,
            arm_error("InternalServerError", "the fixture fails this listing"),
        );
    }
    let Some(items) = spec.lists.get(path) else {
        return (
            404,
            arm_error("SubscriptionNotFound", &format!("nothing at {path}")),
        );
    };
    let mut api_version = String::new();
    let mut skip = 0usize;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("api-version", v)) => api_version = v.to_string(),
            Some(("%24skiptoken" | "$skiptoken", v)) => skip = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    let page = spec.page.max(1);
    let end = (skip + page).min(items.len());
    let mut body = json!({"value": items[skip.min(end)..end]});
    if end < items.len() {
        let origin = spec.next_link_origin.as_deref().unwrap_or(endpoint);
        body["nextLink"] = json!(format!(
            "{origin}{path}?api-version={api_version}&%24skiptoken={end}"
        ));
    }
    (200, body)
}

/// Resource group `rg1` of the examples.
pub const RG1: &str = "/subscriptions/subid/resourceGroups/rg1";
/// Resource group `rg2` of the examples.
pub const RG2: &str = "/subscriptions/subid/resourceGroups/rg2";

/// The Terraform state of the example estate, in sync with it, as the azurerm provider
/// writes it.
pub fn terraform_state() -> Value {
    let res = |ty: &str, name: &str, attrs: Value| {
        json!({"mode": "managed", "type": ty, "name": name,
               "provider": "provider[\"registry.terraform.io/hashicorp/azurerm\"]",
               "instances": [{"schema_version": 0, "attributes": attrs}]})
    };
    let nsg = |rg: &str, rg_name: &str, name: &str, location: &str, rules: Value| {
        json!({"id": format!("{rg}/providers/Microsoft.Network/networkSecurityGroups/{name}"),
            "name": name, "location": location, "resource_group_name": rg_name,
            "security_rule": rules, "tags": {}})
    };
    json!({"version": 4, "terraform_version": "1.9.8", "serial": 3, "lineage": "arm",
        "outputs": {}, "resources": [
        res("azurerm_resource_group", "rg1", json!({"id": RG1, "name": "rg1",
            "location": "westus", "tags": {}})),
        res("azurerm_resource_group", "rg2", json!({"id": RG2, "name": "rg2",
            "location": "westus", "tags": {}})),
        res("azurerm_network_security_group", "nsg1", nsg(RG1, "rg1", "nsg1", "westus", json!([]))),
        // Terraform wrote this id with other casing than ARM returns: ARM ids are
        // case-insensitive, so it is the same group.
        res("azurerm_network_security_group", "nsg3",
            nsg("/subscriptions/SUBID/resourcegroups/RG2", "RG2", "nsg3", "westus", json!([]))),
        // The rule of `testnsg` declared as its own resource: reconciled with the group's.
        res("azurerm_network_security_group", "testnsg",
            nsg(RG1, "rg1", "testnsg", "eastus", json!([]))),
        res("azurerm_network_security_rule", "rule1", json!({
            "id": format!("{RG1}/providers/Microsoft.Network/networkSecurityGroups/testnsg/securityRules/rule1"),
            "network_security_group_name": "testnsg", "resource_group_name": "rg1",
            "name": "rule1", "priority": 130, "direction": "Inbound", "access": "Allow",
            "protocol": "*", "source_port_range": "*", "destination_port_range": "80",
            "source_address_prefix": "*", "destination_address_prefix": "*"})),
        res("azurerm_virtual_network", "vnet1", json!({
            "id": format!("{RG1}/providers/Microsoft.Network/virtualNetworks/vnet1"),
            "name": "vnet1", "location": "westus", "resource_group_name": "rg1",
            "address_space": ["10.0.0.0/8"], "dns_servers": [], "tags": {}})),
        res("azurerm_subnet", "test1", json!({
            "id": format!("{RG1}/providers/Microsoft.Network/virtualNetworks/vnet1/subnets/test-1"),
            "name": "test-1", "resource_group_name": "rg1", "virtual_network_name": "vnet1",
            "address_prefixes": ["10.0.0.0/24"], "service_endpoints": []})),
        res("azurerm_virtual_network", "vnet2", json!({
            "id": format!("{RG2}/providers/Microsoft.Network/virtualNetworks/vnet2"),
            "name": "vnet2", "location": "westus", "resource_group_name": "rg2",
            "address_space": ["10.0.0.0/16"], "dns_servers": ["8.8.8.8"], "tags": {}})),
        res("azurerm_storage_account", "state", json!({
            "id": format!("{RG1}/providers/Microsoft.Storage/storageAccounts/acmetfstate"),
            "name": "acmetfstate", "location": "westus", "resource_group_name": "rg1",
            "account_kind": "StorageV2", "account_tier": "Standard",
            "account_replication_type": "LRS", "access_tier": "Hot",
            "https_traffic_only_enabled": true, "min_tls_version": "TLS1_2",
            "allow_nested_items_to_be_public": false, "public_network_access_enabled": true,
            "shared_access_key_enabled": true, "is_hns_enabled": false,
            "tags": {"owner": "platform"}})),
    ]})
}
