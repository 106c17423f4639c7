//! `driftwatch agent` as deployed: a child process on the quickstart, scanning every few
//! hundred milliseconds, observed through its endpoints, its JSON-lines event file and a
//! webhook receiver. A drift that goes away is resolved once, one that comes back is
//! detected again, a restart announces nothing it already announced, SIGHUP with a bad
//! config keeps the old one, and SIGTERM flushes the sinks and exits 0.

use crate::common;

use common::receivers::{OtlpReceiver, WebhookReceiver};
use common::{bin, quickstart};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const GONE_BUCKET: &str = "acme-old-build-artifacts";

fn agent_config(port: u16, extra: &str) -> String {
    format!(
        "[agent]\ninterval = \"300ms\"\njitter = 0.0\nlisten = \"127.0.0.1:{port}\"\nshutdown_timeout = \"20s\"\n\n\
         [[sinks]]\nkind = \"file\"\nname = \"events\"\nformat = \"jsonl\"\npath = \"out/events.jsonl\"\n{extra}"
    )
}

/// The agent as a child process, its log drained on a thread so it never blocks on a full
/// pipe.
struct Agent {
    child: Child,
    log: std::thread::JoinHandle<String>,
}

fn start(dir: &Path) -> Agent {
    let mut child = bin(dir)
        .args(["agent", "--config", "driftwatch.toml"])
        .env("DRIFTWATCH_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Agent { child, log }
}

fn signal(agent: &Agent, sig: i32) {
    assert_eq!(unsafe { libc::kill(agent.child.id() as i32, sig) }, 0);
}

/// Stops the agent with SIGTERM and returns its exit code and log.
fn stop(mut agent: Agent) -> (i32, String) {
    signal(&agent, libc::SIGTERM);
    let status = agent.child.wait().unwrap();
    (status.code().unwrap_or(-1), agent.log.join().unwrap())
}

/// A plain HTTP/1.0 GET on 127.0.0.1: status and body, or None while nothing listens.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Polls until `cond` holds, up to two minutes (a generous bound on a loaded machine; the
/// test never measures time).
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn events(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("out/events.jsonl")).unwrap_or_default();
    // The agent may be appending while the test reads: a line counts once it is complete.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn count(events: &[Value], kind: &str, resource: Option<&str>) -> usize {
    events
        .iter()
        .filter(|e| e["kind"] == kind)
        .filter(|e| resource.is_none_or(|r| e["finding"]["resource"]["id"] == r))
        .count()
}

fn metric(port: u16, line_prefix: &str) -> f64 {
    let (_, body) = get(port, "/metrics").unwrap();
    body.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_prefix} in\n{body}"))
}

/// Rewrites the quickstart's AWS app state with or without the deleted bucket.
fn declare_gone_bucket(dir: &Path, declared: bool, original: &Value) {
    let mut state = original.clone();
    if !declared {
        state["resources"]
            .as_array_mut()
            .unwrap()
            .retain(|r| r["instances"][0]["attributes"]["id"] != GONE_BUCKET);
    }
    state["serial"] = serde_json::json!(state["serial"].as_i64().unwrap_or(1) + 1);
    let path = dir.join("states/aws/app.tfstate");
    let tmp = dir.join("states/aws/.app.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

fn completed_scans(dir: &Path) -> usize {
    count(&events(dir), "driftwatch.scan.completed", None)
}

#[test]
fn drift_is_detected_once_resolved_when_it_goes_and_a_restart_resumes_from_the_store() {
    let port = common::receivers::free_port();
    let dir = quickstart(&agent_config(port, ""));
    let original: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("states/aws/app.tfstate")).unwrap())
            .unwrap();
    let child = start(dir.path());
    until("/readyz", || {
        get(port, "/readyz").is_some_and(|(s, _)| s == 200)
    });
    assert_eq!(get(port, "/healthz").unwrap(), (200, "ok\n".into()));
    let (_, body) = get(port, "/findings").unwrap();
    let open: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(open.len(), 13, "the quickstart's findings");
    // Several scans of each provider later, each finding was announced once.
    until("three scans per provider", || {
        completed_scans(dir.path()) >= 9
    });
    let ev = events(dir.path());
    assert_eq!(count(&ev, "driftwatch.drift.detected", None), 13);
    assert_eq!(count(&ev, "driftwatch.drift.resolved", None), 0);
    // One of the quickstart's two exceptions is still valid.
    for e in ev
        .iter()
        .filter(|e| e["kind"] == "driftwatch.scan.completed")
    {
        assert_eq!(e["scan"]["exceptions_active"], 1);
    }

    // The bucket is removed from the state: its `missing` drift is resolved, once.
    declare_gone_bucket(dir.path(), false, &original);
    until("the resolution", || {
        count(
            &events(dir.path()),
            "driftwatch.drift.resolved",
            Some(GONE_BUCKET),
        ) == 1
    });
    let before = completed_scans(dir.path());
    until("more scans", || completed_scans(dir.path()) >= before + 6);
    let ev = events(dir.path());
    assert_eq!(count(&ev, "driftwatch.drift.resolved", None), 1);
    let (_, body) = get(port, "/findings").unwrap();
    assert_eq!(serde_json::from_str::<Vec<Value>>(&body).unwrap().len(), 12);
    assert_eq!(metric(port, "driftwatch_findings_resolved_total"), 1.0);

    // Declared again: detected again.
    declare_gone_bucket(dir.path(), true, &original);
    until("the new detection", || {
        count(
            &events(dir.path()),
            "driftwatch.drift.detected",
            Some(GONE_BUCKET),
        ) == 2
    });
    let (code, log) = stop(child);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("stopped"), "{log}");

    // A restart on the same store: scans go on, nothing already open is announced again.
    let detected = count(&events(dir.path()), "driftwatch.drift.detected", None);
    let before = completed_scans(dir.path());
    let child = start(dir.path());
    until("scans after the restart", || {
        completed_scans(dir.path()) >= before + 6
    });
    let (code, log) = stop(child);
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        count(&events(dir.path()), "driftwatch.drift.detected", None),
        detected
    );
    // Scans of one provider never overlap: each starts after the previous one ended.
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for e in events(dir.path())
        .iter()
        .filter(|e| e["kind"] == "driftwatch.scan.completed")
    {
        let p = e["scan"]["summary"]["providers"][0]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let (start, end) = (
            e["scan"]["scan"]["started_at"]
                .as_str()
                .unwrap()
                .to_string(),
            e["scan"]["scan"]["finished_at"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        if let Some(prev_end) = last.get(&p) {
            assert!(
                &start >= prev_end,
                "{p}: a scan started at {start} before {prev_end}"
            );
        }
        last.insert(p, end);
    }
}

#[test]
fn sighup_with_a_bad_config_keeps_the_old_one_and_a_good_one_applies() {
    let port = common::receivers::free_port();
    let dir = quickstart(&agent_config(port, ""));
    let cfg = dir.path().join("driftwatch.toml");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let child = start(dir.path());
    until("/readyz", || {
        get(port, "/readyz").is_some_and(|(s, _)| s == 200)
    });

    std::fs::write(&cfg, good.replace("[[providers]]", "[[providerz]]")).unwrap();
    signal(&child, libc::SIGHUP);
    until("the refusal", || {
        metric(port, "driftwatch_config_reloads_total{result=\"refused\"}") == 1.0
    });
    // Still scanning with the old config.
    let before = completed_scans(dir.path());
    until("scans after the refusal", || {
        completed_scans(dir.path()) >= before + 3
    });

    std::fs::write(
        &cfg,
        good.replace("interval = \"300ms\"", "interval = \"200ms\""),
    )
    .unwrap();
    signal(&child, libc::SIGHUP);
    until("the reload", || {
        metric(port, "driftwatch_config_reloads_total{result=\"applied\"}") == 1.0
    });
    let before = completed_scans(dir.path());
    until("scans after the reload", || {
        completed_scans(dir.path()) >= before + 3
    });
    let (code, log) = stop(child);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("config reload refused"), "{log}");
    assert!(
        log.contains("unknown section"),
        "the reason is logged: {log}"
    );
    // No drift was announced twice across the reload.
    assert_eq!(
        count(&events(dir.path()), "driftwatch.drift.detected", None),
        13
    );
}

#[test]
fn sigterm_flushes_the_sinks_before_exiting() {
    let rx = WebhookReceiver::start(SECRET);
    // Every delivery fails at first: the events are still spooled and retrying when
    // SIGTERM arrives.
    rx.behaviour.fail_first.store(4, Ordering::SeqCst);
    let port = common::receivers::free_port();
    let dir = quickstart(&agent_config(
        port,
        &format!(
            "\n[[sinks]]\nkind = \"webhook\"\nurl = \"{}\"\nsecrets = [\"{SECRET}\"]\nretry_initial = \"200ms\"\nretry_max = \"400ms\"\nflush_timeout = \"60s\"\n",
            rx.url()
        ),
    ));
    let child = start(dir.path());
    until("a failed delivery", || rx.requests() >= 1);
    let (code, log) = stop(child);
    assert_eq!(code, 0, "{log}");
    // Everything the agent wrote to its event file reached the webhook too.
    let written: Vec<String> = events(dir.path())
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let received: std::collections::BTreeSet<String> = rx
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!written.is_empty());
    for id in &written {
        assert!(
            received.contains(id),
            "{id} was not delivered before exit\n{log}"
        );
    }
    assert_eq!(rx.bad_signatures(), 0);
    let left = common::spooled(dir.path(), "webhook");
    assert_eq!(left, 0, "{log}");
}

#[test]
fn a_failing_provider_does_not_stop_the_others() {
    let port = common::receivers::free_port();
    // An AWS account whose endpoint refuses connections: its every scan fails.
    let dir = quickstart(&agent_config(
        port,
        "\n[[providers]]\nkind = \"aws\"\nname = \"aws-down\"\nregions = [\"us-east-1\"]\nendpoint_url = \"http://127.0.0.1:1\"\nmax_attempts = 1\n",
    ));
    let mut cmd = bin(dir.path());
    cmd.args(["agent", "--config", "driftwatch.toml"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut err = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let agent = Agent { child, log };
    let scans = |p: &str, r: &str| {
        metric(
            port,
            &format!("driftwatch_scans_total{{provider=\"{p}\",result=\"{r}\"}}"),
        )
    };
    // The failing account fails fast, so how many scans each side has done at
    // any instant is a race; what matters is that both keep going.
    until("failed scans beside good ones", || {
        get(port, "/metrics").is_some()
            && scans("aws-down", "failed") >= 3.0
            && scans("aws-config", "ok") >= 3.0
            && scans("azure-graph", "ok") >= 1.0
            && scans("gcp-assets", "ok") >= 1.0
            && count(&events(dir.path()), "driftwatch.drift.detected", None) == 13
    });
    // The others went on scanning meanwhile, and the failure is on /readyz.
    assert_eq!(scans("aws-down", "ok"), 0.0);
    assert_eq!(
        metric(port, "driftwatch_provider_up{provider=\"aws-down\"}"),
        0.0
    );
    assert_eq!(
        metric(port, "driftwatch_provider_up{provider=\"gcp-assets\"}"),
        1.0
    );
    let (status, body) = get(port, "/readyz").unwrap();
    assert_eq!(status, 503);
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert!(
        ready["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("provider aws-down"),
        "{body}"
    );
    assert_eq!(
        count(&events(dir.path()), "driftwatch.drift.detected", None),
        13
    );
    let (code, log) = stop(agent);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("scan failed"), "{log}");
}

/// The last `driftwatch.findings` gauge each provider exported: provider -> (kind, risk,
/// status) -> value.
fn findings_gauges(rx: &OtlpReceiver) -> BTreeMap<String, BTreeMap<String, f64>> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for m in rx.store.metrics() {
        if m.name != "driftwatch.findings" {
            continue;
        }
        let Some(Data::Gauge(g)) = m.data else {
            panic!("not a gauge")
        };
        let mut latest: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        for p in g.data_points {
            let attr = |k: &str| {
                p.attributes
                    .iter()
                    .find(|a| a.key == k)
                    .and_then(|a| a.value.clone())
                    .and_then(|v| v.value)
                    .map(|v| match v {
                        V::StringValue(s) => s,
                        other => panic!("{other:?}"),
                    })
                    .unwrap_or_else(|| panic!("no {k}"))
            };
            let key = format!(
                "{}/{}/{}",
                attr("driftwatch.finding.kind"),
                attr("driftwatch.finding.risk"),
                attr("driftwatch.finding.status")
            );
            let v = match p.value.unwrap() {
                Value::AsDouble(d) => d,
                Value::AsInt(i) => i as f64,
            };
            latest
                .entry(attr("driftwatch.provider"))
                .or_default()
                .insert(key, v);
        }
        out.extend(latest);
    }
    out
}

fn missing(g: &BTreeMap<String, f64>) -> f64 {
    g.iter()
        .filter(|(k, _)| k.starts_with("missing/"))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn each_providers_otel_gauges_are_its_own_series_and_a_count_that_drops_is_sent() {
    let rx = OtlpReceiver::http();
    let port = common::receivers::free_port();
    let dir = quickstart(&agent_config(
        port,
        &format!(
            "\n[[sinks]]\nkind = \"otel\"\nname = \"otel\"\nendpoint = \"{}\"\nretry_initial = \"10ms\"\n",
            rx.endpoint()
        ),
    ));
    let original: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("states/aws/app.tfstate")).unwrap())
            .unwrap();
    let child = start(dir.path());
    until("gauges from every provider", || {
        findings_gauges(&rx).len() == 3
    });
    let before = findings_gauges(&rx);
    for (provider, g) in &before {
        assert!(
            ["aws-config", "azure-graph", "gcp-assets"].contains(&provider.as_str()),
            "{provider}"
        );
        assert_eq!(g.len(), 3 * 4 * 3, "every combination, zeros included");
        assert!(g.values().any(|v| *v == 0.0));
    }
    // The three providers' counts are not one series overwritten in turn.
    let total: f64 = before.values().flat_map(|g| g.values()).sum();
    assert_eq!(total, 13.0, "{before:?}");
    let aws_missing = missing(&before["aws-config"]);
    assert!(aws_missing >= 1.0, "{before:?}");

    // The deleted bucket is no longer declared: its `missing` count drops, and the new
    // value is sent rather than the old one left standing.
    declare_gone_bucket(dir.path(), false, &original);
    until("the lower count", || {
        missing(&findings_gauges(&rx)["aws-config"]) == aws_missing - 1.0
    });
    let (code, log) = stop(child);
    assert_eq!(code, 0, "{log}");
}
