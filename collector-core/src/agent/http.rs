//! The agent's endpoints: `/healthz` (the process answers), `/readyz` (every provider's
//! last scan and every sink are healthy), `/metrics` (Prometheus text format) and
//! `/findings` (open findings as JSON).

use super::Shared;
use crate::deliver::Health;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// The endpoints over `shared`.
pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/findings", get(findings))
        .with_state(shared)
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let providers = s.providers.lock().unwrap().clone();
    let sinks = s.sinks().await;
    let mut problems = Vec::new();
    for (name, p) in &providers {
        match p.status.as_str() {
            "ok" => {}
            "pending" => problems.push(format!("provider {name}: no scan finished yet")),
            _ => problems.push(format!(
                "provider {name}: {}",
                p.error.as_deref().unwrap_or("failed")
            )),
        }
    }
    for r in &sinks {
        match &r.health {
            Health::Healthy => {}
            Health::Retrying { error } => {
                problems.push(format!("sink {}: retrying: {error}", r.name))
            }
            Health::Disabled { reason } => {
                problems.push(format!("sink {}: disabled: {reason}", r.name))
            }
        }
    }
    let body = serde_json::json!({
        "ready": problems.is_empty(),
        "problems": problems,
        "providers": providers,
        "sinks": sinks,
    });
    let code = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn findings(State(s): State<Arc<Shared>>) -> Response {
    let open = {
        let store = s.store.lock().unwrap();
        store.open_findings()
    };
    match open {
        Ok(f) => axum::Json(f).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let (open, ttc, resolved) = {
        let store = s.store.lock().unwrap();
        (
            store.open_findings().unwrap_or_default(),
            store.time_to_classify().unwrap_or_default(),
            store.resolved_count().unwrap_or(0),
        )
    };
    let providers = s.providers.lock().unwrap().clone();
    let sinks = s.sinks().await;
    let reloads = *s.reloads.lock().unwrap();
    let mut o = String::new();
    let head = |o: &mut String, name: &str, ty: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {ty}");
    };
    head(&mut o, "driftwatch_up", "gauge", "1 while the agent runs.");
    let _ = writeln!(o, "driftwatch_up 1");
    head(
        &mut o,
        "driftwatch_uptime_seconds",
        "gauge",
        "Seconds since the agent started.",
    );
    let _ = writeln!(
        o,
        "driftwatch_uptime_seconds {:.3}",
        s.started.elapsed().as_secs_f64()
    );

    let mut by: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
    let now = time::OffsetDateTime::now_utc();
    let rfc = &time::format_description::well_known::Rfc3339;
    let (mut age_sum, mut age_max) = (0.0f64, 0.0f64);
    for f in &open {
        *by.entry((f.kind.as_str(), f.risk.as_str(), f.status.as_str()))
            .or_default() += 1;
        if let Ok(t) = time::OffsetDateTime::parse(&f.first_seen, rfc) {
            let age = (now - t).as_seconds_f64().max(0.0);
            age_sum += age;
            age_max = age_max.max(age);
        }
    }
    head(
        &mut o,
        "driftwatch_findings_open",
        "gauge",
        "Open findings by kind, risk and status.",
    );
    for ((k, r, st), n) in &by {
        let _ = writeln!(
            o,
            "driftwatch_findings_open{{kind=\"{k}\",risk=\"{r}\",status=\"{st}\"}} {n}"
        );
    }
    head(
        &mut o,
        "driftwatch_findings_resolved_total",
        "counter",
        "Findings resolved since the store was created.",
    );
    let _ = writeln!(o, "driftwatch_findings_resolved_total {resolved}");
    head(
        &mut o,
        "driftwatch_drift_age_seconds_max",
        "gauge",
        "Age of the oldest open finding.",
    );
    let _ = writeln!(o, "driftwatch_drift_age_seconds_max {age_max:.3}");
    head(
        &mut o,
        "driftwatch_drift_age_seconds_sum",
        "gauge",
        "Summed age of open findings (divide by their count for the mean).",
    );
    let _ = writeln!(o, "driftwatch_drift_age_seconds_sum {age_sum:.3}");
    head(
        &mut o,
        "driftwatch_time_to_classify_seconds",
        "summary",
        "Time from first seen to a decision other than review, over open findings.",
    );
    let _ = writeln!(
        o,
        "driftwatch_time_to_classify_seconds_sum {:.3}",
        ttc.iter().sum::<f64>()
    );
    let _ = writeln!(o, "driftwatch_time_to_classify_seconds_count {}", ttc.len());

    head(
        &mut o,
        "driftwatch_scans_total",
        "counter",
        "Scans by provider and result.",
    );
    for (name, p) in &providers {
        let n = label(name);
        let _ = writeln!(
            o,
            "driftwatch_scans_total{{provider=\"{n}\",result=\"ok\"}} {}",
            p.scans_ok
        );
        let _ = writeln!(
            o,
            "driftwatch_scans_total{{provider=\"{n}\",result=\"failed\"}} {}",
            p.scans_failed
        );
    }
    head(
        &mut o,
        "driftwatch_scan_duration_seconds",
        "gauge",
        "Wall time of each provider's last scan.",
    );
    for (name, p) in &providers {
        let _ = writeln!(
            o,
            "driftwatch_scan_duration_seconds{{provider=\"{}\"}} {:.3}",
            label(name),
            p.duration_seconds
        );
    }
    head(
        &mut o,
        "driftwatch_scan_running",
        "gauge",
        "1 while a provider's scan runs.",
    );
    for (name, p) in &providers {
        let _ = writeln!(
            o,
            "driftwatch_scan_running{{provider=\"{}\"}} {}",
            label(name),
            u8::from(p.running)
        );
    }
    head(
        &mut o,
        "driftwatch_scan_overlaps_refused_total",
        "counter",
        "Scans not started because the provider's previous one still ran.",
    );
    for (name, p) in &providers {
        let _ = writeln!(
            o,
            "driftwatch_scan_overlaps_refused_total{{provider=\"{}\"}} {}",
            label(name),
            p.overlaps_refused
        );
    }
    head(
        &mut o,
        "driftwatch_provider_up",
        "gauge",
        "1 when a provider's last scan succeeded.",
    );
    for (name, p) in &providers {
        let _ = writeln!(
            o,
            "driftwatch_provider_up{{provider=\"{}\"}} {}",
            label(name),
            u8::from(p.status == "ok")
        );
    }
    head(
        &mut o,
        "driftwatch_api_calls",
        "gauge",
        "Cloud API calls of each provider's last scan.",
    );
    for (name, p) in &providers {
        let _ = writeln!(
            o,
            "driftwatch_api_calls{{provider=\"{}\"}} {}",
            label(name),
            p.api_calls
        );
    }
    head(
        &mut o,
        "driftwatch_sink_events_total",
        "counter",
        "Sink events by outcome.",
    );
    for r in &sinks {
        let n = label(&r.name);
        for (outcome, v) in [("sent", r.sent), ("dropped", r.dropped)] {
            let _ = writeln!(
                o,
                "driftwatch_sink_events_total{{sink=\"{n}\",outcome=\"{outcome}\"}} {v}"
            );
        }
    }
    head(
        &mut o,
        "driftwatch_sink_attempts_failed_total",
        "counter",
        "Delivery attempts that failed.",
    );
    for r in &sinks {
        let _ = writeln!(
            o,
            "driftwatch_sink_attempts_failed_total{{sink=\"{}\"}} {}",
            label(&r.name),
            r.failed
        );
    }
    head(
        &mut o,
        "driftwatch_sink_retries_total",
        "counter",
        "Delivery attempts that repeated a failed one.",
    );
    for r in &sinks {
        let _ = writeln!(
            o,
            "driftwatch_sink_retries_total{{sink=\"{}\"}} {}",
            label(&r.name),
            r.retried
        );
    }
    head(
        &mut o,
        "driftwatch_sink_spooled",
        "gauge",
        "Events waiting in a sink's spool.",
    );
    for r in &sinks {
        let _ = writeln!(
            o,
            "driftwatch_sink_spooled{{sink=\"{}\"}} {}",
            label(&r.name),
            r.spooled
        );
    }
    head(
        &mut o,
        "driftwatch_sink_healthy",
        "gauge",
        "1 when a sink's last attempt succeeded.",
    );
    for r in &sinks {
        let _ = writeln!(
            o,
            "driftwatch_sink_healthy{{sink=\"{}\"}} {}",
            label(&r.name),
            u8::from(r.health == Health::Healthy)
        );
    }
    head(
        &mut o,
        "driftwatch_config_reloads_total",
        "counter",
        "SIGHUP reloads by result.",
    );
    let _ = writeln!(
        o,
        "driftwatch_config_reloads_total{{result=\"applied\"}} {}",
        reloads.0
    );
    let _ = writeln!(
        o,
        "driftwatch_config_reloads_total{{result=\"refused\"}} {}",
        reloads.1
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        o,
    )
        .into_response()
}
