//! Governance end to end through the binary, on the quickstart estate: every status path,
//! one policy catching SSH open to the world on AWS, Azure and GCP, exceptions that are
//! valid and expired, break-glass that is active and expired, the CI gate, `policy test`,
//! and each kind of audit-log tampering detected.

use crate::common;

use common::{bin, copy_dir, repo, run};
use serde_json::Value;
use std::path::Path;

/// The quickstart in a temporary folder, loading the repository's policy library.
fn quickstart() -> tempfile::TempDir {
    common::quickstart("")
}

fn scan(dir: &Path, extra: &[&str]) -> (i32, Value) {
    let (code, stdout, stderr) = run(bin(dir)
        .args(["scan", "-q", "-f", "json", "-c", "driftwatch.toml"])
        .args(extra));
    assert!(code == 0 || code == 2, "scan failed ({code}): {stderr}");
    (code, serde_json::from_str(&stdout).unwrap())
}

fn by_id<'a>(doc: &'a Value, id_suffix: &str) -> &'a Value {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["resource"]["id"].as_str().unwrap().ends_with(id_suffix))
        .unwrap_or_else(|| panic!("no finding for {id_suffix}"))
}

#[test]
fn every_finding_is_classified() {
    let dir = quickstart();
    let (code, doc) = scan(dir.path(), &[]);
    assert_eq!(code, 2);
    // One rule, three clouds: the network.ingress facet has one shape everywhere.
    for id in [
        "sg-0b4571095c1e2d3f4",
        "networkSecurityGroups/nsg-prod-web",
        "firewalls/prod-allow-ssh-debug",
    ] {
        let f = by_id(&doc, id);
        assert_eq!(f["status"], "violation", "{id}");
        assert_eq!(f["risk"], "critical", "{id}");
        assert!(
            f["policies"][0].as_str().unwrap().starts_with(
                "driftwatch.network.deny_management_port_open_to_world: SSH (port 22)"
            ),
            "{id}: {}",
            f["policies"]
        );
    }
    assert_eq!(
        by_id(&doc, "prod-app")["status"],
        "violation",
        "admin access granted"
    );
    assert_eq!(
        by_id(&doc, "acme-marketing-site-assets")["status"],
        "violation"
    );
    // A valid exception allows; an expired one does not, and says so.
    let allowed = by_id(&doc, "acme-prod-backups");
    assert_eq!(allowed["status"], "allowed");
    assert_eq!(
        allowed["policies"][0],
        "exception:exceptions.toml#backups-data-class"
    );
    let expired = by_id(&doc, "acme-old-build-artifacts");
    assert_eq!(expired["status"], "review");
    assert!(expired["notes"][0]
        .as_str()
        .unwrap()
        .contains("legacy-artifacts expired at 2025-06-30T00:00:00Z"));
    // Nothing decided: review. Tag noise is low risk.
    let vpc = by_id(&doc, "vpc-0a1b2c3d4e5f60718");
    assert_eq!(
        (vpc["status"].as_str(), vpc["risk"].as_str()),
        (Some("review"), Some("low"))
    );
    let s = &doc["summary"];
    assert_eq!(
        s["statuses"],
        serde_json::json!({"allowed": 1, "violation": 6, "review": 6})
    );
    assert_eq!(
        s["risks"],
        serde_json::json!({"low": 2, "medium": 4, "high": 3, "critical": 4})
    );
    assert!(s["unowned"].as_u64().unwrap() > 0);
}

#[test]
fn break_glass_allows_until_it_expires_then_reopens_for_review() {
    let dir = quickstart();
    let (code, out, err) = run(bin(dir.path()).args([
        "break-glass",
        "--resource",
        "aws_instance.i-0123456789abcdef0",
        "--reason",
        "incident 4711: scaled up by hand",
        "--ttl",
        "4h",
        "--by",
        "oncall",
    ]));
    assert_eq!(code, 0, "{err}");
    let id = out.split(':').next().unwrap().to_string();
    assert!(id.starts_with("bg-"), "{out}");
    // An override that already ran out, as a past incident left it.
    let file = dir.path().join("out/breakglass.jsonl");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(
        r#"{"id":"bg-old","resource":"aws_vpc.vpc-*","reason":"incident 4690","by":"oncall","created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T04:00:00Z"}"#,
    );
    text.push('\n');
    std::fs::write(&file, text).unwrap();

    let (_, doc) = scan(dir.path(), &[]);
    let instance = by_id(&doc, "i-0123456789abcdef0");
    assert_eq!(instance["status"], "allowed");
    assert_eq!(instance["policies"][0], format!("break-glass:{id}"));
    let vpc = by_id(&doc, "vpc-0a1b2c3d4e5f60718");
    assert_eq!(vpc["status"], "review");
    assert_eq!(vpc["review_due"], true);
    assert!(vpc["notes"][0].as_str().unwrap().contains("bg-old"));

    let (code, out, _) = run(bin(dir.path()).args(["review", "list"]));
    assert_eq!(code, 0);
    assert!(out.contains("bg-old") && !out.contains(&id), "{out}");
    assert!(out.contains("1 break-glass override(s) due"), "{out}");

    let (code, _, err) = run(bin(dir.path()).args([
        "break-glass",
        "--resource",
        "x",
        "--reason",
        "r",
        "--ttl",
        "soon",
        "--by",
        "me",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("--ttl: `soon` is not a duration"), "{err}");
}

#[test]
fn fail_on_is_the_ci_gate() {
    let dir = quickstart();
    assert_eq!(scan(dir.path(), &["--fail-on", "violation"]).0, 2);
    assert_eq!(scan(dir.path(), &["--fail-on", "high"]).0, 2);
    // Without policies nothing is a violation; with everything excepted nothing fails.
    let cfg = dir.path().join("driftwatch.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let no_policies = text.replace("policies = [", "policies_off = [");
    let no_policies: String = no_policies
        .lines()
        .filter(|l| !l.starts_with("policies_off"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&cfg, &no_policies).unwrap();
    assert_eq!(scan(dir.path(), &["--fail-on", "violation"]).0, 0);
    assert_eq!(scan(dir.path(), &["--fail-on", "any"]).0, 2);
    std::fs::write(
        dir.path().join("exceptions.toml"),
        "[[exception]]\nid = \"*\"\nowner = \"sec\"\nreason = \"demo\"\napproved_by = \"ciso\"\nexpires_at = \"2099-01-01T00:00:00Z\"\n",
    )
    .unwrap();
    assert_eq!(scan(dir.path(), &["--fail-on", "any"]).0, 0);
    // An exception without an expiry is refused with the file and the entry.
    std::fs::write(
        dir.path().join("exceptions.toml"),
        "[[exception]]\nid = \"*\"\nowner = \"sec\"\nreason = \"demo\"\napproved_by = \"ciso\"\n",
    )
    .unwrap();
    let (code, _, err) = run(bin(dir.path()).args(["validate", "-c", "driftwatch.toml"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("exceptions.toml") && err.contains("expires_at"),
        "{err}"
    );
}

#[test]
fn policy_test_runs_the_library_and_fails_a_broken_test() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(bin(dir.path())
        .arg("policy")
        .arg("test")
        .arg(repo().join("policies")));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    copy_dir(&repo().join("policies"), &dir.path().join("p"));
    let t = dir.path().join("p/network_test.rego");
    let text =
        std::fs::read_to_string(&t)
            .unwrap()
            .replacen("== 1 with input", "== 0 with input", 1);
    std::fs::write(&t, text).unwrap();
    let (code, out, _) = run(bin(dir.path()).args(["policy", "test", "p"]));
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL data.driftwatch.network_test.test_ssh_open_to_world_on_aws"),
        "{out}"
    );
    std::fs::write(
        dir.path().join("p/broken.rego"),
        "package broken\n\ndeny contains msg if {\n",
    )
    .unwrap();
    let (code, _, err) = run(bin(dir.path()).args(["policy", "test", "p"]));
    assert_eq!(code, 1);
    assert!(err.contains("broken.rego"), "{err}");
}

/// The quickstart with one more policy folder holding `name` = `text`.
fn with_policy(name: &str, text: &str) -> tempfile::TempDir {
    let dir = quickstart();
    std::fs::create_dir(dir.path().join("extra")).unwrap();
    std::fs::write(dir.path().join("extra").join(name), text).unwrap();
    let cfg = dir.path().join("driftwatch.toml");
    let t = std::fs::read_to_string(&cfg).unwrap().replacen(
        "policies = [",
        "policies = [\"extra\", ",
        1,
    );
    std::fs::write(&cfg, t).unwrap();
    dir
}

#[test]
fn recursive_policies_are_refused_not_aborted() {
    for (what, text) in [
        (
            "direct",
            "package r\nf(x) := y if { y := f(x) }\ndeny contains \"m\" if { f(1) }\n",
        ),
        (
            "mutual",
            "package r\nf(x) := y if { y := g(x) }\ng(x) := y if { y := f(x) }\n\
             deny contains \"m\" if { f(1) }\n",
        ),
        (
            "bounded",
            "package r\nf(n) := 0 if { n <= 0 }\nf(n) := y if { n > 0; y := f(n - 1) + 1 }\n\
             deny contains \"m\" if { f(100000) > 0 }\n",
        ),
    ] {
        let dir = with_policy("r.rego", text);
        for cmd in ["validate", "scan"] {
            let (code, out, err) = run(bin(dir.path()).args([cmd, "-c", "driftwatch.toml"]));
            assert_eq!(code, 1, "{what} {cmd}: {out}{err}");
            assert!(out.is_empty(), "{what} {cmd}: {out}");
            assert!(
                err.contains("r.rego:2: function `r.f` calls itself"),
                "{what} {cmd}: {err}"
            );
        }
        let (code, _, err) = run(bin(dir.path()).args(["policy", "test", "extra"]));
        assert_eq!(code, 1, "{what}");
        assert!(err.contains("calls itself"), "{what}: {err}");
    }
}

#[test]
fn a_policy_that_fails_at_scan_time_stops_the_scan_with_its_file() {
    // Rule recursion is found by the engine when it evaluates: an error, not an abort.
    let dir = with_policy(
        "r.rego",
        "package r\nx if { y }\ny if { x }\ndeny contains \"m\" if { x }\n",
    );
    let (code, out, err) = run(bin(dir.path()).args(["scan", "-q", "-c", "driftwatch.toml"]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("evaluating data.r"), "{err}");
    assert!(err.contains("r.rego"), "{err}");
    assert!(err.contains("recursion"), "{err}");
}

#[test]
fn audit_tampering_is_detected() {
    let dir = quickstart();
    scan(dir.path(), &[]);
    scan(dir.path(), &[]);
    let log = dir.path().join("out/audit.jsonl");
    let verify = || run(bin(dir.path()).args(["audit", "verify"]));
    let (code, out, err) = verify();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("intact, 26 record(s)"), "{out}");
    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "edited",
            original.replacen("\"status\":\"violation\"", "\"status\":\"allowed\"", 1),
            "was edited",
        ),
        (
            "deleted",
            lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 5)
                .map(|(_, l)| format!("{l}\n"))
                .collect(),
            "deleted, inserted or reordered",
        ),
        (
            "reordered",
            {
                let mut v = lines.clone();
                v.swap(3, 4);
                v.iter().map(|l| format!("{l}\n")).collect()
            },
            "deleted, inserted or reordered",
        ),
        (
            "truncated",
            lines[..lines.len() - 2]
                .iter()
                .map(|l| format!("{l}\n"))
                .collect(),
            "removed from the end",
        ),
    ];
    for (what, text, needle) in cases {
        std::fs::write(&log, text).unwrap();
        let (code, _, err) = verify();
        assert_eq!(code, 1, "{what} went unnoticed");
        assert!(err.contains(needle), "{what}: {err}");
    }
    std::fs::write(&log, &original).unwrap();
    assert_eq!(verify().0, 0, "the original verifies again");
}

/// A scan that cannot append to the audit log: exit 1 naming the log, the full report on
/// stdout all the same.
fn scan_without_audit(dir: &Path) -> (Value, String) {
    let (code, stdout, stderr) =
        run(bin(dir).args(["scan", "-q", "-f", "json", "-c", "driftwatch.toml"]));
    assert_eq!(code, 1, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("the report is printed");
    assert_eq!(doc["findings"].as_array().unwrap().len(), 13);
    assert!(
        stderr.contains("error: audit log ") && stderr.contains("audit.jsonl"),
        "{stderr}"
    );
    (doc, stderr)
}

#[test]
fn a_scan_does_not_launder_a_tampered_audit_log() {
    let dir = quickstart();
    scan(dir.path(), &[]);
    scan(dir.path(), &[]);
    let log = dir.path().join("out/audit.jsonl");
    let cp = dir.path().join("out/audit.jsonl.checkpoint");
    let verify = || run(bin(dir.path()).args(["audit", "verify"])).0;
    let original = std::fs::read_to_string(&log).unwrap();
    let checkpoint = std::fs::read_to_string(&cp).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let mut forged: serde_json::Map<String, Value> =
        serde_json::from_str(lines[lines.len() - 1]).unwrap();
    // Same length, so only the hash can tell.
    let at = forged["at"].as_str().unwrap().replacen("20", "19", 1);
    forged.insert("at".into(), at.into());
    forged.remove("hash");
    let hash = hex_sha256(&driftwatch_core::govern::audit::canonical(&Value::Object(
        forged.clone(),
    )));
    forged.insert("hash".into(), hash.into());
    let mut forged_log: String = lines[..lines.len() - 1]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    forged_log.push_str(&driftwatch_core::govern::audit::canonical(&Value::Object(
        forged,
    )));
    forged_log.push('\n');
    let cut: String = lines[..lines.len() - 3]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    // A decision appended after the checkpointed end that continues the chain: anyone can
    // compute the hashes, only the checkpoint can tell it was not driftwatch's append.
    let last: serde_json::Map<String, Value> =
        serde_json::from_str(lines[lines.len() - 1]).unwrap();
    let mut appended = last.clone();
    appended.insert("seq".into(), (last["seq"].as_u64().unwrap() + 1).into());
    appended.insert("prev".into(), last["hash"].clone());
    appended.insert("status".into(), "allowed".into());
    appended.remove("hash");
    let hash = hex_sha256(&driftwatch_core::govern::audit::canonical(&Value::Object(
        appended.clone(),
    )));
    appended.insert("hash".into(), hash.into());
    let appended_log = format!(
        "{original}{}\n",
        driftwatch_core::govern::audit::canonical(&Value::Object(appended))
    );
    let cases: Vec<(&str, String, Option<&str>, &str)> = vec![
        ("cut", cut, Some(&checkpoint), "removed from the end"),
        (
            "chained record appended",
            appended_log,
            Some(&checkpoint),
            "does not announce",
        ),
        (
            "forged last record",
            forged_log,
            Some(&checkpoint),
            "does not match the checkpoint",
        ),
        ("checkpoint deleted", original.clone(), None, "is missing"),
        (
            "checkpoint garbage",
            original.clone(),
            Some("{\"seq\":"),
            "not a valid checkpoint",
        ),
    ];
    for (what, text, cp_text, needle) in cases {
        std::fs::write(&log, &text).unwrap();
        match cp_text {
            Some(c) => std::fs::write(&cp, c).unwrap(),
            None => std::fs::remove_file(&cp).unwrap(),
        }
        assert_eq!(verify(), 1, "{what} went unnoticed");
        let (_, err) = scan_without_audit(dir.path());
        assert!(
            err.contains("refusing to append") && err.contains(needle),
            "{what}: {err}"
        );
        assert!(err.contains("driftwatch audit verify"), "{what}: {err}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), text, "{what}");
        assert_eq!(verify(), 1, "{what} was laundered by the scan");
    }
    std::fs::write(&log, &original).unwrap();
    std::fs::write(&cp, &checkpoint).unwrap();
    scan(dir.path(), &[]);
    assert_eq!(verify(), 0);
}

fn hex_sha256(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_scan_whose_audit_log_cannot_be_written_still_reports() {
    let dir = quickstart();
    std::fs::create_dir_all(dir.path().join("out/audit.jsonl")).unwrap();
    scan_without_audit(dir.path());
}

#[test]
fn a_torn_audit_record_is_recovered_by_the_next_scan() {
    let dir = quickstart();
    scan(dir.path(), &[]);
    let log = dir.path().join("out/audit.jsonl");
    // What a full disk leaves: the start of a record, without its newline.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let torn = b"{\"at\":\"2026-";
    std::io::Write::write_all(&mut f, torn).unwrap();
    drop(f);
    assert_eq!(run(bin(dir.path()).args(["audit", "verify"])).0, 1);
    scan(dir.path(), &[]);
    let (code, out, err) = run(bin(dir.path()).args(["audit", "verify"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("intact, 27 record(s)"), "{out}");
    let text = std::fs::read_to_string(&log).unwrap();
    let recovered: Value = serde_json::from_str(text.lines().nth(13).unwrap()).unwrap();
    assert_eq!(recovered["event"], "audit.recovered");
    assert_eq!(recovered["discarded_bytes"], torn.len());
}

#[test]
fn concurrent_scans_extend_one_audit_chain() {
    let dir = quickstart();
    let children: Vec<_> = (0..4)
        .map(|_| {
            bin(dir.path())
                .args(["scan", "-q", "-f", "json", "-c", "driftwatch.toml"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (code, out, err) = run(bin(dir.path()).args(["audit", "verify"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("intact, 52 record(s)"), "{out}");
    let seqs: Vec<u64> = std::fs::read_to_string(dir.path().join("out/audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=52).collect::<Vec<_>>());
}
