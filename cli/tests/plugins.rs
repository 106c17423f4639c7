//! Provider plugins through the `driftwatch` binary: a plugin written in C, the built-in
//! inventory provider built as a plugin, and every way a plugin can be broken. Each broken
//! plugin must end in a clear error while driftwatch itself keeps running.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_driftwatch"));
    c.env_remove("DRIFTWATCH_LOG")
        .env_remove("DRIFTWATCH_PLUGIN_HOST")
        .env_remove("DW_PANICKY_SPARE");
    c
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("driftwatch runs");
    (
        out.status
            .code()
            .expect("driftwatch itself never dies of a signal"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A plugin cdylib of this workspace. the cli crate depends on the plugin crates for its
/// tests, so cargo builds their cdylibs into the `deps/` folder beside this executable.
fn workspace_plugin(lib: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let p = exe.parent().unwrap().join(format!("lib{lib}.so"));
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// Compiles `tests/plugins/c/hello.c` with the system C compiler and extra defines.
fn c_plugin(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let out = dir.join(format!("lib{name}.so"));
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args([
            "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-O1", "-I",
        ])
        .arg(repo().join("plugin-sdk/include"))
        .args(defines)
        .arg("-o")
        .arg(&out)
        .arg(repo().join("cli/tests/plugins/c/hello.c"))
        .status()
        .expect("a C compiler (`cc`) is installed");
    assert!(status.success(), "cc failed for {name}");
    out
}

/// A state declaring hello items 1..=3 (item-2 with another size) and item-9; the C
/// plugin reports items 1..=4 with `size` equal to their number.
fn write_state(dir: &Path) {
    let inst = |i: i64, size: i64| {
        json!({"index_key": i, "schema_version": 0,
               "attributes": {"id": format!("item-{i}"), "size": size}})
    };
    let state = json!({"version": 4, "terraform_version": "1.9.0", "serial": 1, "lineage": "x",
        "outputs": {}, "resources": [{"mode": "managed", "type": "hello_item", "name": "it",
        "provider": "provider[\"registry.terraform.io/acme/hello\"]",
        "instances": [inst(1, 1), inst(2, 7), inst(3, 3), inst(9, 9)]}]});
    std::fs::write(dir.join("hello.tfstate"), state.to_string()).unwrap();
}

/// A config with one plugin per (name, path, mode) and a provider of each.
fn write_config(dir: &Path, plugins: &[(&str, &Path, &str)], extra: &str) -> PathBuf {
    let mut text = String::from("[iac]\nstates = [\"hello.tfstate\"]\n\n");
    for (name, path, mode) in plugins {
        text.push_str(&format!(
            "[[plugins]]\nname = \"{name}\"\npath = \"{}\"\nmode = \"{mode}\"\ntimeout_secs = 3\n{extra}\n\n[[providers]]\nkind = \"{name}\"\ncount = 4\n\n",
            path.display()
        ));
    }
    let cfg = dir.join("driftwatch.toml");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn findings(stdout: &str) -> Vec<(String, String, Vec<String>)> {
    let doc: Value = serde_json::from_str(stdout).expect("a JSON report");
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["resource"]["id"].as_str().unwrap().to_string(),
                f["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["path"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn a_plugin_written_in_c_scans_in_process_and_isolated_alike() {
    let dir = tempfile::tempdir().unwrap();
    let lib = c_plugin(dir.path(), "hello", &[]);
    write_state(dir.path());
    let expected = vec![
        (
            "changed".to_string(),
            "item-2".to_string(),
            vec!["size".to_string()],
        ),
        ("missing".into(), "item-9".into(), vec![]),
        ("unmanaged".into(), "item-4".into(), vec![]),
    ];
    for mode in ["in-process", "isolated"] {
        let cfg = write_config(dir.path(), &[("c-hello", &lib, mode)], "");
        let (code, stdout, stderr) = run(bin().args(["scan", "-f", "json", "-c"]).arg(&cfg));
        assert_eq!(code, 2, "{mode}: {stderr}");
        assert_eq!(findings(&stdout), expected, "{mode}");
    }
    let (code, stdout, _) = run(bin().args(["plugins", "inspect"]).arg(&lib));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("c-hello") && stdout.contains("abi             1.0"),
        "{stdout}"
    );
    assert!(stdout.contains("hello_item"), "{stdout}");
}

#[test]
fn the_inventory_plugin_build_matches_the_linked_provider() {
    let lib = workspace_plugin("driftwatch_plugin_inventory");
    let quick = repo().join("examples/quickstart");
    let dir = tempfile::tempdir().unwrap();
    let scan = |kind: &str, plugin: Option<&str>| {
        let mut text = format!(
            "[iac]\nstates = [\"{}/states/**/*.tfstate\"]\n[scan]\ndriftignore = [\"{}/.driftignore\"]\n",
            quick.display(),
            quick.display()
        );
        if let Some(mode) = plugin {
            text.push_str(&format!(
                "[[plugins]]\nname = \"{kind}\"\npath = \"{}\"\nmode = \"{mode}\"\n",
                lib.display()
            ));
        }
        for (format, file) in [
            ("aws-config", "aws-config-snapshot.json"),
            ("azure-resource-graph", "azure-resource-graph.json"),
            ("gcp-asset-inventory", "gcp-assets.jsonl"),
        ] {
            text.push_str(&format!(
                "[[providers]]\nkind = \"{kind}\"\nname = \"{format}\"\nformat = \"{format}\"\npaths = [\"{}/inventory/{file}\"]\n",
                quick.display()
            ));
        }
        let cfg = dir
            .path()
            .join(format!("{}.toml", plugin.unwrap_or("linked")));
        std::fs::write(&cfg, text).unwrap();
        let (code, stdout, stderr) = run(bin().args(["scan", "-f", "json", "-c"]).arg(&cfg));
        assert_eq!(code, 2, "{stderr}");
        let mut doc: Value = serde_json::from_str(&stdout).unwrap();
        for f in doc["findings"].as_array_mut().unwrap() {
            f.as_object_mut().unwrap().remove("first_seen");
            f.as_object_mut().unwrap().remove("last_seen");
        }
        (doc["findings"].clone(), doc["summary"]["resources"].clone())
    };
    let linked = scan("inventory", None);
    assert_eq!(linked.0.as_array().unwrap().len(), 13);
    assert_eq!(scan("inventory-plugin", Some("in-process")), linked);
    assert_eq!(scan("inventory-plugin", Some("isolated")), linked);
}

#[test]
fn unusable_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path());
    let text_file = dir.path().join("notes.so");
    std::fs::write(&text_file, "not a library\n").unwrap();
    let no_entry = c_plugin(dir.path(), "noentry", &["-DDW_NO_ENTRY"]);
    let bad_magic = c_plugin(dir.path(), "magic", &["-DDW_BAD_MAGIC"]);
    let abi2 = c_plugin(dir.path(), "abi2", &["-DDW_ABI_MAJOR_OVERRIDE=2"]);
    let panicky = workspace_plugin("driftwatch_test_plugin_panicky");
    let cases: [(&Path, &str); 5] = [
        (&text_file, "is not a loadable plugin library"),
        (&no_entry, "exports no `driftwatch_plugin_v1`"),
        (&bad_magic, "wrong magic number 0xdeadbeef"),
        (
            &abi2,
            "was built for plugin ABI 2.0; this driftwatch speaks ABI 1.0",
        ),
        (&panicky, "panicked in info: panicky: info"),
    ];
    for (lib, needle) in cases {
        for mode in ["in-process", "isolated"] {
            let cfg = write_config(dir.path(), &[("p", lib, mode)], "");
            let (code, stdout, stderr) = run(bin().args(["validate", "-c"]).arg(&cfg));
            assert_eq!(code, 1, "{mode} {}", lib.display());
            assert!(stdout.is_empty());
            assert!(stderr.contains("`plugins[0].path`"), "{stderr}");
            assert!(
                stderr.contains(needle),
                "{mode}: want {needle:?} in {stderr}"
            );
            let (code, _, stderr) = run(bin().args(["plugins", "inspect"]).arg(lib));
            assert_eq!(code, 1);
            assert!(stderr.contains(needle), "inspect: {stderr}");
        }
    }
    // A sha256 pin that does not match refuses the file before loading it.
    let good = c_plugin(dir.path(), "good", &[]);
    let cfg = write_config(
        dir.path(),
        &[("p", &good, "in-process")],
        &format!("sha256 = \"{}\"", "ab".repeat(32)),
    );
    let (code, _, stderr) = run(bin().args(["validate", "-c"]).arg(&cfg));
    assert_eq!(code, 1);
    assert!(stderr.contains("does not match its sha256 pin"), "{stderr}");
    let digest = driftwatch_core::plugin::sha256_file(&good).unwrap();
    let cfg = write_config(
        dir.path(),
        &[("p", &good, "in-process")],
        &format!("sha256 = \"{digest}\""),
    );
    let (code, _, stderr) = run(bin().args(["validate", "-c"]).arg(&cfg));
    assert_eq!(code, 0, "{stderr}");
}

/// Scans with a good plugin beside a broken one: the scan finishes, partial, with the
/// good plugin's findings, and names the broken plugin and what happened to it.
fn scan_beside_a_good_plugin(
    dir: &Path,
    broken: &Path,
    mode: &str,
    env: &[(&str, &str)],
) -> (Value, String) {
    write_state(dir);
    let good = c_plugin(dir, "good", &[]);
    let cfg = write_config(
        dir,
        &[("good", &good, "isolated"), ("broken", broken, mode)],
        "",
    );
    let mut cmd = bin();
    cmd.args(["scan", "-f", "json", "-c"]).arg(&cfg);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (code, stdout, stderr) = run(&mut cmd);
    assert_eq!(code, 1, "a failed provider makes the scan exit 1: {stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("the report is still written");
    assert_eq!(doc["summary"]["partial"], true);
    let providers = doc["summary"]["providers"].as_array().unwrap();
    assert_eq!(providers[0]["status"], "ok");
    assert_eq!(providers[0]["resources"], 4);
    assert_eq!(providers[1]["status"], "failed");
    // The good plugin's drift is still reported. When the broken provider lists the same
    // type, its failure withholds judgement: item-9 is not called missing.
    let got = findings(&stdout);
    assert!(
        got.iter().any(|f| f.1 == "item-4" && f.0 == "unmanaged"),
        "{got:?}"
    );
    let same_type = doc["summary"]["coverage"]["failed_scopes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["type"] == "hello_item");
    assert_eq!(got.iter().any(|f| f.0 == "missing"), !same_type, "{got:?}");
    assert_eq!(
        doc["summary"]["resources"]["not_judged"],
        u64::from(same_type)
    );
    (doc, stderr)
}

#[test]
fn crashes_and_hangs_in_isolated_mode_cost_only_that_provider() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("segv", "-DDW_SEGFAULT", "killed by signal 11 (SIGSEGV"),
        ("abort", "-DDW_ABORT", "killed by signal 6 (SIGABRT"),
        (
            "hang",
            "-DDW_HANG",
            "did not answer within 3s while collecting",
        ),
    ];
    for (name, define, needle) in cases {
        let lib = c_plugin(dir.path(), name, &[define]);
        let (doc, stderr) = scan_beside_a_good_plugin(dir.path(), &lib, "isolated", &[]);
        assert!(stderr.contains("provider `broken` failed"), "{stderr}");
        assert!(
            stderr.contains(needle),
            "{name}: want {needle:?} in {stderr}"
        );
        let err = doc["summary"]["providers"][1]["error"].as_str().unwrap();
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn malformed_messages_and_panics_are_errors_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let malformed = c_plugin(dir.path(), "malformed", &["-DDW_MALFORMED"]);
    let panicky = workspace_plugin("driftwatch_test_plugin_panicky");
    for mode in ["in-process", "isolated"] {
        let (_, stderr) = scan_beside_a_good_plugin(dir.path(), &malformed, mode, &[]);
        assert!(
            stderr.contains(
                "plugin `c-hello` broke the protocol: collect_next returned a malformed message"
            ),
            "{mode}: {stderr}"
        );
        let (_, stderr) = scan_beside_a_good_plugin(
            dir.path(),
            &panicky,
            mode,
            &[("DW_PANICKY_SPARE", "info,configure")],
        );
        assert!(
            stderr.contains("plugin panicked: panicky: collect"),
            "{mode}: {stderr}"
        );
    }
    // A panic while applying the config is a config problem, reported with its line.
    write_state(dir.path());
    let cfg = write_config(dir.path(), &[("p", &panicky, "in-process")], "");
    let (code, _, stderr) = run(bin()
        .args(["validate", "-c"])
        .arg(&cfg)
        .env("DW_PANICKY_SPARE", "info"));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("panicked in create: panicky: configure"),
        "{stderr}"
    );
}

#[test]
fn the_hello_example_builds_and_its_demo_scans() {
    // Built as its author would: its own crate, its own workspace, only the SDK.
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(repo())
        .args(["build", "--locked", "--quiet", "--manifest-path"])
        .arg(repo().join("examples/plugin-hello/Cargo.toml"))
        .arg("--target-dir")
        .arg(repo().join("target/test-plugins"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "examples/plugin-hello does not build");
    let demo = repo().join("examples/plugin-hello/demo");
    let (code, stdout, stderr) =
        run(bin()
            .current_dir(&demo)
            .args(["scan", "-f", "json", "-c", "driftwatch.toml"]));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        findings(&stdout),
        vec![
            (
                "changed".to_string(),
                "bonjour".to_string(),
                vec!["audience".to_string()]
            ),
            ("missing".into(), "ciao".into(), vec![]),
        ]
    );
    let (code, stdout, stderr) = run(bin().current_dir(&demo).args(["plugins", "list"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("hello_greeting"), "{stdout}");
    // A bad setting of the plugin's own is a config problem, found by `validate`.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(demo.join("driftwatch.toml"))
        .unwrap()
        .replace(
            "../../../target",
            &repo().join("target").display().to_string(),
        )
        .replace("states/", &format!("{}/states/", demo.display()))
        .replace(
            "dir = \"greetings\"",
            "dir = \"greetings\"\ncolour = \"blue\"",
        );
    std::fs::write(dir.path().join("driftwatch.toml"), text).unwrap();
    let (code, _, stderr) = run(bin().current_dir(dir.path()).args(["validate"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("`providers[0].colour`"), "{stderr}");
}

#[test]
fn a_plugin_that_exits_or_prints_cannot_fake_a_clean_scan() {
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path());
    // exit(0) mid-collection: never a success code without a report.
    let quitter = c_plugin(dir.path(), "quitter", &["-DDW_EXIT_ZERO"]);
    let cfg = write_config(dir.path(), &[("c-hello", &quitter, "in-process")], "");
    for command in ["scan", "validate"] {
        let mut cmd = bin();
        cmd.arg(command);
        if command == "scan" {
            cmd.args(["-f", "json"]);
        }
        let (code, stdout, stderr) = run(cmd.arg("-c").arg(&cfg));
        if command == "scan" {
            assert_eq!(code, 1, "{stdout}{stderr}");
            assert!(
                stderr.contains("before the report was complete"),
                "{stderr}"
            );
        } else {
            // validate loads the plugin but collects nothing: it finishes normally.
            assert_eq!(code, 0, "{stdout}{stderr}");
        }
    }
    // Printing to stdout: the report stays valid JSON, the noise goes to stderr.
    let noisy = c_plugin(dir.path(), "noisy", &["-DDW_STDOUT"]);
    let cfg = write_config(dir.path(), &[("c-hello", &noisy, "in-process")], "");
    let (code, stdout, stderr) = run(bin().args(["scan", "-f", "json", "-c"]).arg(&cfg));
    assert_eq!(code, 2, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).expect("the report alone is on stdout");
    assert_eq!(doc["summary"]["findings"]["total"], 3);
    assert!(stderr.contains("noise on stdout"), "{stderr}");
}

#[test]
fn processes_an_isolated_plugin_forks_die_with_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path());
    let forker = c_plugin(dir.path(), "forker", &["-DDW_FORK"]);
    let cfg = write_config(dir.path(), &[("c-hello", &forker, "isolated")], "");
    let pidfile = dir.path().join("fork.pid");
    // Output to files, not pipes: a surviving grandchild holding a pipe would hang the test
    // instead of failing it.
    let out = std::fs::File::create(dir.path().join("out")).unwrap();
    let err = std::fs::File::create(dir.path().join("err")).unwrap();
    let status = bin()
        .args(["scan", "-f", "json", "-c"])
        .arg(&cfg)
        .env("DW_FORK_PIDFILE", &pidfile)
        .stdout(out)
        .stderr(err)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("the plugin forked")
        .trim()
        .parse()
        .unwrap();
    // The kill is asynchronous: give the kernel a moment to reap it, then insist.
    let mut alive = true;
    for _ in 0..50 {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init to reap it.
        if state.is_empty() || state.split_whitespace().nth(2) == Some("Z") {
            alive = false;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if alive {
        // SAFETY: kills the stray test process so it does not outlive the test either.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(!alive, "the plugin's child {pid} outlived the scan");
}

#[test]
fn two_providers_reporting_one_resource_are_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path());
    let first = c_plugin(dir.path(), "first", &[]);
    let second = c_plugin(dir.path(), "second", &[]);
    let cfg = write_config(
        dir.path(),
        &[
            ("first", &first, "in-process"),
            ("shadow", &second, "isolated"),
        ],
        "",
    );
    let (code, stdout, stderr) = run(bin().args(["scan", "-f", "json", "-c"]).arg(&cfg));
    assert_eq!(code, 1, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let providers = doc["summary"]["providers"].as_array().unwrap();
    assert_eq!(providers[0]["status"], "ok");
    assert_eq!(providers[1]["status"], "failed");
    let err = providers[1]["error"].as_str().unwrap();
    assert!(err.contains("also reported by another provider"), "{err}");
    assert!(err.contains("hello_item.item-1 (from `first`)"), "{err}");
    // Nothing merged: no duplicate unmanaged, no missing while the overlap stands.
    let got = findings(&stdout);
    assert_eq!(
        got,
        vec![
            (
                "changed".to_string(),
                "item-2".to_string(),
                vec!["size".to_string()]
            ),
            ("unmanaged".into(), "item-4".into(), vec![]),
        ]
    );
    assert!(stderr.contains("provider `shadow` failed"), "{stderr}");
}

/// Secrets in state and in live listings reach no output: not the report in any format,
/// not a sink, not the audit log, not a log line, not a policy's input.
#[test]
fn secrets_reach_no_output_form() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_state(d);
    let tags_api = json!([[{"type": "get_attr", "value": "tags"},
                          {"type": "index", "value": {"value": "api", "type": "string"}}]]);
    let res = |ty: &str, attrs: Value, sensitive: Value| {
        json!({"mode": "managed", "type": ty, "name": "x",
               "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
               "instances": [{"schema_version": 0, "attributes": attrs,
                              "sensitive_attributes": sensitive}]})
    };
    let state = json!({"version": 4, "terraform_version": "1.9.0", "serial": 1, "lineage": "y",
        "outputs": {}, "resources": [
        res("aws_ssm_parameter", json!({"id": "/app/db", "type": "SecureString",
            "value": "STATE-s3cr3t"}), json!([])),
        res("aws_instance", json!({"id": "i-1", "instance_type": "t3.micro",
            "tags": {"api": "STATE-s3cr3t", "env": "prod"},
            "tags_all": {"api": "STATE-s3cr3t", "env": "prod"}}), tags_api),
        res("aws_db_instance", json!({"id": "db-1", "engine": "mysql",
            "default_primary_connection_string": "STATE-s3cr3t",
            "blocks": [[{"password": "STATE-s3cr3t", "host": "a"}]]}), json!([])),
        res("aws_iam_access_key", json!({"id": "AKIA1", "status": "Active",
            "secret": "STATE-s3cr3t", "ses_smtp_password_v4": "STATE-s3cr3t",
            "access_key": "STATE-s3cr3t"}), json!([])),
        res("random_password", json!({"id": "none", "result": "STATE-s3cr3t"}), json!([])),
        {"mode": "managed", "type": "kubernetes_secret", "name": "x",
         "provider": "provider[\"registry.terraform.io/hashicorp/kubernetes\"]",
         "instances": [{"schema_version": 0, "attributes": {"id": "ns/app",
            "type": "kubernetes.io/tls", "data": {"user": "STATE-s3cr3t"}}}]},
    ]});
    std::fs::write(d.join("secrets.tfstate"), state.to_string()).unwrap();
    std::fs::create_dir(d.join("policies")).unwrap();
    // A policy that echoes its whole input into every finding's verdict.
    std::fs::write(
        d.join("policies/echo.rego"),
        "package driftwatch.echo\nimport rego.v1\n\
         warn contains msg if { msg := sprintf(\"declared=%s live=%s changes=%s tags=%s\", \
         [json.marshal(input.declared), json.marshal(input.live), json.marshal(input.changes), \
         json.marshal(input.tags)]) }\n",
    )
    .unwrap();
    let lib = c_plugin(d, "secrets", &["-DDW_SECRETS"]);
    let cfg = d.join("driftwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[iac]\nstates = [\"hello.tfstate\", \"secrets.tfstate\"]\n\n\
             [governance]\npolicies = [\"policies\"]\naudit_log = \"audit.jsonl\"\n\n\
             [[plugins]]\nname = \"c-hello\"\npath = \"{}\"\nmode = \"in-process\"\n\n\
             [[providers]]\nkind = \"c-hello\"\ncount = 4\n\n\
             [[sinks]]\nkind = \"file\"\npath = \"events.jsonl\"\nformat = \"jsonl\"\n",
            lib.display()
        ),
    )
    .unwrap();
    let mut seen = String::new();
    for format in ["json", "jsonl", "sarif", "table"] {
        let (code, stdout, stderr) = run(bin()
            .args(["--log", "trace", "scan", "-f", format, "-c"])
            .arg(&cfg));
        assert_eq!(code, 2, "{format}: {stderr}");
        if format == "json" {
            let doc: Value = serde_json::from_str(&stdout).unwrap();
            let changed: Vec<&str> = doc["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["kind"] == "changed")
                .map(|f| f["resource"]["type"].as_str().unwrap())
                .collect();
            // Every planted resource was compared, so its secrets had every chance to leak.
            for ty in [
                "aws_db_instance",
                "aws_iam_access_key",
                "aws_instance",
                "aws_ssm_parameter",
                "kubernetes_secret",
            ] {
                assert!(changed.contains(&ty), "{ty} not compared: {changed:?}");
            }
            assert!(stdout.contains("declared="), "the echo policy ran");
        }
        seen.push_str(&stdout);
        seen.push_str(&stderr);
    }
    let (code, stdout, stderr) = run(bin()
        .args(["iac", "list", "--format", "json", "--state"])
        .arg(d.join("secrets.tfstate")));
    assert_eq!(code, 0, "{stderr}");
    seen.push_str(&stdout);
    for file in ["events.jsonl", "audit.jsonl"] {
        seen.push_str(&std::fs::read_to_string(d.join(file)).unwrap());
    }
    assert!(!seen.contains("s3cr3t"), "a secret leaked: {}", {
        let at = seen.find("s3cr3t").unwrap();
        &seen[at.saturating_sub(300)..(at + 50).min(seen.len())]
    });
}

/// A listing that failed for one scope makes the scan partial, and a partial scan exits 1
/// naming the scope, whatever it found: a CI gate must not pass on a half-listed estate.
#[test]
fn a_partial_scan_exits_1_and_names_the_failed_scope() {
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path());
    let lib = c_plugin(dir.path(), "partial", &["-DDW_PARTIAL"]);
    let cfg = write_config(dir.path(), &[("c-hello", &lib, "in-process")], "");
    let (code, stdout, stderr) = run(bin().args(["scan", "-f", "json", "-c"]).arg(&cfg));
    assert_eq!(code, 1, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["summary"]["partial"], true);
    assert_eq!(doc["summary"]["providers"][0]["status"], "ok");
    assert!(
        stderr.contains("listing hello hello_item acct-1 north failed: throttled after 3 attempts"),
        "{stderr}"
    );
    // Nothing of the failed scope is called missing.
    assert!(!findings(&stdout).iter().any(|f| f.0 == "missing"));
}
