//! Governance: every finding comes out with a risk, an owner when one is known, and a
//! status: `allowed` (a valid exception or an active break-glass), `violation` (a policy
//! denied it) or `review` (nothing decided). Every decision is appended to the audit log.

pub mod audit;
pub mod breakglass;
pub mod exceptions;
pub mod policy;
pub mod risk;

use crate::iac::Declared;
use driftwatch_plugin_sdk::report::{RiskCounts, StatusCounts};
use driftwatch_plugin_sdk::{Finding, FindingStatus, Resource, Risk};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// `[governance]`: how findings are classified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceSection {
    /// Rego files or folders (`policies/`), relative to the config file.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Accept Rego written before OPA 1.0 (rules without `if` / `contains`).
    #[serde(default)]
    pub rego_v0: bool,
    /// Exceptions files (TOML, `[[exception]]` entries).
    #[serde(default)]
    pub exceptions: Vec<String>,
    /// The break-glass record file.
    #[serde(default = "default_breakglass")]
    pub breakglass: String,
    /// The audit log; no log when absent.
    #[serde(default)]
    pub audit_log: Option<String>,
    /// Tag keys naming an owner, in order of preference.
    #[serde(default = "default_owner_tags")]
    pub owner_tags: Vec<String>,
    /// State file glob → owning team, for resources without an owner tag.
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
    /// Risk overrides, tried in order before the built-in rules.
    #[serde(default)]
    pub risk: Vec<risk::RiskOverride>,
}

fn default_breakglass() -> String {
    ".driftwatch/breakglass.jsonl".into()
}

fn default_owner_tags() -> Vec<String> {
    vec!["owner".into(), "team".into()]
}

impl Default for GovernanceSection {
    fn default() -> Self {
        GovernanceSection {
            policies: Vec::new(),
            rego_v0: false,
            exceptions: Vec::new(),
            breakglass: default_breakglass(),
            audit_log: None,
            owner_tags: default_owner_tags(),
            owners: BTreeMap::new(),
            risk: Vec::new(),
        }
    }
}

/// Why governance could not be set up or applied.
#[derive(Debug, thiserror::Error)]
pub enum GovernError {
    /// A policy is unreadable, does not parse, or failed at run time.
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    /// An exceptions file is invalid.
    #[error(transparent)]
    Exception(#[from] exceptions::ExceptionError),
    /// The break-glass file is invalid.
    #[error(transparent)]
    BreakGlass(#[from] breakglass::BreakGlassError),
    /// The audit log could not be written.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    /// A setting is invalid.
    #[error("{0}")]
    Setting(String),
}

/// Everything classification needs, loaded once per scan.
pub struct Governance {
    policies: Option<policy::PolicySet>,
    exceptions: Vec<exceptions::Exception>,
    breakglass: Vec<breakglass::BreakGlass>,
    owner_tags: Vec<String>,
    owners: Vec<(glob::Pattern, String)>,
    risk: Vec<risk::RiskOverride>,
    audit: Option<PathBuf>,
}

/// Counts for the scan summary.
#[derive(Debug, Default)]
pub struct Classified {
    /// By status.
    pub statuses: StatusCounts,
    /// By risk.
    pub risks: RiskCounts,
    /// Without an owner.
    pub unowned: usize,
    /// Why the decisions could not be appended to the audit log; the classification
    /// itself stands, so the scan still reports it.
    pub audit_error: Option<audit::AuditError>,
}

fn resolve(p: &str, base: &Path) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl Governance {
    /// Loads policies, exceptions and break-glass records named by the section.
    pub fn load(s: &GovernanceSection, base: &Path) -> Result<Governance, GovernError> {
        let policies = if s.policies.is_empty() {
            None
        } else {
            Some(policy::PolicySet::load(
                &policy::resolve(&s.policies, base),
                s.rego_v0,
            )?)
        };
        let files: Vec<PathBuf> = s.exceptions.iter().map(|e| resolve(e, base)).collect();
        let owners = s
            .owners
            .iter()
            .map(|(g, team)| {
                glob::Pattern::new(g)
                    .map(|p| (p, team.clone()))
                    .map_err(|e| GovernError::Setting(format!("governance.owners `{g}`: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Governance {
            policies,
            exceptions: exceptions::load(&files)?,
            breakglass: breakglass::load(&resolve(&s.breakglass, base))?,
            owner_tags: s.owner_tags.clone(),
            owners,
            risk: s.risk.clone(),
            audit: s.audit_log.as_ref().map(|a| resolve(a, base)),
        })
    }

    /// Reads the exception and break-glass records again, keeping the compiled policies:
    /// records are written during incidents and take effect at the next scan.
    pub fn reload_records(
        &mut self,
        s: &GovernanceSection,
        base: &Path,
    ) -> Result<(), GovernError> {
        let files: Vec<PathBuf> = s.exceptions.iter().map(|e| resolve(e, base)).collect();
        self.exceptions = exceptions::load(&files)?;
        self.breakglass = breakglass::load(&resolve(&s.breakglass, base))?;
        Ok(())
    }

    /// Exceptions not yet expired and break-glass overrides still active at `now`.
    pub fn in_force(&self, now: time::OffsetDateTime) -> usize {
        let rfc = &time::format_description::well_known::Rfc3339;
        self.exceptions
            .iter()
            .filter(|e| time::OffsetDateTime::parse(&e.expires_at, rfc).is_ok_and(|t| t > now))
            .count()
            + self.breakglass.iter().filter(|b| b.active(now)).count()
    }

    fn owner(&self, tags: &BTreeMap<String, String>, source: Option<&str>) -> Option<String> {
        for k in &self.owner_tags {
            if let Some(v) = tags.get(k).filter(|v| !v.is_empty()) {
                return Some(v.clone());
            }
        }
        let source = source?;
        self.owners
            .iter()
            .find(|(g, _)| g.matches(source))
            .map(|(_, t)| t.clone())
    }

    /// Classifies every finding in place and appends each decision to the audit log (a
    /// log that cannot be written is reported in [`Classified::audit_error`]).
    pub fn classify(
        &mut self,
        findings: &mut [Finding],
        declared: &[Declared],
        live: &[Resource],
        scan_started: &str,
    ) -> Result<Classified, GovernError> {
        let now = OffsetDateTime::now_utc();
        // Only the findings' own resources are looked up: one pass over each side.
        let wanted: HashMap<(&str, &str, &str), usize> = findings
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let k = &f.resource.key;
                ((k.provider.as_str(), k.r#type.as_str(), k.id.as_str()), i)
            })
            .collect();
        let mut decl: Vec<Option<&Declared>> = vec![None; findings.len()];
        let mut lv: Vec<Option<&Resource>> = vec![None; findings.len()];
        for d in declared {
            let k = (
                d.key.provider.as_str(),
                d.key.r#type.as_str(),
                d.key.id.as_str(),
            );
            if let Some(&i) = wanted.get(&k) {
                decl[i] = Some(d);
            }
        }
        for r in live {
            let k = (
                r.key.provider.as_str(),
                r.key.r#type.as_str(),
                r.key.id.as_str(),
            );
            if let Some(&i) = wanted.get(&k) {
                lv[i] = Some(r);
            }
        }
        let mut out = Classified::default();
        let mut records = Vec::new();
        for (i, f) in findings.iter_mut().enumerate() {
            let (d, l) = (decl[i], lv[i]);
            let mut tags = BTreeMap::new();
            if let Some(Value::Object(t)) = d.and_then(|d| d.attributes.get("tags")) {
                for (k, v) in t {
                    if let Some(v) = v.as_str() {
                        tags.insert(k.clone(), v.to_string());
                    }
                }
            }
            if let Some(l) = l {
                tags.extend(l.tags.clone());
            }
            f.owner = self.owner(&tags, f.resource.source.as_deref());
            let (risk, risk_rule) = risk::rate(f, &self.risk, l.map(|l| &l.attributes));
            f.risk = risk;
            let mut decided: Vec<String> = Vec::new();
            let mut status = FindingStatus::Review;
            if let Some(p) = self.policies.as_mut() {
                let input = json!({
                    "id": f.id,
                    "kind": f.kind,
                    "resource": f.resource,
                    "changes": f.changes,
                    "risk": f.risk,
                    "owner": f.owner,
                    "facets": f.facets,
                    "tags": tags,
                    "declared": d.map(|d| Value::Object(d.attributes.clone())),
                    "live": l.map(|l| Value::Object(l.attributes.clone())),
                });
                let decision = p.decide(&input)?;
                f.notes.extend(decision.warnings);
                if !decision.denied.is_empty() {
                    status = FindingStatus::Violation;
                    decided.extend(decision.denied);
                } else if !decision.exempted.is_empty() {
                    status = FindingStatus::Allowed;
                    decided.extend(decision.exempted.iter().map(|r| format!("exempted:{r}")));
                }
            }
            match exceptions::judge(&self.exceptions, f, now) {
                exceptions::Verdict::Covered(e) => {
                    status = FindingStatus::Allowed;
                    decided.push(e.label().to_string());
                }
                exceptions::Verdict::Expired(e) => f.notes.push(format!(
                    "{} expired at {} (owner {}, ticket {})",
                    e.label(),
                    e.expires_at,
                    e.owner,
                    e.ticket.as_deref().unwrap_or("none")
                )),
                exceptions::Verdict::None => {}
            }
            if status != FindingStatus::Allowed {
                let mut covering = self.breakglass.iter().filter(|b| b.covers(f));
                if let Some(b) = covering.clone().find(|b| b.active(now)) {
                    status = FindingStatus::Allowed;
                    decided.push(format!("break-glass:{}", b.id));
                } else if let Some(b) = covering.next() {
                    if status == FindingStatus::Review {
                        f.review_due = true;
                    }
                    f.notes.push(format!(
                        "break-glass {} by {} expired at {}: due a post-incident review ({})",
                        b.id, b.by, b.expires_at, b.reason
                    ));
                }
            }
            decided.push(risk_rule);
            f.status = status;
            f.policies = decided;
            match f.status {
                FindingStatus::Allowed => out.statuses.allowed += 1,
                FindingStatus::Violation => out.statuses.violation += 1,
                FindingStatus::Review => out.statuses.review += 1,
            }
            match f.risk {
                Risk::Low => out.risks.low += 1,
                Risk::Medium => out.risks.medium += 1,
                Risk::High => out.risks.high += 1,
                Risk::Critical => out.risks.critical += 1,
            }
            if f.owner.is_none() {
                out.unowned += 1;
            }
            if self.audit.is_some() {
                let mut r = Map::new();
                r.insert("at".into(), json!(crate::clock::now_rfc3339()));
                r.insert("scan".into(), json!(scan_started));
                r.insert("finding".into(), json!(f.id));
                r.insert(
                    "resource".into(),
                    json!(format!(
                        "{}/{}/{}",
                        f.resource.key.provider, f.resource.key.r#type, f.resource.key.id
                    )),
                );
                r.insert("kind".into(), json!(f.kind));
                r.insert("status".into(), json!(f.status));
                r.insert("risk".into(), json!(f.risk));
                r.insert("decided_by".into(), json!(f.policies));
                records.push(r);
            }
        }
        if let Some(path) = &self.audit {
            out.audit_error = audit::AuditLog::open(path)
                .and_then(|mut log| log.append(records))
                .err();
        }
        Ok(out)
    }
}
