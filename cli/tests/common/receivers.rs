//! Real receivers on 127.0.0.1 for the sink tests and benchmarks: a Standard Webhooks
//! endpoint that checks signatures on its own, and OTLP collectors over gRPC (tonic, with
//! the services generated in opentelemetry-proto) and over HTTP/protobuf. Each runs on a
//! runtime of its own, so plain `#[test]`s and the benchmark harness can drive them.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A port nothing listens on right now: for a receiver that is down, then comes up.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// One delivery a webhook receiver accepted.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    /// `webhook-id`.
    pub id: String,
    /// `content-type`.
    pub content_type: String,
    /// The CloudEvents in the body (one, or the batch's).
    pub events: Vec<Value>,
}

/// How a webhook receiver answers.
#[derive(Debug, Default)]
pub struct WebhookBehaviour {
    /// Answer this many requests with `fail_status` first.
    pub fail_first: AtomicUsize,
    /// The failing status (503 when 0).
    pub fail_status: AtomicUsize,
    /// Answer every request with 410 Gone.
    pub gone: std::sync::atomic::AtomicBool,
}

struct WebhookState {
    key: Vec<u8>,
    behaviour: Arc<WebhookBehaviour>,
    requests: AtomicUsize,
    bad_signatures: AtomicUsize,
    accepted: Mutex<Vec<WebhookDelivery>>,
}

/// A Standard Webhooks receiver that verifies signatures with its one secret.
pub struct WebhookReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its answers, changeable while it runs.
    pub behaviour: Arc<WebhookBehaviour>,
    state: Arc<WebhookState>,
    _rt: tokio::runtime::Runtime,
}

// Verifies the way a receiver following the Standard Webhooks specification does: any one
// `v1,` signature over "id.timestamp.body" must match, and the timestamp must be recent.
fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(format!("missing {n}"))
    };
    let (id, ts, sigs) = (
        h("webhook-id")?,
        h("webhook-timestamp")?,
        h("webhook-signature")?,
    );
    let ts_n: i64 = ts.parse().map_err(|_| "bad timestamp")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - ts_n).abs() > 300 {
        return Err("timestamp outside tolerance".into());
    }
    let mut mac = hmac::Hmac::<sha2_hmac::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if sigs
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
    {
        Ok(id)
    } else {
        Err("no signature matches".into())
    }
}

async fn webhook(
    axum::extract::State(st): axum::extract::State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    st.requests.fetch_add(1, Ordering::SeqCst);
    let id = match verify(&st.key, &headers, &body) {
        Ok(id) => id,
        Err(e) => {
            st.bad_signatures.fetch_add(1, Ordering::SeqCst);
            return (StatusCode::UNAUTHORIZED, [("retry-after", "0")], e);
        }
    };
    if st.behaviour.gone.load(Ordering::SeqCst) {
        return (StatusCode::GONE, [("retry-after", "0")], "gone".into());
    }
    if st
        .behaviour
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let code = match st.behaviour.fail_status.load(Ordering::SeqCst) {
            0 => 503,
            n => n as u16,
        };
        return (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", "0")],
            "try later".into(),
        );
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let events = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a)) => a,
        Ok(v) => vec![v],
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                [("retry-after", "0")],
                e.to_string(),
            )
        }
    };
    st.accepted.lock().unwrap().push(WebhookDelivery {
        id,
        content_type,
        events,
    });
    (
        StatusCode::NO_CONTENT,
        [("retry-after", "0")],
        String::new(),
    )
}

impl WebhookReceiver {
    /// Starts on a free port, verifying with `secret` (`whsec_...`).
    pub fn start(secret: &str) -> Self {
        Self::start_on(0, secret)
    }

    /// Starts on `port`.
    pub fn start_on(port: u16, secret: &str) -> Self {
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        let behaviour = Arc::new(WebhookBehaviour::default());
        let state = Arc::new(WebhookState {
            key,
            behaviour: behaviour.clone(),
            requests: AtomicUsize::new(0),
            bad_signatures: AtomicUsize::new(0),
            accepted: Mutex::new(Vec::new()),
        });
        let rt = runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(webhook))
            .with_state(state.clone());
        rt.spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            behaviour,
            state,
            _rt: rt,
        }
    }

    /// The URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Requests received, failed ones included.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests whose signature did not verify.
    pub fn bad_signatures(&self) -> usize {
        self.state.bad_signatures.load(Ordering::SeqCst)
    }

    /// Deliveries accepted, in order.
    pub fn accepted(&self) -> Vec<WebhookDelivery> {
        self.state.accepted.lock().unwrap().clone()
    }

    /// Every accepted event, in order.
    pub fn events(&self) -> Vec<Value> {
        self.accepted().into_iter().flat_map(|d| d.events).collect()
    }
}

/// What an OTLP receiver took, decoded.
#[derive(Default)]
pub struct OtlpStore {
    /// Log export requests.
    pub logs: Mutex<Vec<ExportLogsServiceRequest>>,
    /// Metric export requests.
    pub metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
    /// Answer this many requests with UNAVAILABLE / 503 first.
    pub fail_first: AtomicUsize,
    /// Requests received, failed ones included.
    pub requests: AtomicUsize,
    /// The `x-team` header or metadata of the last request.
    pub last_team: Mutex<Option<String>>,
}

impl OtlpStore {
    fn fail(&self) -> bool {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Log records received, over all requests.
    pub fn log_records(&self) -> Vec<opentelemetry_proto::tonic::logs::v1::LogRecord> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.resource_logs.iter())
            .flat_map(|r| r.scope_logs.iter())
            .flat_map(|s| s.log_records.iter().cloned())
            .collect()
    }

    /// Metrics received, over all requests.
    pub fn metrics(&self) -> Vec<opentelemetry_proto::tonic::metrics::v1::Metric> {
        self.metrics
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.resource_metrics.iter())
            .flat_map(|r| r.scope_metrics.iter())
            .flat_map(|s| s.metrics.iter().cloned())
            .collect()
    }
}

#[derive(Clone)]
struct Grpc(Arc<OtlpStore>);

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        if self.0.fail() {
            return Err(tonic::Status::unavailable("collector warming up"));
        }
        *self.0.last_team.lock().unwrap() = req
            .metadata()
            .get("x-team")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.0.logs.lock().unwrap().push(req.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        if self.0.fail() {
            return Err(tonic::Status::unavailable("collector warming up"));
        }
        self.0.metrics.lock().unwrap().push(req.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// An OTLP collector on 127.0.0.1.
pub struct OtlpReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it took.
    pub store: Arc<OtlpStore>,
    _rt: tokio::runtime::Runtime,
}

async fn http_logs(
    axum::extract::State(st): axum::extract::State<Arc<OtlpStore>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if st.fail() {
        return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")]).into_response();
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-protobuf") {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    *st.last_team.lock().unwrap() = headers
        .get("x-team")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match ExportLogsServiceRequest::decode(body) {
        Ok(r) => {
            st.logs.lock().unwrap().push(r);
            (
                [("content-type", "application/x-protobuf")],
                ExportLogsServiceResponse::default().encode_to_vec(),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn http_metrics(
    axum::extract::State(st): axum::extract::State<Arc<OtlpStore>>,
    body: Bytes,
) -> axum::response::Response {
    if st.fail() {
        return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")]).into_response();
    }
    match ExportMetricsServiceRequest::decode(body) {
        Ok(r) => {
            st.metrics.lock().unwrap().push(r);
            (
                [("content-type", "application/x-protobuf")],
                ExportMetricsServiceResponse::default().encode_to_vec(),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

impl OtlpReceiver {
    /// An OTLP/gRPC collector.
    pub fn grpc() -> Self {
        let store = Arc::new(OtlpStore::default());
        let rt = runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = Grpc(store.clone());
        rt.spawn(async move {
            // Windows sized like a production collector's, so large exports are not paced
            // by h2's 64 KiB default.
            tonic::transport::Server::builder()
                .initial_stream_window_size(Some(4 << 20))
                .initial_connection_window_size(Some(16 << 20))
                .add_service(LogsServiceServer::new(svc.clone()))
                .add_service(MetricsServiceServer::new(svc))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        Self {
            addr,
            store,
            _rt: rt,
        }
    }

    /// An OTLP/HTTP collector taking protobuf.
    pub fn http() -> Self {
        let store = Arc::new(OtlpStore::default());
        let rt = runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/v1/logs", axum::routing::post(http_logs))
            .route("/v1/metrics", axum::routing::post(http_metrics))
            .with_state(store.clone());
        rt.spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            store,
            _rt: rt,
        }
    }

    /// The base endpoint to configure.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}
