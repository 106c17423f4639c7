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

/// A plugin cdylib of this workspace. collector-core depends on the plugin crates for its
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
        .arg(repo().join("collector-core/tests/plugins/c/hello.c"))
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
