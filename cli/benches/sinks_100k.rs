//! Sink benchmark: 100,000 findings delivered through the delivery runtime (spool,
//! batching, signing, retries armed) to a local webhook receiver and to local OTLP
//! collectors over gRPC and HTTP/protobuf, in findings per second. Each is set against the
//! transport's floor measured in the same run: the same requests, encoded beforehand, sent
//! one after another straight to the same receiver.
//!
//! `cargo bench -p driftwatch-core --bench sinks_100k`; `cargo test` runs it at 2,000.

use driftwatch_core::deliver::{events, ConfiguredSink, Delivery, DeliveryPolicy};
use driftwatch_plugin_sdk::{Sink, SinkEvent};
use driftwatch_sink_otel::{OtelConfig, OtelSink, Protocol};
use driftwatch_sink_webhook::{WebhookConfig, WebhookSink};
use opentelemetry_proto::tonic::collector::logs::v1::{
    logs_service_client::LogsServiceClient, ExportLogsServiceRequest,
};
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use prost::Message;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;
#[path = "../tests/common/receivers.rs"]
mod receivers;

const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const BATCH: usize = 500;

fn events(n: usize) -> Vec<SinkEvent> {
    (0..n)
        .map(|i| {
            let f = common::finding(i);
            SinkEvent {
                id: events::event_id(
                    "bench",
                    driftwatch_plugin_sdk::EventKind::DriftDetected,
                    &f.id,
                ),
                kind: driftwatch_plugin_sdk::EventKind::DriftDetected,
                time: f.last_seen.clone(),
                scan_id: "bench".into(),
                finding: Some(f),
                scan: None,
            }
        })
        .collect()
}

/// Through the runtime: publish, then wait until everything is delivered.
async fn runtime(sink: Arc<dyn Sink>, evs: Vec<SinkEvent>) -> Duration {
    let spool = tempfile::tempdir().unwrap();
    let policy = DeliveryPolicy {
        batch_size: BATCH,
        ..DeliveryPolicy::default()
    };
    let t = Instant::now();
    let d = Delivery::start(
        vec![ConfiguredSink {
            sink,
            kind: "bench".into(),
            policy,
        }],
        spool.path(),
    )
    .unwrap();
    let n = evs.len() as u64;
    d.publish(evs).await.expect("the spool keeps every event");
    let stats = d.finish().await;
    let took = t.elapsed();
    assert_eq!(stats[0].sent, n, "{stats:?}");
    took
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    let n: usize = if std::env::args().any(|a| a == "--bench") {
        100_000
    } else {
        2_000
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    println!("sinks_{n}: {n} findings, batches of {BATCH}");

    // Webhook.
    let rx = receivers::WebhookReceiver::start(SECRET);
    let cfg: WebhookConfig = serde_json::from_value(serde_json::json!({
        "url": rx.url(), "secrets": [SECRET], "max_events": BATCH,
    }))
    .unwrap();
    let sink = Arc::new(WebhookSink::new("bench", cfg).unwrap());
    let evs = events(n);
    let bodies: Vec<(String, Vec<u8>)> = evs
        .chunks(BATCH)
        .map(|c| {
            let (id, body, _) = sink.body(c);
            (id, body)
        })
        .collect();
    let ours = rt.block_on(runtime(sink.clone(), evs));
    let client = reqwest::Client::new();
    let floor = rt.block_on(async {
        let t = Instant::now();
        for (id, body) in bodies {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let sig = driftwatch_sink_webhook::sign(
                &[driftwatch_sink_webhook::decode_secret(SECRET).unwrap()],
                &id,
                ts,
                &body,
            );
            let r = client
                .post(rx.url())
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
        t.elapsed()
    });
    assert_eq!(rx.bad_signatures(), 0);
    assert_eq!(rx.events().len(), 2 * n);
    println!(
        "  webhook:        {:>9.0} findings/s ({:.2} s); pre-encoded POSTs {:>9.0} findings/s; runtime/floor time {:.2}x",
        rate(n, ours),
        ours.as_secs_f64(),
        rate(n, floor),
        ours.as_secs_f64() / floor.as_secs_f64()
    );

    // OTLP over gRPC and HTTP/protobuf.
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let rx = match protocol {
            Protocol::Grpc => receivers::OtlpReceiver::grpc(),
            Protocol::HttpProtobuf => receivers::OtlpReceiver::http(),
        };
        let cfg = OtelConfig {
            protocol: Some(protocol),
            endpoint: Some(rx.endpoint()),
            ..Default::default()
        };
        let sink = Arc::new(OtelSink::with_env("bench", &cfg, &|_| None).unwrap());
        let evs = events(n);
        let requests: Vec<ExportLogsServiceRequest> = evs
            .chunks(BATCH)
            .map(|c| ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    scope_logs: vec![ScopeLogs {
                        log_records: c.iter().map(driftwatch_sink_otel::log_record).collect(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            })
            .collect();
        let ours = rt.block_on(runtime(sink, evs));
        let floor = rt.block_on(async {
            let t = Instant::now();
            match protocol {
                Protocol::Grpc => {
                    let mut c = LogsServiceClient::connect(rx.endpoint()).await.unwrap();
                    for r in requests {
                        c.export(r).await.unwrap();
                    }
                }
                Protocol::HttpProtobuf => {
                    let url = format!("{}/v1/logs", rx.endpoint());
                    for r in requests {
                        let resp = client
                            .post(&url)
                            .header("content-type", "application/x-protobuf")
                            .body(r.encode_to_vec())
                            .send()
                            .await
                            .unwrap();
                        assert!(resp.status().is_success());
                    }
                }
            }
            t.elapsed()
        });
        assert_eq!(rx.store.log_records().len(), 2 * n);
        let label = match protocol {
            Protocol::Grpc => "otlp/grpc:     ",
            Protocol::HttpProtobuf => "otlp/http:     ",
        };
        println!(
            "  {label} {:>9.0} findings/s ({:.2} s); pre-encoded exports {:>9.0} findings/s; runtime/floor time {:.2}x",
            rate(n, ours),
            ours.as_secs_f64(),
            rate(n, floor),
            ours.as_secs_f64() / floor.as_secs_f64()
        );
    }
}
