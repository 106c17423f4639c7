//! A Compute Engine API fixture server on 127.0.0.1. It serves the REST API's own JSON
//! (`compute#firewallList`, `compute#instanceAggregatedList`, ...) for an example estate,
//! pages every list with `nextPageToken`, answers 429 with `Retry-After` and 500 on demand,
//! issues OAuth tokens for an `authorized_user` credentials file and refuses API requests
//! that do not carry one.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The bearer token the fixture issues and requires.
pub const TOKEN: &str = "fixture-gcp-access-token";
/// The refresh token of the credentials file the fixture accepts.
pub const REFRESH_TOKEN: &str = "fixture-refresh-token";
/// The project of the example estate.
pub const PROJECT: &str = "acme-prod-417211";
/// The service account of the key file the fixture accepts.
pub const SERVICE_ACCOUNT: &str = "driftwatch-reader@acme-prod-417211.iam.gserviceaccount.com";
/// The id of that key.
const KEY_ID: &str = "fixture-key-1";

const API: &str = "https://www.googleapis.com/compute/v1";

/// What the fixture serves and how it misbehaves.
#[derive(Debug, Clone, Default)]
pub struct GceSpec {
    /// Collection (`firewalls`, `networks`, `subnetworks`, `instances`) → API objects.
    pub items: HashMap<String, Vec<Value>>,
    /// Items per page (the request's `maxResults` wins when smaller).
    pub page: usize,
    /// Path substring → number of first calls throttled: odd ones answered 429 with
    /// `Retry-After: 1`, even ones 403 `rateLimitExceeded` without it (as Compute answers
    /// an exhausted rate quota).
    pub throttle: Vec<(String, usize)>,
    /// Path substrings answered 500 every time.
    pub fail: Vec<String>,
    /// Zones (`zones/x`) or regions an aggregated list reports as unreachable.
    pub unreachable: Vec<String>,
    /// Report them as an `UNREACHABLE` warning on their scope instead of in `unreachables`.
    pub unreachable_as_warning: bool,
}

/// The same API object in another project (its links rewritten).
pub fn in_project(item: &Value, project: &str) -> Value {
    let text = item.to_string().replace(
        &format!("/projects/{PROJECT}/"),
        &format!("/projects/{project}/"),
    );
    serde_json::from_str(&text).expect("still JSON")
}

/// A self link of `rest` (`global/networks/x`) in the example project.
pub fn link(rest: &str) -> String {
    format!("{API}/projects/{PROJECT}/{rest}")
}

fn firewall(name: &str, network: &str, allowed: Value, sources: &[&str], extra: Value) -> Value {
    let mut f = json!({
        "kind": "compute#firewall",
        "id": format!("{}", 7_000_000_000_000_000_000u64 + name.len() as u64),
        "creationTimestamp": "2025-03-11T02:14:51.162-07:00",
        "name": name,
        "network": link(&format!("global/networks/{network}")),
        "priority": 1000,
        "sourceRanges": sources,
        "allowed": allowed,
        "direction": "INGRESS",
        "logConfig": {"enable": false},
        "disabled": false,
        "selfLink": link(&format!("global/firewalls/{name}")),
    });
    if let (Value::Object(f), Value::Object(extra)) = (&mut f, extra) {
        f.extend(extra);
    }
    f
}

fn network(name: &str, auto: bool) -> Value {
    let mut n = json!({
        "kind": "compute#network",
        "id": "5412846357283109437",
        "creationTimestamp": "2025-03-11T02:10:02.915-07:00",
        "name": name,
        "selfLink": link(&format!("global/networks/{name}")),
        "autoCreateSubnetworks": auto,
        "routingConfig": {"routingMode": "REGIONAL", "bgpBestPathSelectionMode": "LEGACY"},
        "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL",
        "mtu": 1460,
    });
    if !auto {
        n["description"] = json!("");
    }
    n
}

fn subnetwork(name: &str, network: &str, region: &str, cidr: &str, secondary: Value) -> Value {
    json!({
        "kind": "compute#subnetwork",
        "id": "2047152960338012345",
        "creationTimestamp": "2025-03-11T02:10:40.113-07:00",
        "name": name,
        "network": link(&format!("global/networks/{network}")),
        "ipCidrRange": cidr,
        "gatewayAddress": cidr.replace(".0/", ".1/").split('/').next().unwrap_or(""),
        "region": link(&format!("regions/{region}")),
        "selfLink": link(&format!("regions/{region}/subnetworks/{name}")),
        "privateIpGoogleAccess": network != "default",
        "secondaryIpRanges": secondary,
        "fingerprint": "mU3hMjvE1Ro=",
        "purpose": "PRIVATE",
        "stackType": "IPV4_ONLY",
    })
}

/// A VM instance as `instances.list` returns it.
pub fn instance(name: &str, zone: &str, machine: &str, labels: Value, tags: &[&str]) -> Value {
    json!({
        "kind": "compute#instance",
        "id": "4816237409172635123",
        "creationTimestamp": "2025-03-11T02:20:13.707-07:00",
        "name": name,
        "tags": {"items": tags, "fingerprint": "6smc4R4d39I="},
        "machineType": link(&format!("zones/{zone}/machineTypes/{machine}")),
        "status": "RUNNING",
        "zone": link(&format!("zones/{zone}")),
        "canIpForward": false,
        "networkInterfaces": [{
            "kind": "compute#networkInterface",
            "network": link("global/networks/prod-net"),
            "networkIP": "10.60.0.2",
            "name": "nic0",
            "stackType": "IPV4_ONLY",
        }],
        "disks": [{
            "kind": "compute#attachedDisk",
            "type": "PERSISTENT",
            "mode": "READ_WRITE",
            "source": link(&format!("zones/{zone}/disks/{name}")),
            "deviceName": "persistent-disk-0",
            "index": 0,
            "boot": true,
            "autoDelete": true,
            "diskSizeGb": "20",
        }],
        "labels": labels,
        "labelFingerprint": "42WmSpB8rSM=",
        "deletionProtection": name == "web-1",
        "selfLink": link(&format!("zones/{zone}/instances/{name}")),
        "scheduling": {"onHostMaintenance": "MIGRATE", "automaticRestart": true, "preemptible": false},
        "cpuPlatform": "Intel Broadwell",
        "startRestricted": false,
        "fingerprint": "Gr7dVjSVUCM=",
    })
}

impl GceSpec {
    /// The example estate: the default network with its default subnetworks and firewall
    /// rules, a custom network with two subnetworks and two rules, and two instances.
    pub fn example() -> GceSpec {
        let mut items = HashMap::new();
        let tcp = |ports: &[&str]| json!([{"IPProtocol": "tcp", "ports": ports}]);
        items.insert(
            "firewalls".to_string(),
            vec![
                firewall("default-allow-icmp", "default", json!([{"IPProtocol": "icmp"}]), &["0.0.0.0/0"],
                    json!({"description": "Allow ICMP from anywhere", "priority": 65534})),
                firewall("default-allow-internal", "default",
                    json!([{"IPProtocol": "tcp", "ports": ["0-65535"]}, {"IPProtocol": "udp", "ports": ["0-65535"]}, {"IPProtocol": "icmp"}]),
                    &["10.128.0.0/9"], json!({"description": "Allow internal traffic on the default network", "priority": 65534})),
                firewall("default-allow-rdp", "default", tcp(&["3389"]), &["0.0.0.0/0"],
                    json!({"description": "Allow RDP from anywhere", "priority": 65534})),
                firewall("default-allow-ssh", "default", tcp(&["22"]), &["0.0.0.0/0"],
                    json!({"description": "Allow SSH from anywhere", "priority": 65534})),
                firewall("prod-allow-https", "prod-net", tcp(&["443"]), &["0.0.0.0/0"],
                    json!({"description": "HTTPS to the web tier", "targetTags": ["web"]})),
                firewall("prod-allow-health-checks", "prod-net", tcp(&["8080"]),
                    &["130.211.0.0/22", "35.191.0.0/16"], json!({"targetTags": ["web"]})),
            ],
        );
        items.insert(
            "networks".to_string(),
            vec![
                network("default", true),
                network("prod-net", false),
                network("staging-net", false),
            ],
        );
        items.insert(
            "subnetworks".to_string(),
            vec![
                subnetwork(
                    "default",
                    "default",
                    "europe-west1",
                    "10.132.0.0/20",
                    json!([]),
                ),
                subnetwork(
                    "default",
                    "default",
                    "us-central1",
                    "10.128.0.0/20",
                    json!([]),
                ),
                subnetwork(
                    "prod-euw1",
                    "prod-net",
                    "europe-west1",
                    "10.60.0.0/20",
                    json!([{"rangeName": "pods", "ipCidrRange": "10.61.0.0/16"}]),
                ),
                subnetwork(
                    "prod-usc1",
                    "prod-net",
                    "us-central1",
                    "10.70.0.0/20",
                    json!([]),
                ),
            ],
        );
        items.insert(
            "instances".to_string(),
            vec![
                instance(
                    "web-1",
                    "europe-west1-b",
                    "e2-standard-2",
                    json!({"env": "prod", "team": "web"}),
                    &["web"],
                ),
                instance(
                    "batch-1",
                    "us-central1-a",
                    "n2-standard-4",
                    json!({"env": "prod", "team": "data"}),
                    &[],
                ),
            ],
        );
        GceSpec {
            items,
            page: 500,
            ..Default::default()
        }
    }

    /// The objects of `collection`, to change.
    pub fn items(&mut self, collection: &str) -> &mut Vec<Value> {
        self.items.entry(collection.to_string()).or_default()
    }
}

/// One request the fixture answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Request path, without the query.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// When it was answered.
    pub at: Instant,
}

/// A running fixture server; it stops with the test process.
pub struct GceFixture {
    /// `http://127.0.0.1:PORT`: the Compute endpoint and the OAuth token endpoint.
    pub endpoint: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

const TOKEN_PATH: &str = "/token";

impl GceFixture {
    /// Starts the server on a free loopback port.
    pub fn start(spec: GceSpec) -> GceFixture {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new((spec, Mutex::new(HashMap::new())));
        let s = seen.clone();
        crate::accept_each(listener, move |conn| serve(conn, &state, &s));
        GceFixture { endpoint, seen }
    }

    /// Every Compute request answered so far (token requests excluded).
    pub fn seen(&self) -> Vec<Seen> {
        let all = self.seen.lock().unwrap();
        all.iter()
            .filter(|s| s.path != TOKEN_PATH)
            .cloned()
            .collect()
    }

    /// Compute requests answered so far whose path contains `part`.
    pub fn calls(&self, part: &str) -> usize {
        self.seen().iter().filter(|s| s.path.contains(part)).count()
    }

    /// Token requests answered so far.
    pub fn token_calls(&self) -> usize {
        let all = self.seen.lock().unwrap();
        all.iter().filter(|s| s.path == TOKEN_PATH).count()
    }

    /// Writes a service-account key file with a fresh RSA key (made by `openssl`), as the
    /// Cloud console downloads them.
    pub fn service_account_file(&self, dir: &Path) -> std::path::PathBuf {
        let pem = dir.join("sa-key.pem");
        let status = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pem)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl could not make an RSA key");
        let path = dir.join("sa-key.json");
        let text = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": KEY_ID,
            "private_key": std::fs::read_to_string(&pem).unwrap(),
            "client_email": SERVICE_ACCOUNT,
            "client_id": "104729381726354819203",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}{TOKEN_PATH}", self.endpoint),
        });
        std::fs::write(&path, text.to_string()).unwrap();
        path
    }

    /// Writes an `authorized_user` credentials file whose token endpoint is this fixture,
    /// as `gcloud auth application-default login` writes them.
    pub fn credentials_file(&self, dir: &Path) -> std::path::PathBuf {
        let path = dir.join("gcp-credentials.json");
        let text = json!({
            "type": "authorized_user",
            "client_id": "764086051850-fixture.apps.googleusercontent.com",
            "client_secret": "fixture-client-secret",
            "refresh_token": REFRESH_TOKEN,
            "token_uri": format!("{}{TOKEN_PATH}", self.endpoint),
        });
        std::fs::write(&path, text.to_string()).unwrap();
        path
    }
}

type State = (GceSpec, Mutex<HashMap<String, usize>>);

fn serve(conn: TcpStream, state: &State, seen: &Mutex<Vec<Seen>>) {
    let (spec, counts) = state;
    let mut reader = BufReader::new(conn.try_clone().expect("clone the socket"));
    let mut conn = conn;
    while let Some(req) = crate::read_request(&mut reader) {
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        let path = path.to_string();
        let mut headers = vec![("Content-Type", "application/json".to_string())];
        let (status, reply) = if req.method == "POST" && path == TOKEN_PATH {
            // google-cloud-auth sends the refresh request as JSON; Google's endpoint also
            // takes a form.
            let presented = serde_json::from_slice::<Value>(&req.body)
                .ok()
                .and_then(|v| v["refresh_token"].as_str().map(str::to_string))
                .unwrap_or_else(|| {
                    let form = String::from_utf8_lossy(&req.body);
                    form.split('&')
                        .find_map(|kv| kv.strip_prefix("refresh_token="))
                        .unwrap_or("")
                        .to_string()
                });
            if presented == REFRESH_TOKEN {
                (
                    200,
                    json!({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer",
                           "scope": "https://www.googleapis.com/auth/cloud-platform"}),
                )
            } else {
                (
                    400,
                    json!({"error": "invalid_grant", "error_description": "Bad Request"}),
                )
            }
        } else {
            let n = {
                let mut c = counts.lock().unwrap();
                let n = c.entry(path.clone()).or_default();
                *n += 1;
                *n
            };
            let auth = req.header("authorization").unwrap_or("");
            compute(spec, &path, query, auth, n, &mut headers)
        };
        seen.lock().unwrap().push(Seen {
            path: path.clone(),
            status,
            at: Instant::now(),
        });
        if !crate::write_response(&mut conn, status, &headers, reply.to_string().as_bytes()) {
            return;
        }
    }
}

/// A service-account key signs its own JWT access token (no token exchange): accepted when
/// its header names the fixture's key and its claims the fixture's service account.
fn service_account_jwt(auth: &str) -> bool {
    use base64::Engine;
    let Some(jwt) = auth.strip_prefix("Bearer ") else {
        return false;
    };
    let part = |s: &str| -> Value {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 || parts[2].is_empty() {
        return false;
    }
    let (header, claims) = (part(parts[0]), part(parts[1]));
    header["alg"] == "RS256"
        && header["kid"] == KEY_ID
        && claims["iss"] == SERVICE_ACCOUNT
        && claims["sub"] == SERVICE_ACCOUNT
}

/// Compute's error shape: the legacy `errors[].reason` beside the canonical `status`.
fn error(code: u16, reason: &str, message: &str) -> (u16, Value) {
    let status = match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        _ => "INTERNAL",
    };
    let domain = if reason == "rateLimitExceeded" {
        "usageLimits"
    } else {
        "global"
    };
    (
        code,
        json!({"error": {"code": code, "message": message, "errors": [
            {"message": message, "domain": domain, "reason": reason}], "status": status}}),
    )
}

fn compute(
    spec: &GceSpec,
    path: &str,
    query: &str,
    auth: &str,
    n: usize,
    headers: &mut Vec<(&'static str, String)>,
) -> (u16, Value) {
    if auth != format!("Bearer {TOKEN}") && !service_account_jwt(auth) {
        return error(
            401,
            "UNAUTHENTICATED",
            "Request is missing required authentication credential.",
        );
    }
    if let Some((_, first)) = spec
        .throttle
        .iter()
        .find(|(p, _)| path.contains(p.as_str()))
    {
        if n <= *first {
            let message = "Quota exceeded for quota metric 'Read requests' and limit 'Read \
                           requests per minute' of service 'compute.googleapis.com'";
            if n % 2 == 1 {
                headers.push(("Retry-After", "1".into()));
                return error(429, "rateLimitExceeded", message);
            }
            return error(403, "rateLimitExceeded", message);
        }
    }
    if spec.fail.iter().any(|p| path.contains(p.as_str())) {
        return error(500, "backendError", "Internal error. Please try again.");
    }
    let Some((project, rest)) = path
        .strip_prefix("/compute/v1/projects/")
        .and_then(|r| r.split_once('/'))
    else {
        return error(
            404,
            "notFound",
            &format!("The resource '{path}' was not found"),
        );
    };
    let parts: Vec<&str> = rest.split('/').collect();
    // (collection, aggregated, location filter as a URL suffix)
    let (collection, aggregated, place) = match parts.as_slice() {
        ["global", c @ ("firewalls" | "networks")] => (*c, false, None),
        ["aggregated", c @ ("subnetworks" | "instances")] => (*c, true, None),
        ["regions", r, "subnetworks"] => ("subnetworks", false, Some(format!("regions/{r}"))),
        ["zones", z, "instances"] => ("instances", false, Some(format!("zones/{z}"))),
        _ => {
            return error(
                404,
                "notFound",
                &format!("The resource '{path}' was not found"),
            )
        }
    };
    let mut max = spec.page.max(1);
    let mut skip = 0usize;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("maxResults", v)) => max = max.min(v.parse().unwrap_or(max)),
            Some(("pageToken", v)) if !v.is_empty() => skip = v.parse().unwrap_or(usize::MAX),
            _ => {}
        }
    }
    let location = |item: &Value| -> String {
        let url = item
            .get("zone")
            .or_else(|| item.get("region"))
            .and_then(Value::as_str)
            .unwrap_or("");
        url.rsplit_once("/projects/")
            .and_then(|(_, r)| r.split_once('/'))
            .map(|(_, l)| l.to_string())
            .unwrap_or_default()
    };
    // Each object belongs to the project its self link names.
    let own = format!("/projects/{project}/");
    let all: Vec<&Value> = spec
        .items
        .get(collection)
        .map(|v| {
            v.iter()
                .filter(|i| i["selfLink"].as_str().is_some_and(|l| l.contains(&own)))
                .collect()
        })
        .unwrap_or_default();
    let all: Vec<&Value> = match &place {
        Some(p) => all.into_iter().filter(|i| &location(i) == p).collect(),
        None => all,
    };
    if skip > all.len() {
        return error(400, "invalid", "Invalid value for field 'pageToken'");
    }
    let end = (skip + max).min(all.len());
    let page = &all[skip..end];
    let kind = |suffix: &str| {
        let singular = collection.trim_end_matches('s');
        format!("compute#{singular}{suffix}")
    };
    let mut body = if aggregated {
        let mut scoped: serde_json::Map<String, Value> = serde_json::Map::new();
        for item in page {
            let entry = scoped
                .entry(location(item))
                .or_insert_with(|| json!({ collection: [] }));
            entry[collection]
                .as_array_mut()
                .unwrap()
                .push((*item).clone());
        }
        let mine: Vec<&String> = spec
            .unreachable
            .iter()
            .filter(|u| {
                u.starts_with(if collection == "instances" {
                    "zones/"
                } else {
                    "regions/"
                })
            })
            .collect();
        let mut unreachables = Vec::new();
        for u in mine {
            if spec.unreachable_as_warning {
                scoped.insert(
                    u.clone(),
                    json!({"warning": {"code": "UNREACHABLE",
                        "message": format!("Scope {u} is unreachable."),
                        "data": [{"key": "scope", "value": u}]}}),
                );
            } else {
                unreachables.push(u.clone());
            }
        }
        json!({
            "unreachables": unreachables,
            "kind": kind("AggregatedList"),
            "id": format!("projects/{project}/aggregated/{collection}"),
            "items": scoped,
            "selfLink": link(&format!("aggregated/{collection}")),
        })
    } else {
        json!({
            "kind": kind("List"),
            "id": format!("projects/{project}/{}", parts[..parts.len()].join("/")),
            "items": page,
            "selfLink": link(rest),
        })
    };
    if end < all.len() {
        body["nextPageToken"] = json!(end.to_string());
    }
    (200, body)
}

/// The Terraform state of the example estate (custom network, its subnetworks and rules,
/// both instances) plus the buckets given, in sync with it, as the google provider writes
/// it.
pub fn terraform_state(buckets: &[Value]) -> Value {
    let mut resources = vec![
        tf(
            "google_compute_network",
            "prod",
            json!({
            "auto_create_subnetworks": false, "delete_default_routes_on_create": false,
            "description": "", "enable_ula_internal_ipv6": false, "gateway_ipv4": "",
            "id": format!("projects/{PROJECT}/global/networks/prod-net"),
            "internal_ipv6_range": "", "mtu": 1460, "name": "prod-net",
            "network_firewall_policy_enforcement_order": "AFTER_CLASSIC_FIREWALL",
            "project": PROJECT, "routing_mode": "REGIONAL",
            "self_link": link("global/networks/prod-net"), "timeouts": null}),
        ),
        tf(
            "google_compute_network",
            "staging",
            json!({
            "auto_create_subnetworks": false, "description": "", "mtu": 1460,
            "id": format!("projects/{PROJECT}/global/networks/staging-net"),
            "name": "staging-net", "project": PROJECT, "routing_mode": "REGIONAL",
            "self_link": link("global/networks/staging-net")}),
        ),
        tf(
            "google_compute_subnetwork",
            "prod_euw1",
            json!({
            "description": "", "gateway_address": "10.60.0.1",
            "id": format!("projects/{PROJECT}/regions/europe-west1/subnetworks/prod-euw1"),
            "ip_cidr_range": "10.60.0.0/20", "ipv6_access_type": "", "log_config": [],
            "name": "prod-euw1", "network": link("global/networks/prod-net"),
            "private_ip_google_access": true,
            "private_ipv6_google_access": "DISABLE_GOOGLE_ACCESS", "project": PROJECT,
            "purpose": "PRIVATE", "region": "europe-west1",
            "secondary_ip_range": [{"ip_cidr_range": "10.61.0.0/16", "range_name": "pods"}],
            "self_link": link("regions/europe-west1/subnetworks/prod-euw1"),
            "stack_type": "IPV4_ONLY", "timeouts": null}),
        ),
        tf(
            "google_compute_subnetwork",
            "prod_usc1",
            json!({
            "description": "", "id": format!("projects/{PROJECT}/regions/us-central1/subnetworks/prod-usc1"),
            "ip_cidr_range": "10.70.0.0/20", "name": "prod-usc1",
            "network": link("global/networks/prod-net"), "private_ip_google_access": true,
            "project": PROJECT, "region": "us-central1", "secondary_ip_range": []}),
        ),
        tf(
            "google_compute_firewall",
            "https",
            json!({
            "allow": [{"ports": ["443"], "protocol": "tcp"}], "deny": [],
            "description": "HTTPS to the web tier", "destination_ranges": [],
            "direction": "INGRESS", "disabled": false,
            "id": format!("projects/{PROJECT}/global/firewalls/prod-allow-https"),
            "log_config": [], "name": "prod-allow-https",
            "network": link("global/networks/prod-net"), "priority": 1000, "project": PROJECT,
            "self_link": link("global/firewalls/prod-allow-https"),
            "source_ranges": ["0.0.0.0/0"], "source_service_accounts": [], "source_tags": [],
            "target_service_accounts": [], "target_tags": ["web"], "timeouts": null}),
        ),
        tf(
            "google_compute_firewall",
            "health",
            json!({
            "allow": [{"ports": ["8080"], "protocol": "tcp"}], "deny": [], "description": "",
            "direction": "INGRESS", "disabled": false,
            "id": format!("projects/{PROJECT}/global/firewalls/prod-allow-health-checks"),
            "name": "prod-allow-health-checks", "network": link("global/networks/prod-net"),
            "priority": 1000, "project": PROJECT,
            "source_ranges": ["130.211.0.0/22", "35.191.0.0/16"], "target_tags": ["web"]}),
        ),
        tf(
            "google_compute_instance",
            "web",
            json!({
            "can_ip_forward": false, "current_status": "RUNNING", "deletion_protection": true,
            "description": "", "id": format!("projects/{PROJECT}/zones/europe-west1-b/instances/web-1"),
            "instance_id": "4816237409172635123",
            "labels": {"env": "prod", "team": "web"}, "effective_labels": {"env": "prod", "team": "web"},
            "terraform_labels": {"env": "prod", "team": "web"},
            "machine_type": "e2-standard-2", "name": "web-1", "project": PROJECT,
            "tags": ["web"], "zone": "europe-west1-b"}),
        ),
        tf(
            "google_compute_instance",
            "batch",
            json!({
            "can_ip_forward": false, "current_status": "RUNNING", "deletion_protection": false,
            "description": "", "id": format!("projects/{PROJECT}/zones/us-central1-a/instances/batch-1"),
            "labels": {"env": "prod", "team": "data"}, "effective_labels": {"env": "prod", "team": "data"},
            "machine_type": "n2-standard-4", "name": "batch-1", "project": PROJECT,
            "tags": [], "zone": "us-central1-a"}),
        ),
    ];
    resources.extend(buckets.iter().cloned());
    json!({"version": 4, "terraform_version": "1.9.8", "serial": 12,
           "lineage": "3f1c7c4e-8d8a-4f5e-9a51-0c1d2e3f4a5b", "outputs": {},
           "resources": resources})
}

/// A `google_storage_bucket` resource of the state, in sync with a bucket seeded by
/// [`crate::gcs::BucketSeed`].
pub fn bucket_state(seed: &crate::gcs::BucketSeed) -> Value {
    let labels = &seed.labels;
    tf(
        "google_storage_bucket",
        &seed.name.replace('-', "_"),
        json!({
        "default_event_based_hold": false, "effective_labels": labels, "force_destroy": false,
        "id": seed.name, "labels": labels, "location": seed.location, "name": seed.name,
        "project": PROJECT,
        "public_access_prevention": if seed.enforced { "enforced" } else { "inherited" },
        "requester_pays": false,
        "self_link": format!("https://www.googleapis.com/storage/v1/b/{}", seed.name),
        "storage_class": "STANDARD", "terraform_labels": labels,
        "uniform_bucket_level_access": seed.uniform,
        "url": format!("gs://{}", seed.name),
        "versioning": [{"enabled": seed.versioning}]}),
    )
}

fn tf(ty: &str, name: &str, attributes: Value) -> Value {
    json!({"mode": "managed", "type": ty, "name": name,
           "provider": "provider[\"registry.terraform.io/hashicorp/google\"]",
           "instances": [{"schema_version": 1, "attributes": attributes,
                          "sensitive_attributes": []}]})
}
