//! Helpers the binary's end-to-end tests share: the quickstart in a temporary folder and a
//! way to run the binary on it.
#![allow(dead_code)]

pub mod receivers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Copies a folder tree, leaving out `out/` folders (a developer's earlier runs).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            if e.file_name() != "out" {
                copy_dir(&e.path(), &target);
            }
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The quickstart in a temporary folder, loading the repository's policy library, with
/// `extra` appended to its config.
pub fn quickstart(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples/quickstart"), dir.path());
    let cfg = dir.path().join("driftwatch.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap().replace(
        "\"../../policies\"",
        &format!("{:?}", repo().join("policies").display().to_string()),
    );
    text.push('\n');
    text.push_str(extra);
    std::fs::write(&cfg, text).unwrap();
    dir
}

/// The binary, run in `dir` with its outputs under `dir/out`.
pub fn bin(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_driftwatch"));
    c.env_remove("DRIFTWATCH_LOG")
        .env("DRIFTWATCH_OUT", dir.join("out"))
        .current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs a command to its end: exit code, stdout, stderr.
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("driftwatch runs");
    (
        status.code().expect("exited normally"),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// Batches waiting in a sink's spool under the default `.driftwatch/spool`.
pub fn spooled(dir: &Path, sink: &str) -> usize {
    match std::fs::read_dir(dir.join(".driftwatch/spool").join(sink)) {
        Ok(rd) => rd
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "jsonl")
            })
            .count(),
        Err(_) => 0,
    }
}
