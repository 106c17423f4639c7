//! Sinks end to end through the binary, against real receivers on 127.0.0.1: a webhook
//! that checks Standard Webhooks signatures and fails on demand, OTLP collectors over
//! gRPC and HTTP/protobuf, a receiver that is down while driftwatch is killed and
//! restarted, and the JSON-lines file with rotation.

use crate::common;

use common::receivers::{free_port, OtlpReceiver, WebhookReceiver};
use common::{bin, quickstart, run, spooled};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::Ordering;

// 24 and 32 key bytes; the receivers know only NEW, so deliveries signed with both verify
// (rotation), and deliveries signed only with OLD would not.
const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn scan(dir: &Path) -> (i32, String) {
    let (code, _, stderr) =
        run(bin(dir).args(["scan", "--config", "driftwatch.toml", "--format", "json"]));
    (code, stderr)
}

/// The quickstart's findings by id, from the report the run wrote.
fn report(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("out/last-scan.json")).unwrap()).unwrap()
}

fn finding_ids(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// Drift events grouped by scan: scan id -> finding ids, and which scans completed.
fn by_scan(events: &[Value]) -> (BTreeMap<String, Vec<String>>, BTreeSet<String>) {
    let (mut drift, mut done) = (BTreeMap::<String, Vec<String>>::new(), BTreeSet::new());
    for e in events {
        let scan = e["data"]["scan_id"].as_str().unwrap().to_string();
        match e["type"].as_str().unwrap() {
            "driftwatch.drift.detected" => drift
                .entry(scan)
                .or_default()
                .push(e["data"]["finding"]["id"].as_str().unwrap().to_string()),
            "driftwatch.scan.completed" => {
                assert!(done.insert(scan), "one scan.completed per scan");
            }
            other => panic!("unexpected type {other}"),
        }
    }
    (drift, done)
}

fn webhook_sink(url: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\nkind = \"webhook\"\nurl = \"{url}\"\nsecrets = [\"{OLD}\", \"{NEW}\"]\nmax_events = 4\nretry_initial = \"10ms\"\nretry_max = \"50ms\"\n{extra}\n"
    )
}

#[test]
fn webhook_delivers_every_finding_signed_after_failures() {
    let rx = WebhookReceiver::start(NEW);
    rx.behaviour.fail_first.store(3, Ordering::SeqCst);
    let dir = quickstart(&webhook_sink(&rx.url(), ""));
    let (code, stderr) = scan(dir.path());
    assert_eq!(code, 2, "{stderr}");
    let expected = finding_ids(&report(dir.path()));
    assert!(expected.len() > 8, "{expected:?}");

    assert_eq!(rx.bad_signatures(), 0);
    let accepted = rx.accepted();
    assert_eq!(
        rx.requests(),
        accepted.len() + 3,
        "three failures, then each batch once"
    );
    let events = rx.events();
    let (drift, done) = by_scan(&events);
    assert_eq!(drift.len(), 1);
    let got: Vec<String> = drift.into_values().next().unwrap();
    assert_eq!(got.len(), expected.len(), "no finding twice");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(done.len(), 1);
    for d in &accepted {
        assert_eq!(d.content_type, "application/cloudevents-batch+json");
        assert!(d.events.len() <= 4, "max_events");
        assert!(d.id.starts_with("msg_"), "{}", d.id);
    }
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");
    for e in &events {
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["source"], "driftwatch");
        assert_eq!(e["datacontenttype"], "application/json");
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    let summary = events
        .iter()
        .find(|e| e["type"] == "driftwatch.scan.completed")
        .unwrap();
    assert_eq!(
        summary["data"]["scan"]["summary"]["findings"]["total"],
        expected.len()
    );
    assert_eq!(
        spooled(dir.path(), "webhook"),
        0,
        "a delivered batch leaves the spool"
    );
}

#[test]
fn webhook_gone_disables_the_sink_until_its_marker_is_deleted_and_rejections_are_kept() {
    let rx = WebhookReceiver::start(NEW);
    rx.behaviour.gone.store(true, Ordering::SeqCst);
    let dir = quickstart(&webhook_sink(&rx.url(), ""));
    let (code, stderr) = scan(dir.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("disabled by its receiver"), "{stderr}");
    let marker = dir.path().join(".driftwatch/spool/webhook/DISABLED");
    assert!(marker.is_file());
    assert_eq!(rx.requests(), 1);
    assert!(
        spooled(dir.path(), "webhook") > 0,
        "nothing is lost while disabled"
    );

    // Still disabled: no request, the new scan's events spooled too.
    let (code, stderr) = scan(dir.path());
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(rx.requests(), 1);

    // Re-enabled: both earlier scans arrive, then this one.
    rx.behaviour.gone.store(false, Ordering::SeqCst);
    std::fs::remove_file(&marker).unwrap();
    let (code, stderr) = scan(dir.path());
    assert_eq!(code, 2, "{stderr}");
    let expected = finding_ids(&report(dir.path()));
    let (drift, done) = by_scan(&rx.events());
    assert_eq!(drift.len(), 3);
    assert_eq!(done.len(), 3);
    for ids in drift.values() {
        assert_eq!(ids.len(), expected.len());
        assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);
    }
    assert_eq!(spooled(dir.path(), "webhook"), 0);

    // A 400 is not retried: the batch is set aside for an operator, and the run fails.
    rx.behaviour.fail_status.store(400, Ordering::SeqCst);
    rx.behaviour.fail_first.store(1, Ordering::SeqCst);
    let before = rx.requests();
    let (code, stderr) = scan(dir.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("rejected"), "{stderr}");
    let rejected = dir.path().join(".driftwatch/spool/webhook/rejected");
    let kept = std::fs::read_dir(&rejected).unwrap().count();
    assert_eq!(kept, 1);
    let batches = (expected.len() + 1).div_ceil(4);
    assert_eq!(
        rx.requests() - before,
        batches,
        "the rejected batch was sent once"
    );
}

#[test]
fn a_receiver_down_while_driftwatch_is_killed_and_restarted_loses_nothing() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let dir = quickstart(&webhook_sink(&url, "flush_timeout = \"10m\""));

    // The receiver is down: driftwatch spools, retries, and is killed mid-retry.
    let mut child = bin(dir.path())
        .args([
            "scan",
            "--config",
            "driftwatch.toml",
            "--format",
            "json",
            "--quiet",
        ])
        .env("DRIFTWATCH_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, got) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if line.contains("will retry") {
                let _ = tx.send(line);
            }
        }
    });
    // Three failed attempts: the whole scan is in the spool by then.
    for _ in 0..3 {
        got.recv_timeout(std::time::Duration::from_secs(120))
            .expect("driftwatch retries the unreachable receiver");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(spooled(dir.path(), "webhook") > 0);

    // The receiver comes up (and still fails twice); driftwatch runs again.
    let rx = WebhookReceiver::start_on(port, NEW);
    rx.behaviour.fail_first.store(2, Ordering::SeqCst);
    let (code, stderr) = scan(dir.path());
    assert_eq!(code, 2, "{stderr}");
    let expected = finding_ids(&report(dir.path()));
    let (drift, done) = by_scan(&rx.events());
    assert_eq!(drift.len(), 2, "the killed run's scan and this one");
    assert_eq!(done.len(), 2);
    for ids in drift.values() {
        assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);
    }
    assert_eq!(rx.bad_signatures(), 0);
    assert_eq!(spooled(dir.path(), "webhook"), 0);
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn attr_str(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key) {
        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Checks what an OTLP receiver took against the scan's own report.
fn check_otlp(rx: &OtlpReceiver, report: &Value, service: &str) {
    let findings = report["findings"].as_array().unwrap();
    let records = rx.store.log_records();
    assert_eq!(records.len(), findings.len() + 1);
    let names: Vec<&str> = records.iter().map(|r| r.event_name.as_str()).collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "driftwatch.drift.detected")
            .count(),
        findings.len()
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "driftwatch.scan.completed")
            .count(),
        1
    );
    for f in findings {
        let id = f["id"].as_str().unwrap();
        let r = records
            .iter()
            .find(|r| attr_str(&r.attributes, "driftwatch.finding.id").as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no record for {id}"));
        let a = &r.attributes;
        let ty = f["resource"]["type"].as_str().unwrap();
        let cloud = if ty.starts_with("aws_") {
            "aws"
        } else if ty.starts_with("azurerm_") {
            "azure"
        } else {
            "gcp"
        };
        assert_eq!(
            attr_str(a, "cloud.provider").as_deref(),
            Some(cloud),
            "{id}"
        );
        assert_eq!(
            attr_str(a, "cloud.resource_id").as_deref(),
            f["resource"]["id"].as_str()
        );
        assert_eq!(
            attr_str(a, "cloud.region").as_deref(),
            f["resource"]["region"].as_str()
        );
        assert_eq!(
            attr_str(a, "cloud.account.id").as_deref(),
            f["resource"]["account"].as_str()
        );
        assert_eq!(
            attr_str(a, "driftwatch.finding.kind").as_deref(),
            f["kind"].as_str()
        );
        assert_eq!(
            attr_str(a, "driftwatch.finding.status").as_deref(),
            f["status"].as_str()
        );
        let risk = f["risk"].as_str().unwrap();
        assert_eq!(
            attr_str(a, "driftwatch.finding.risk").as_deref(),
            Some(risk)
        );
        let severity = match risk {
            "low" => ("INFO", 9),
            "medium" => ("WARN", 13),
            "high" => ("ERROR", 17),
            _ => ("FATAL", 21),
        };
        assert_eq!(
            (r.severity_text.as_str(), r.severity_number),
            severity,
            "{id}"
        );
        assert!(r.time_unix_nano > 0);
    }
    assert!(
        records.iter().any(|r| r.severity_text == "FATAL"),
        "SSH open to the world is critical"
    );
    let resource = &rx.store.logs.lock().unwrap()[0].resource_logs[0]
        .resource
        .clone()
        .unwrap();
    assert_eq!(
        attr_str(&resource.attributes, "service.name").as_deref(),
        Some(service)
    );

    // Metrics: one set of gauges per scan, equal to the report's own counts.
    let metrics = rx.store.metrics();
    let value = |name: &str| -> Vec<(Vec<KeyValue>, f64)> {
        let m = metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no metric {name}"));
        match m.data.as_ref().unwrap() {
            opentelemetry_proto::tonic::metrics::v1::metric::Data::Gauge(g) => g
                .data_points
                .iter()
                .map(|p| {
                    let v = match p.value.unwrap() {
                        opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(d) => d,
                        opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(i) => i as f64,
                    };
                    (p.attributes.clone(), v)
                })
                .collect(),
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    };
    let mut by: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for f in findings {
        *by.entry((
            f["kind"].as_str().unwrap().into(),
            f["risk"].as_str().unwrap().into(),
            f["status"].as_str().unwrap().into(),
        ))
        .or_default() += 1.0;
    }
    // Every kind, risk and status combination is sent, zeros included, labelled with the
    // providers the scan covered.
    let scope: Vec<&str> = report["summary"]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let points = value("driftwatch.findings");
    assert_eq!(points.len(), 3 * 4 * 3);
    assert!(points.iter().any(|(_, v)| *v == 0.0), "zeros are sent");
    for name in [
        "driftwatch.findings",
        "driftwatch.resources.scanned",
        "driftwatch.findings.unowned",
    ] {
        for (a, _) in value(name) {
            assert_eq!(
                attr_str(&a, "driftwatch.provider").as_deref(),
                Some(scope.join(",").as_str()),
                "{name}"
            );
        }
    }
    let got: BTreeMap<(String, String, String), f64> = points
        .into_iter()
        .filter(|(_, v)| *v > 0.0)
        .map(|(a, v)| {
            (
                (
                    attr_str(&a, "driftwatch.finding.kind").unwrap(),
                    attr_str(&a, "driftwatch.finding.risk").unwrap(),
                    attr_str(&a, "driftwatch.finding.status").unwrap(),
                ),
                v,
            )
        })
        .collect();
    assert_eq!(got, by);
    let s = &report["summary"];
    let single = |name: &str| value(name)[0].1;
    assert_eq!(
        single("driftwatch.resources.scanned"),
        s["resources"]["live"].as_f64().unwrap()
    );
    assert_eq!(
        single("driftwatch.resources.unmanaged"),
        s["findings"]["unmanaged"].as_f64().unwrap()
    );
    assert_eq!(
        single("driftwatch.findings.unowned"),
        s["unowned"].as_f64().unwrap()
    );
    // One exception of the quickstart's two is still valid.
    assert_eq!(single("driftwatch.exceptions.active"), 1.0);
    assert!(single("driftwatch.scan.duration") >= 0.0);
    assert_eq!(
        value("driftwatch.api.calls").len(),
        3,
        "one point per provider"
    );
}

#[test]
fn otlp_over_grpc_gets_events_with_cloud_attributes_and_metrics() {
    let rx = OtlpReceiver::grpc();
    rx.store.fail_first.store(2, Ordering::SeqCst);
    let dir = quickstart(&format!(
        "[[sinks]]\nkind = \"otel\"\nprotocol = \"grpc\"\nendpoint = \"{}\"\nretry_initial = \"10ms\"\n[sinks.headers]\nx-team = \"sec\"\n",
        rx.endpoint()
    ));
    let (code, stderr) = scan(dir.path());
    assert_eq!(code, 2, "{stderr}");
    check_otlp(&rx, &report(dir.path()), "driftwatch");
    assert_eq!(rx.store.last_team.lock().unwrap().as_deref(), Some("sec"));
    assert_eq!(spooled(dir.path(), "otel"), 0);
}

#[test]
fn otlp_over_http_protobuf_follows_the_standard_environment() {
    let rx = OtlpReceiver::http();
    rx.store.fail_first.store(1, Ordering::SeqCst);
    let dir = quickstart("[[sinks]]\nkind = \"otel\"\nretry_initial = \"10ms\"\n");
    let (code, _, stderr) = run(bin(dir.path())
        .args(["scan", "--config", "driftwatch.toml", "--format", "json"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-team=ops")
        .env("OTEL_SERVICE_NAME", "driftwatch-ci"));
    assert_eq!(code, 2, "{stderr}");
    check_otlp(&rx, &report(dir.path()), "driftwatch-ci");
    assert_eq!(rx.store.last_team.lock().unwrap().as_deref(), Some("ops"));
}

#[test]
fn the_jsonl_file_sink_appends_events_and_rotates_by_size() {
    let dir = quickstart(
        "[[sinks]]\nkind = \"file\"\nname = \"events\"\nformat = \"jsonl\"\npath = \"out/events.jsonl\"\nmax_bytes = 20000\nmax_files = 50\n",
    );
    for _ in 0..3 {
        let (code, stderr) = scan(dir.path());
        assert_eq!(code, 2, "{stderr}");
    }
    let expected = finding_ids(&report(dir.path()));
    let mut events = Vec::new();
    let mut files = 0;
    for name in std::fs::read_dir(dir.path().join("out")).unwrap() {
        let p = name.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("events.jsonl")
        {
            files += 1;
            let text = std::fs::read_to_string(&p).unwrap();
            for l in text.lines() {
                let e: Value = serde_json::from_str(l).unwrap();
                events.push(e);
            }
        }
    }
    assert!(files > 1, "rotated");
    assert_eq!(events.len(), 3 * (expected.len() + 1));
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len());
}

#[test]
fn a_partial_line_at_the_end_of_the_jsonl_file_is_never_fused_with_the_next_event() {
    let dir = quickstart(
        "[[sinks]]\nkind = \"file\"\nname = \"events\"\nformat = \"jsonl\"\npath = \"out/events.jsonl\"\n",
    );
    // What a full disk left of an earlier append: its batch is still in the spool.
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::write(
        dir.path().join("out/events.jsonl"),
        "{\"id\":\"evt_torn\",\"kind\":\"driftwatch.dr",
    )
    .unwrap();
    let (code, stderr) = scan(dir.path());
    assert_eq!(code, 2, "{stderr}");
    let expected = finding_ids(&report(dir.path()));
    let text = std::fs::read_to_string(dir.path().join("out/events.jsonl")).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events.len(), expected.len() + 1);
}

/// A receiver that accepts connections and never answers: a delivery to it stays in
/// flight until its timeout.
fn hanging_receiver() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (port, accepted)
}

#[test]
fn a_kill_while_a_delivery_hangs_loses_none_of_the_events_published_meanwhile() {
    let down = format!("http://127.0.0.1:{}/hook", free_port());
    let dir = quickstart(&webhook_sink(&down, "flush_timeout = \"200ms\""));
    let config = dir.path().join("driftwatch.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    let swap = |to: &str| {
        let text = base
            .replace(&down, to)
            .replace("flush_timeout = \"200ms\"", "flush_timeout = \"10m\"");
        std::fs::write(&config, text).unwrap();
    };
    // A first run cannot reach its receiver: its events wait in the spool.
    let (code, stderr) = scan(dir.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(spooled(dir.path(), "webhook") > 0);

    // The second run's worker is stuck sending the first run's batch when the scan
    // publishes its own events; it is killed once it says they are spooled.
    let (port, accepted) = hanging_receiver();
    swap(&format!("http://127.0.0.1:{port}/hook"));
    let mut child = bin(dir.path())
        .args([
            "scan",
            "--config",
            "driftwatch.toml",
            "--format",
            "json",
            "--quiet",
        ])
        .env("DRIFTWATCH_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, got) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            if line.unwrap_or_default().contains("events spooled") {
                let _ = tx.send(());
            }
        }
    });
    got.recv_timeout(std::time::Duration::from_secs(120))
        .expect("the scan spools its events");
    for _ in 0..1200 {
        if accepted.load(Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "a delivery is in flight"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // A third run against a receiver that answers gets all three scans, each once.
    let rx = WebhookReceiver::start(NEW);
    swap(&rx.url());
    let (code, stderr) = scan(dir.path());
    assert_eq!(code, 2, "{stderr}");
    let expected = finding_ids(&report(dir.path()));
    let (drift, done) = by_scan(&rx.events());
    assert_eq!(done.len(), 3, "{stderr}");
    assert_eq!(drift.len(), 3);
    for ids in drift.values() {
        assert_eq!(ids.len(), expected.len(), "each finding once");
        assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);
    }
    assert_eq!(spooled(dir.path(), "webhook"), 0);
}

#[test]
fn concurrent_scans_sharing_a_spool_deliver_every_event_exactly_once() {
    let rx = WebhookReceiver::start(NEW);
    rx.behaviour.fail_first.store(2, Ordering::SeqCst);
    let dir = quickstart(&webhook_sink(&rx.url(), "flush_timeout = \"10m\""));
    let children: Vec<_> = (0..4)
        .map(|_| {
            bin(dir.path())
                .args([
                    "scan",
                    "--config",
                    "driftwatch.toml",
                    "--format",
                    "json",
                    "--quiet",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("No such file"), "{stderr}");
        assert_eq!(out.status.code(), Some(2), "{stderr}");
    }
    let expected = finding_ids(&report(dir.path()));
    let events = rx.events();
    let (drift, done) = by_scan(&events);
    assert_eq!(done.len(), 4, "every scan's summary, once");
    assert_eq!(drift.len(), 4);
    for ids in drift.values() {
        assert_eq!(ids.len(), expected.len(), "no finding twice");
        assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);
    }
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "no event delivered twice");
    assert_eq!(spooled(dir.path(), "webhook"), 0);
}

#[test]
fn bad_sink_settings_are_named_with_their_line() {
    let dir = quickstart(
        "[[sinks]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nsecrets = [\"nope\"]\n\n[[sinks]]\nkind = \"otel\"\nname = \"o\"\nprotocol = \"http/json\"\n\n[[sinks]]\nkind = \"file\"\nname = \"f\"\npath = \"x.json\"\nretry_max = \"1s\"\n",
    );
    let (code, _, stderr) = run(bin(dir.path()).args(["validate", "--config", "driftwatch.toml"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("sinks[1].secrets[0]"), "{stderr}");
    assert!(stderr.contains("whsec_"), "{stderr}");
    assert!(stderr.contains("sinks[2].protocol"), "{stderr}");
    assert!(stderr.contains("sinks[3].retry_max"), "{stderr}");
}
