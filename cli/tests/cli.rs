//! The `driftwatch` binary as a user runs it: exit codes, formats, and error messages.

use crate::common;

use common::{repo, run};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_driftwatch"));
    c.env_remove("DRIFTWATCH_LOG").env_remove("DRIFTWATCH_OUT");
    c
}

fn quickstart() -> PathBuf {
    repo().join("examples/quickstart/driftwatch.toml")
}

/// A copy of the quickstart in a temporary folder, so tests may edit it.
fn quickstart_copy() -> tempfile::TempDir {
    common::quickstart("")
}

#[test]
fn quickstart_json_exits_2_and_matches_the_schema() {
    let out = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(bin()
        .args(["scan", "--format", "json", "--config"])
        .arg(quickstart())
        .env("DRIFTWATCH_OUT", out.path()));
    assert_eq!(code, 2, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["schema"], "driftwatch.scan/v1");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("docs/scan-v1.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The file sink wrote the same document, atomically, where ${DRIFTWATCH_OUT} pointed.
    let written: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("last-scan.json")).unwrap()).unwrap();
    assert_eq!(written["findings"], doc["findings"]);
    // Secrets from the states never leave.
    for secret in [
        "correct-horse-battery-staple",
        "c2VjcmV0LWtleS1kby1ub3Qtc2hvdw",
    ] {
        assert!(!stdout.contains(secret));
    }
}

#[test]
fn quickstart_other_formats() {
    let tmp = tempfile::tempdir().unwrap();
    for (fmt, file) in [
        ("jsonl", "o.jsonl"),
        ("sarif", "o.sarif"),
        ("table", "o.txt"),
    ] {
        let target = tmp.path().join(file);
        let (code, stdout, stderr) = run(bin()
            .args(["scan", "--quiet", "--config"])
            .arg(quickstart())
            .arg("--output")
            .arg(&target)
            .env("DRIFTWATCH_OUT", tmp.path()));
        assert_eq!(code, 2, "{fmt}: {stderr}");
        assert!(stdout.is_empty(), "{fmt}: output went to stdout");
        let text = std::fs::read_to_string(&target).unwrap();
        match fmt {
            "jsonl" => {
                let lines: Vec<Value> = text
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                let last = lines.last().unwrap();
                assert_eq!(last["schema"], "driftwatch.summary/v1");
                let findings = &lines[..lines.len() - 1];
                assert_eq!(
                    findings.len() as u64,
                    last["summary"]["findings"]["total"].as_u64().unwrap()
                );
                assert!(findings
                    .iter()
                    .all(|f| f["schema"] == "driftwatch.finding/v1" && f["id"].is_string()));
            }
            "sarif" => {
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["version"], "2.1.0");
                let results = v["runs"][0]["results"].as_array().unwrap();
                assert!(!results.is_empty());
                for r in results {
                    assert!(r["ruleId"].as_str().unwrap().starts_with("driftwatch/"));
                    assert!(r["partialFingerprints"]["driftwatchFindingId/v1"].is_string());
                    assert!(
                        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                            .is_string()
                    );
                }
            }
            _ => {
                assert!(text.contains("KIND"), "{text}");
                assert!(text.contains("finding(s):"), "{text}");
            }
        }
    }
}

#[test]
fn in_sync_estate_exits_0() {
    // The quickstart with every drift left out by an ignore-everything file.
    let dir = quickstart_copy();
    std::fs::write(dir.path().join(".driftignore"), "*\n").unwrap();
    let (code, stdout, stderr) = run(bin()
        .args(["scan", "--format", "json", "--config"])
        .arg(dir.path().join("driftwatch.toml")));
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["summary"]["in_sync"], true);
    assert!(doc["summary"]["resources"]["ignored"].as_u64().unwrap() > 0);
}

#[test]
fn validate_reports_every_problem_with_its_line() {
    let dir = quickstart_copy();
    let cfg = dir.path().join("driftwatch.toml");
    std::fs::write(
        &cfg,
        concat!(
            "[iac]\n",
            "states = [\"nowhere/*.tfstate\", \"oss://b/k.tfstate\", \"s3://bucket\"]\n",
            "\n[iac.s3]\nregion = \"eu-west-1\"\n",
            "\n[[providers]]\nkind = \"inventory\"\nformat = \"aws-config\"\npaths = [\"a.json\"]\nbogus = 1\n",
            "\n[[providers]]\nkind = \"nope\"\n",
            "\n[[sinks]]\nkind = \"file\"\nformat = \"xml\"\npath = \"o.json\"\n",
            "\n[[providers]]\nkind = \"aws\"\nrate_limit = 0\n",
        ),
    )
    .unwrap();
    let (code, _, stderr) = run(bin().args(["validate", "--config"]).arg(&cfg));
    assert_eq!(code, 1);
    for needle in [
        "driftwatch.toml:2: `iac.states[0]`: no state file matches",
        "driftwatch.toml:2: `iac.states[1]`: state location `oss://b/k.tfstate`: the `oss://` backend is not available in this build (available: `s3://`, `azurerm://`, `gcs://`)",
        "driftwatch.toml:2: `iac.states[2]`: state location `s3://bucket`: expected `s3://bucket/key.tfstate`",
        "driftwatch.toml:11: `providers[0].bogus`",
        "driftwatch.toml:14: `providers[1].kind`: unknown provider kind `nope`",
        "driftwatch.toml:18: `sinks[0].format`",
        "driftwatch.toml:23: `providers[2].rate_limit`: must be at least 1",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    // `scan` refuses the same config the same way, before doing anything.
    let (code, stdout, stderr2) = run(bin().args(["scan", "--config"]).arg(&cfg));
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert_eq!(stderr, stderr2);

    // A mistake in `[iac.s3]` names its key and line.
    std::fs::write(&cfg, "[iac]\nstates = [\"s3://b/k.tfstate\"]\n\n[iac.s3]\nbogus = 1\n\n[[providers]]\nkind = \"aws\"\n").unwrap();
    let (code, _, stderr) = run(bin().args(["validate", "--config"]).arg(&cfg));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("driftwatch.toml:5: `iac.s3.bogus`: unknown field `bogus`"),
        "{stderr}"
    );
}

#[test]
fn validate_accepts_the_quickstart() {
    let (code, stdout, stderr) = run(bin().args(["validate", "--config"]).arg(quickstart()));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("ok (4 state file(s), 3 provider(s), 1 sink(s), 1 ignore rule(s))"),
        "{stdout}"
    );
}

#[test]
fn malformed_inputs_exit_1_with_the_file_named() {
    let dir = quickstart_copy();
    let cfg = dir.path().join("driftwatch.toml");
    // A truncated state.
    let state = dir.path().join("states/aws/app.tfstate");
    let text = std::fs::read_to_string(&state).unwrap();
    std::fs::write(&state, &text[..text.len() / 2]).unwrap();
    let (code, stdout, stderr) = run(bin().args(["scan", "--config"]).arg(&cfg));
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("app.tfstate: the file ends early"),
        "{stderr}"
    );
    std::fs::write(&state, text).unwrap();
    // A broken export: the provider fails, the scan is partial, exit 1, the others still report.
    std::fs::write(
        dir.path().join("inventory/gcp-assets.jsonl"),
        "{\"name\": \n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(bin()
        .args(["scan", "--format", "json", "--config"])
        .arg(&cfg));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("gcp-assets"), "{stderr}");
    assert!(stderr.contains("gcp-assets.jsonl"), "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["summary"]["partial"], true);
    let findings = doc["findings"].as_array().unwrap();
    assert!(findings.iter().any(|f| f["resource"]["provider"] == "aws"));
    // Nothing of GCP is reported missing because its listing failed.
    assert!(!findings
        .iter()
        .any(|f| f["resource"]["provider"] == "gcp" && f["kind"] == "missing"));
    assert!(doc["summary"]["resources"]["not_judged"].as_u64().unwrap() > 0);
    // A config that is not TOML.
    std::fs::write(&cfg, "[iac\nstates = 1\n").unwrap();
    let (code, _, stderr) = run(bin().args(["scan", "--config"]).arg(&cfg));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("driftwatch.toml:1: not valid TOML"),
        "{stderr}"
    );
    // A config that does not exist.
    let (code, _, stderr) = run(bin().args(["scan", "--config", "/nonexistent/dw.toml"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/dw.toml"), "{stderr}");
}

#[test]
fn iac_list_prints_declared_resources() {
    let states = repo().join("examples/quickstart/states");
    let (code, stdout, stderr) = run(bin()
        .current_dir(&states)
        .args([
            "iac",
            "list",
            "--format",
            "json",
            "--state",
            "aws/*.tfstate",
            "--state",
        ])
        .arg(states.join("gcp/main.tfstate")));
    assert_eq!(code, 0, "{stderr}");
    let list: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    for item in &list {
        for key in ["provider", "type", "id", "address", "source"] {
            assert!(item[key].is_string(), "{key} in {item}");
        }
    }
    let sg = list
        .iter()
        .find(|i| i["address"] == "module.network.aws_subnet.private[\"a\"]")
        .expect("for_each instance listed with its key");
    assert_eq!(sg["id"], "subnet-0aa11bb22cc33dd44");
    assert_eq!(sg["source"], "aws/network.tfstate");
    assert!(list.iter().any(|i| i["provider"] == "gcp"));
    assert!(!stdout.contains("correct-horse-battery-staple"));
    let db = list
        .iter()
        .find(|i| i["type"] == "aws_db_instance")
        .unwrap();
    assert_eq!(db["masked"], serde_json::json!(["password"]));

    let (code, _, stderr) = run(bin().args(["iac", "list", "--state", "/nonexistent/*.tfstate"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("no state file matches"), "{stderr}");
}

/// Runs the binary with a deadline: a regression that hangs fails the test instead of
/// hanging the test run.
fn run_bounded(cmd: &mut Command) -> (i32, String, String) {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("driftwatch runs");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "driftwatch {:?} did not finish",
                cmd.get_args().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.code().expect("exited normally"),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

fn mkfifo(path: &std::path::Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

/// (what, the config line naming the file, that line naming a hostile file instead, whether
/// `validate` reads it)
type Case = (&'static str, &'static str, fn(&str) -> String, bool);

#[test]
fn fifos_and_devices_are_refused_not_read() {
    let cases: [Case; 5] = [
        (
            "driftignore",
            "driftignore = [\".driftignore\"]",
            |p| format!("driftignore = [{p:?}]"),
            true,
        ),
        (
            "exceptions",
            "exceptions = [\"exceptions.toml\"]",
            |p| format!("exceptions = [{p:?}]"),
            true,
        ),
        (
            "break-glass",
            "breakglass = \"${DRIFTWATCH_OUT:-out}/breakglass.jsonl\"",
            |p| format!("breakglass = {p:?}"),
            true,
        ),
        (
            "policy folder",
            "policies = [",
            |p| format!("policies = [{p:?}, "),
            true,
        ),
        (
            "inventory",
            "paths = [\"inventory/aws-config-snapshot.json\"]",
            |p| format!("paths = [{p:?}]"),
            // Exports are read by the scan only.
            false,
        ),
    ];
    for (what, line, replace, at_validate) in cases {
        for hostile in ["fifo", "/dev/zero"] {
            let dir = quickstart_copy();
            let target = if hostile == "fifo" {
                let p = dir.path().join("hostile");
                mkfifo(&p);
                p
            } else {
                PathBuf::from(hostile)
            };
            let named = if what == "policy folder" {
                // A file inside a policy folder.
                let folder = dir.path().join("extra");
                std::fs::create_dir(&folder).unwrap();
                if hostile == "fifo" {
                    mkfifo(&folder.join("p.rego"));
                } else {
                    std::os::unix::fs::symlink(&target, folder.join("p.rego")).unwrap();
                }
                folder
            } else {
                target
            };
            let cfg = dir.path().join("driftwatch.toml");
            let text = std::fs::read_to_string(&cfg).unwrap();
            assert!(text.contains(line), "{what}");
            std::fs::write(
                &cfg,
                text.replacen(line, &replace(&named.display().to_string()), 1),
            )
            .unwrap();
            let kind = if hostile == "fifo" {
                "is a FIFO, not a regular file"
            } else {
                "is a character device, not a regular file"
            };
            for cmd in ["validate", "scan"] {
                let (code, _, err) = run_bounded(
                    bin()
                        .args([cmd, "-c"])
                        .arg(&cfg)
                        .env("DRIFTWATCH_OUT", dir.path().join("out")),
                );
                if cmd == "validate" && !at_validate {
                    continue;
                }
                assert_eq!(code, 1, "{what} {hostile} {cmd}: {err}");
                assert!(err.contains(kind), "{what} {hostile} {cmd}: {err}");
            }
        }
    }
    // The config file itself.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("driftwatch.toml");
    mkfifo(&fifo);
    for (path, kind) in [
        (fifo.as_path(), "is a FIFO"),
        (std::path::Path::new("/dev/zero"), "is a character device"),
    ] {
        for cmd in ["validate", "scan"] {
            let (code, _, err) = run_bounded(bin().args([cmd, "-c"]).arg(path));
            assert_eq!(code, 1, "{cmd} {}: {err}", path.display());
            assert!(err.contains(kind), "{cmd}: {err}");
        }
    }
}

#[test]
fn values_from_input_are_escaped_and_cut_in_errors() {
    let hostile = format!("\u{1b}[31m\nerror: forged{}", "x".repeat(5_000_000));
    let check = |what: &str, err: &str| {
        assert!(err.len() < 4000, "{what}: {} bytes on stderr", err.len());
        assert!(!err.contains('\u{1b}'), "{what}: {err}");
        assert!(!err.contains("\nerror: forged"), "{what}: {err}");
        assert!(err.contains("\\u{1b}[31m\\nerror: forged"), "{what}: {err}");
        assert!(err.contains("(5000019 bytes)"), "{what}: {err}");
    };
    // A config value.
    let dir = quickstart_copy();
    let cfg = dir.path().join("driftwatch.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{text}\n[agent]\nlisten = {}\n",
            serde_json::to_string(&hostile).unwrap()
        ),
    )
    .unwrap();
    let (code, _, err) = run(bin().args(["validate", "-c"]).arg(&cfg));
    assert_eq!(code, 1);
    check("agent.listen", &err);
    // An exceptions file.
    let dir = quickstart_copy();
    let cfg = dir.path().join("driftwatch.toml");
    std::fs::write(
        dir.path().join("exceptions.toml"),
        format!(
            "[[exception]]\nid = \"x\"\nowner = \"o\"\nreason = \"r\"\napproved_by = \"a\"\n\
             expires_at = {}\n",
            serde_json::to_string(&hostile).unwrap()
        ),
    )
    .unwrap();
    let (code, _, err) = run(bin().args(["validate", "-c"]).arg(&cfg));
    assert_eq!(code, 1);
    check("expires_at", &err);
    // A driftignore line.
    let dir = quickstart_copy();
    let cfg = dir.path().join("driftwatch.toml");
    let line = hostile.replace('\n', "\r");
    std::fs::write(dir.path().join(".driftignore"), format!("a..{line}\n")).unwrap();
    let (code, _, err) = run(bin().args(["validate", "-c"]).arg(&cfg));
    assert_eq!(code, 1);
    assert!(err.len() < 4000, "driftignore: {} bytes", err.len());
    assert!(
        !err.contains('\u{1b}') && !err.contains('\r'),
        "driftignore: {err}"
    );
    assert!(
        err.contains("\\u{1b}[31m\\rerror: forged"),
        "driftignore: {err}"
    );
}
