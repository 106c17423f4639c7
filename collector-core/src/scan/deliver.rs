//! Stage 6, deliver: write the document sinks and hand the scan's events to the streaming
//! ones, which spool them before this returns and send them until `flush_timeout`.

use crate::components::SinkSetup;
use crate::config::Config;
use crate::deliver::SinkReport;
use driftwatch_plugin_sdk::ScanReport;

/// What delivery left undone: each failing sink's name and why, and every streaming
/// sink's counters after the flush.
pub struct Delivered {
    /// Sinks that failed to deliver, with why and what to do.
    pub errors: Vec<(String, String)>,
    /// Each streaming sink's counters after the flush.
    pub sinks: Vec<SinkReport>,
}

/// Delivers `report` to `sinks`; `in_force` is the number of exceptions and break-glass
/// overrides the scan-completed event reports.
pub async fn deliver(
    report: &ScanReport,
    sinks: Vec<SinkSetup>,
    config: &Config,
    in_force: usize,
) -> Delivered {
    let mut sink_errors = Vec::new();
    let mut streams = Vec::new();
    for s in sinks {
        match s {
            SinkSetup::Report(file) => {
                if let Err(e) = file.write(report) {
                    tracing::error!(sink = file.name(), error = %e, "sink failed");
                    sink_errors.push((file.name().to_string(), e));
                }
            }
            SinkSetup::Stream(c) => streams.push(c),
        }
    }
    let mut sink_reports = Vec::new();
    if !streams.is_empty() {
        let flush: Vec<_> = streams
            .iter()
            .map(|c| (c.sink.name().to_string(), c.policy.flush_timeout))
            .collect();
        let spool_root = config.spool_root();
        match crate::deliver::Delivery::start(streams, &spool_root) {
            Ok(delivery) => {
                let scan_id = crate::deliver::events::new_scan_id();
                if let Err(e) = delivery
                    .publish(crate::deliver::events::scan_events(
                        report, &scan_id, in_force,
                    ))
                    .await
                {
                    sink_errors.extend(e.by_sink());
                }
                sink_reports = delivery.finish().await;
            }
            Err(e) => sink_errors.push(("spool".into(), e.to_string())),
        }
        for r in &sink_reports {
            let spool = spool_root.join(crate::deliver::spool_folder(&r.name));
            if let crate::deliver::Health::Disabled { reason } = &r.health {
                sink_errors.push((
                    r.name.clone(),
                    format!(
                        "disabled by its receiver ({reason}); {} events wait in {}: delete {} to send them again",
                        r.spooled,
                        spool.display(),
                        spool.join("DISABLED").display()
                    ),
                ));
            } else if r.spooled > 0 {
                let t = flush
                    .iter()
                    .find(|(n, _)| *n == r.name)
                    .map(|f| f.1)
                    .unwrap_or_default();
                let last = match &r.health {
                    crate::deliver::Health::Retrying { error } => format!(" (last error: {error})"),
                    _ => String::new(),
                };
                sink_errors.push((
                    r.name.clone(),
                    format!(
                        "{} events not delivered within flush_timeout {}{last}; they are kept in {} and sent on the next run",
                        r.spooled,
                        humantime::format_duration(t),
                        spool.display()
                    ),
                ));
            }
            if r.dropped > 0 {
                sink_errors.push((
                    r.name.clone(),
                    format!(
                        "{} events were rejected or could not be spooled; rejected batches are kept in {}",
                        r.dropped,
                        spool.join("rejected").display()
                    ),
                ));
            }
        }
    }
    Delivered {
        errors: sink_errors,
        sinks: sink_reports,
    }
}
