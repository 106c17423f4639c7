//! Cloud Storage for the tests: a real `gcp-storage-emulator` (PyPI) on 127.0.0.1 holds the
//! buckets, their labels, versioning, IAM configuration and policies, and the objects.
//!
//! google-cloud-storage lists buckets and objects through the gRPC API
//! (`google.storage.v2.Storage`) only, which the emulator does not speak, and its
//! `read_object` requires the `x-goog-generation` header, which the emulator's downloads
//! lack. [`GcsGateway`] is a server of ours that speaks both protocols as Cloud Storage
//! does, gRPC (HTTP/2: `google.storage.v2.Storage/ListBuckets` and `ListObjects`,
//! `google.storage.control.v2.StorageControl/GetIamPolicy`) and the JSON API's media
//! download (HTTP/1.1), on one port, and
//! answers every call from the emulator's JSON API: the data and its semantics are the
//! emulator's, the wire protocol is Cloud Storage's.

use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status};

/// The pinned emulator version the README's test command installs.
pub const EMULATOR: &str = "gcp-storage-emulator==2026.7.19";

/// A running `gcp-storage-emulator`, stopped when dropped.
pub struct GcsEmulator {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
}

impl GcsEmulator {
    /// Starts the emulator in memory on a free loopback port and waits until it listens.
    pub fn start() -> GcsEmulator {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("python3")
            .args(["-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1"])
            .args(["--port", &port.to_string(), "--in-memory", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python3 ({e})"));
        let mut emulator = GcsEmulator {
            child,
            origin: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return emulator;
            }
            if let Ok(Some(status)) = emulator.child.try_wait() {
                panic!(
                    "gcp-storage-emulator exited with {status}: install it with \
                     `python3 -m pip install \"{EMULATOR}\"`"
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "gcp-storage-emulator did not listen on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::new()
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder, what: &str) -> Value {
        let resp = req.send().unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        assert!(status.is_success(), "{what}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates a bucket with its settings and IAM policy through the JSON API.
    pub fn seed(&self, b: &BucketSeed) {
        let api = format!("{}/storage/v1", self.origin);
        let c = Self::client();
        self.send(
            c.post(format!("{api}/b?project={}", crate::gce_fixture::PROJECT))
                .json(&json!({"name": b.name})),
            "creating a bucket",
        );
        let mut iam = json!({"uniformBucketLevelAccess": {"enabled": b.uniform}});
        iam["publicAccessPrevention"] = json!(if b.enforced { "enforced" } else { "inherited" });
        self.send(
            c.patch(format!("{api}/b/{}", b.name)).json(&json!({
                "labels": b.labels, "location": b.location,
                "versioning": {"enabled": b.versioning}, "iamConfiguration": iam,
            })),
            "setting a bucket's metadata",
        );
        let mut bindings = vec![json!({"role": "roles/storage.legacyBucketOwner",
                                       "members": ["projectOwner:acme-prod-417211"]})];
        if b.public {
            bindings.push(json!({"role": "roles/storage.objectViewer", "members": ["allUsers"]}));
        }
        self.send(
            c.put(format!("{api}/b/{}/iam", b.name))
                .json(&json!({"bindings": bindings})),
            "setting a bucket's IAM policy",
        );
    }

    /// Uploads an object.
    pub fn upload(&self, bucket: &str, name: &str, bytes: &[u8]) {
        let url = format!(
            "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
            self.origin,
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
        );
        self.send(
            Self::client().post(url).body(bytes.to_vec()),
            "uploading an object",
        );
    }
}

impl Drop for GcsEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bucket the tests create, with the settings the provider reads.
#[derive(Debug, Clone)]
pub struct BucketSeed {
    /// Bucket name.
    pub name: String,
    /// `EU`, `US`, ...
    pub location: String,
    /// Labels.
    pub labels: Value,
    /// Object versioning on.
    pub versioning: bool,
    /// Uniform bucket-level access on.
    pub uniform: bool,
    /// Public access prevention enforced (else inherited).
    pub enforced: bool,
    /// `allUsers` may read objects.
    pub public: bool,
}

impl BucketSeed {
    /// A private, versioned bucket with uniform access and prevention enforced.
    pub fn private(name: &str, labels: Value) -> BucketSeed {
        BucketSeed {
            name: name.into(),
            location: "EU".into(),
            labels,
            versioning: true,
            uniform: true,
            enforced: true,
            public: false,
        }
    }
}

/// Protobuf messages of `google.storage.v2` and `google.iam.v1`, the fields the provider
/// and the state backend read, with their field numbers from `storage.proto` and
/// `iam_policy.proto`.
#[allow(missing_docs)]
pub mod proto {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListBucketsRequest {
        #[prost(string, tag = "1")]
        pub parent: String,
        #[prost(int32, tag = "2")]
        pub page_size: i32,
        #[prost(string, tag = "3")]
        pub page_token: String,
        #[prost(string, tag = "4")]
        pub prefix: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListBucketsResponse {
        #[prost(message, repeated, tag = "1")]
        pub buckets: Vec<Bucket>,
        #[prost(string, tag = "2")]
        pub next_page_token: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Bucket {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub bucket_id: String,
        #[prost(string, tag = "3")]
        pub project: String,
        #[prost(string, tag = "5")]
        pub location: String,
        #[prost(string, tag = "7")]
        pub storage_class: String,
        #[prost(map = "string, string", tag = "15")]
        pub labels: HashMap<String, String>,
        #[prost(message, optional, tag = "17")]
        pub versioning: Option<Versioning>,
        #[prost(message, optional, tag = "23")]
        pub iam_config: Option<IamConfig>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Versioning {
        #[prost(bool, tag = "1")]
        pub enabled: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct IamConfig {
        #[prost(message, optional, tag = "1")]
        pub uniform_bucket_level_access: Option<UniformBucketLevelAccess>,
        #[prost(string, tag = "3")]
        pub public_access_prevention: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct UniformBucketLevelAccess {
        #[prost(bool, tag = "1")]
        pub enabled: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListObjectsRequest {
        #[prost(string, tag = "1")]
        pub parent: String,
        #[prost(int32, tag = "2")]
        pub page_size: i32,
        #[prost(string, tag = "3")]
        pub page_token: String,
        #[prost(string, tag = "6")]
        pub prefix: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListObjectsResponse {
        #[prost(message, repeated, tag = "1")]
        pub objects: Vec<Object>,
        #[prost(string, tag = "3")]
        pub next_page_token: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Object {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub bucket: String,
        #[prost(int64, tag = "3")]
        pub generation: i64,
        #[prost(int64, tag = "6")]
        pub size: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetIamPolicyRequest {
        #[prost(string, tag = "1")]
        pub resource: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Policy {
        #[prost(int32, tag = "1")]
        pub version: i32,
        #[prost(message, repeated, tag = "4")]
        pub bindings: Vec<Binding>,
        #[prost(bytes = "vec", tag = "3")]
        pub etag: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Binding {
        #[prost(string, tag = "1")]
        pub role: String,
        #[prost(string, repeated, tag = "2")]
        pub members: Vec<String>,
    }
}

/// Serves Cloud Storage's gRPC and media-download protocols from a [`GcsEmulator`].
pub struct GcsGateway {
    /// `http://127.0.0.1:PORT`: the storage endpoint for both protocols.
    pub endpoint: String,
    calls: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

struct Gateway {
    emulator: String,
    http: reqwest::Client,
    /// Items per page of ListBuckets and ListObjects.
    page: usize,
    calls: Arc<AtomicUsize>,
}

type Shared = Arc<Gateway>;

fn emulator_status(status: reqwest::StatusCode, text: &str) -> Status {
    match status.as_u16() {
        404 => Status::not_found(text.to_string()),
        403 => Status::permission_denied(text.to_string()),
        _ => Status::internal(format!("emulator answered {status}: {text}")),
    }
}

impl Gateway {
    async fn json(&self, path: &str) -> Result<Value, Status> {
        let resp = self
            .http
            .get(format!("{}{path}", self.emulator))
            .send()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(emulator_status(status, &text));
        }
        serde_json::from_str(&text).map_err(|e| Status::internal(e.to_string()))
    }

    /// One page of `items` after `token` (an offset), and the next token.
    fn page<T: Clone>(
        &self,
        items: &[T],
        token: &str,
        size: i32,
    ) -> Result<(Vec<T>, String), Status> {
        let skip: usize = if token.is_empty() {
            0
        } else {
            token
                .parse()
                .map_err(|_| Status::invalid_argument("bad page token"))?
        };
        let size = if size > 0 {
            (size as usize).min(self.page)
        } else {
            self.page
        };
        let end = (skip + size).min(items.len());
        let next = if end < items.len() {
            end.to_string()
        } else {
            String::new()
        };
        Ok((items[skip.min(end)..end].to_vec(), next))
    }

    async fn list_buckets(
        &self,
        req: proto::ListBucketsRequest,
    ) -> Result<proto::ListBucketsResponse, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let project = req
            .parent
            .strip_prefix("projects/")
            .ok_or_else(|| Status::invalid_argument("parent must be projects/{project}"))?;
        // The emulator holds one project's buckets, the example's.
        if project != crate::gce_fixture::PROJECT {
            return Ok(proto::ListBucketsResponse::default());
        }
        let list = self
            .json(&format!("/storage/v1/b?project={project}"))
            .await?;
        let mut buckets: Vec<proto::Bucket> = list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(bucket_from_json)
            .collect();
        buckets.sort_by(|a, b| a.bucket_id.cmp(&b.bucket_id));
        let (buckets, next_page_token) = self.page(&buckets, &req.page_token, req.page_size)?;
        Ok(proto::ListBucketsResponse {
            buckets,
            next_page_token,
        })
    }

    async fn list_objects(
        &self,
        req: proto::ListObjectsRequest,
    ) -> Result<proto::ListObjectsResponse, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let bucket = req
            .parent
            .strip_prefix("projects/_/buckets/")
            .ok_or_else(|| {
                Status::invalid_argument("parent must be projects/_/buckets/{bucket}")
            })?;
        let prefix =
            percent_encoding::utf8_percent_encode(&req.prefix, percent_encoding::NON_ALPHANUMERIC);
        let list = self
            .json(&format!("/storage/v1/b/{bucket}/o?prefix={prefix}"))
            .await?;
        let objects: Vec<proto::Object> = list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|o| proto::Object {
                name: o["name"].as_str().unwrap_or("").into(),
                bucket: req.parent.clone(),
                generation: o["generation"]
                    .as_str()
                    .and_then(|g| g.parse().ok())
                    .unwrap_or(0),
                size: o["size"].as_str().and_then(|g| g.parse().ok()).unwrap_or(0),
            })
            .collect();
        let (objects, next_page_token) = self.page(&objects, &req.page_token, req.page_size)?;
        Ok(proto::ListObjectsResponse {
            objects,
            next_page_token,
        })
    }

    async fn get_iam_policy(
        &self,
        req: proto::GetIamPolicyRequest,
    ) -> Result<proto::Policy, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let bucket = req
            .resource
            .strip_prefix("projects/_/buckets/")
            .ok_or_else(|| {
                Status::invalid_argument("resource must be projects/_/buckets/{bucket}")
            })?;
        let policy = self.json(&format!("/storage/v1/b/{bucket}/iam")).await?;
        Ok(proto::Policy {
            version: policy["version"].as_i64().unwrap_or(1) as i32,
            bindings: policy["bindings"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|b| proto::Binding {
                    role: b["role"].as_str().unwrap_or("").into(),
                    members: b["members"]
                        .as_array()
                        .map(|m| {
                            m.iter()
                                .filter_map(|v| v.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect(),
            etag: b"CAE=".to_vec(),
        })
    }
}

fn bucket_from_json(b: &Value) -> proto::Bucket {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let name = s(&b["name"]);
    let iam = &b["iamConfiguration"];
    proto::Bucket {
        name: format!("projects/_/buckets/{name}"),
        bucket_id: name,
        project: format!("projects/{}", s(&b["projectNumber"])),
        location: s(&b["location"]),
        storage_class: s(&b["storageClass"]),
        labels: b["labels"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), s(v))).collect())
            .unwrap_or_default(),
        versioning: b["versioning"].get("enabled").map(|e| proto::Versioning {
            enabled: e.as_bool().unwrap_or(false),
        }),
        iam_config: Some(proto::IamConfig {
            uniform_bucket_level_access: Some(proto::UniformBucketLevelAccess {
                enabled: iam["uniformBucketLevelAccess"]["enabled"]
                    .as_bool()
                    .unwrap_or(false),
            }),
            public_access_prevention: s(&iam["publicAccessPrevention"]),
        }),
    }
}

/// A unary gRPC method of the gateway, dispatched by tonic's server machinery with prost's
/// codec, as generated servers do.
macro_rules! unary {
    ($state:expr, $req:ty, $resp:ty, $method:ident) => {{
        let state = $state.clone();
        tower::service_fn(move |req: axum::http::Request<axum::body::Body>| {
            let state = state.clone();
            async move {
                let svc = tower::service_fn(move |r: GrpcRequest<$req>| {
                    let state = state.clone();
                    async move { state.$method(r.into_inner()).await.map(GrpcResponse::new) }
                });
                let mut grpc =
                    tonic::server::Grpc::new(tonic_prost::ProstCodec::<$resp, $req>::default());
                Ok::<_, std::convert::Infallible>(grpc.unary(svc, req).await)
            }
        })
    }};
}

/// `GET /storage/v1/b/{bucket}/o/{object}?alt=media`: the object's bytes with the headers
/// google-cloud-storage requires.
async fn media(
    State(state): State<Shared>,
    UrlPath((bucket, object)): UrlPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    state.calls.fetch_add(1, Ordering::Relaxed);
    if query.get("alt").map(String::as_str) != Some("media") {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "only alt=media is served",
        )
            .into_response();
    }
    let encoded =
        percent_encoding::utf8_percent_encode(&object, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let meta = match state
        .json(&format!("/storage/v1/b/{bucket}/o/{encoded}"))
        .await
    {
        Ok(m) => m,
        Err(s) if s.code() == tonic::Code::NotFound => {
            let body = json!({"error": {"code": 404, "message": format!("No such object: {bucket}/{object}")}});
            return (axum::http::StatusCode::NOT_FOUND, body.to_string()).into_response();
        }
        Err(s) => {
            return (axum::http::StatusCode::BAD_GATEWAY, s.message().to_string()).into_response()
        }
    };
    let resp = match state
        .http
        .get(format!(
            "{}/download/storage/v1/b/{bucket}/o/{encoded}?alt=media",
            state.emulator
        ))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let bytes: Bytes = resp.bytes().await.unwrap_or_default();
    let s = |k: &str| meta[k].as_str().unwrap_or("").to_string();
    let mut headers = axum::http::HeaderMap::new();
    for (k, v) in [
        ("x-goog-generation", s("generation")),
        ("x-goog-metageneration", s("metageneration")),
        ("x-goog-stored-content-length", bytes.len().to_string()),
        (
            "x-goog-hash",
            format!("crc32c={},md5={}", s("crc32c"), s("md5Hash")),
        ),
        ("content-type", "application/octet-stream".to_string()),
    ] {
        if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    }
    (headers, bytes).into_response()
}

impl GcsGateway {
    /// Starts the gateway on a free loopback port in front of `emulator`, paging its
    /// listings `page` items at a time.
    pub fn start(emulator: &GcsEmulator, page: usize) -> GcsGateway {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let state: Shared = Arc::new(Gateway {
            emulator: emulator.origin.clone(),
            http: reqwest::Client::new(),
            page: page.max(1),
            calls: calls.clone(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let p = "/google.storage.v2.Storage";
        let app = axum::Router::new()
            .route_service(
                &format!("{p}/ListBuckets"),
                unary!(
                    state,
                    proto::ListBucketsRequest,
                    proto::ListBucketsResponse,
                    list_buckets
                ),
            )
            .route_service(
                &format!("{p}/ListObjects"),
                unary!(
                    state,
                    proto::ListObjectsRequest,
                    proto::ListObjectsResponse,
                    list_objects
                ),
            )
            .route_service(
                "/google.storage.control.v2.StorageControl/GetIamPolicy",
                unary!(
                    state,
                    proto::GetIamPolicyRequest,
                    proto::Policy,
                    get_iam_policy
                ),
            )
            .route("/storage/v1/b/{bucket}/o/{*object}", get(media))
            .with_state(state);
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        GcsGateway {
            endpoint,
            calls,
            _runtime: runtime,
        }
    }

    /// Requests answered so far, over both protocols.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}
