//! Every state of driftctl's test corpus (Terraform 0.11 to 1.3) parses to the managed
//! resources it holds, and the invalid ones are refused with a message naming the file.

use driftwatch_core::iac::parse_state;
use driftwatch_tests::fixtures;
use serde_json::Value;
use std::collections::BTreeSet;

type Pairs = BTreeSet<(String, String)>;

/// A deliberately naive reading of the same file, as an independent oracle.
fn oracle(v: &Value) -> Pairs {
    let mut out = Pairs::new();
    for r in v["resources"].as_array().into_iter().flatten() {
        if r["mode"] != "managed" {
            continue;
        }
        for i in r["instances"].as_array().into_iter().flatten() {
            out.insert((
                r["type"].as_str().unwrap().to_string(),
                i["attributes"]["id"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out
}

/// Files where driftctl's golden list deliberately differs from the state: driftctl
/// recomputes rule ids and drops providers it does not support. driftwatch reports what
/// the state holds, which the oracle checks instead.
const GOLDEN_DIVERGES: &[&str] = &[
    "aws_lb_listener",
    "aws_network_acl_rule",
    "aws_vpc_security_group_rule",
    "unsupported_provider",
];

const INVALID: &[(&str, &str)] = &[
    ("v4_invalid", "not valid JSON at line 16"),
    ("v4_invalid_version", "`terraform_version` is `invalid`"),
    ("v4_unsupported_version", "Terraform `0.10.26`"),
];

#[test]
fn every_valid_state_parses_to_its_resources() {
    let dir = fixtures("tfstate/driftctl");
    let mut parsed = 0;
    let mut golden_checked = 0;
    let mut total_resources = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("tfstate") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        if INVALID.iter().any(|(n, _)| *n == stem) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let state = parse_state(&stem, &bytes).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let ours: Pairs = state
            .resources
            .iter()
            .map(|d| (d.key.r#type.clone(), d.key.id.clone()))
            .collect();
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(ours, oracle(&raw), "{stem}: differs from the raw state");
        let managed: usize = raw["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["mode"] == "managed")
            .map(|r| r["instances"].as_array().map_or(0, |i| i.len()))
            .sum();
        assert_eq!(state.resources.len(), managed, "{stem}: instance count");
        for d in &state.resources {
            assert_eq!(*d.source, *stem);
            assert!(d.address.contains(&d.key.r#type), "{stem}: {}", d.address);
        }
        let golden = dir.join(format!("{stem}.golden.json"));
        if golden.exists() && !GOLDEN_DIVERGES.contains(&stem.as_str()) {
            let g: Vec<Value> = serde_json::from_slice(&std::fs::read(&golden).unwrap()).unwrap();
            let gp: Pairs = g
                .iter()
                .map(|x| {
                    (
                        x["Type"].as_str().unwrap().to_string(),
                        x["Id"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            assert_eq!(ours, gp, "{stem}: differs from driftctl's golden list");
            golden_checked += 1;
        }
        total_resources += state.resources.len();
        parsed += 1;
    }
    assert_eq!(parsed, 149, "states found in {}", dir.display());
    assert_eq!(golden_checked, 139, "golden lists compared");
    assert!(total_resources > 300);
}

#[test]
fn data_sources_are_skipped_and_modules_addressed() {
    let dir = fixtures("tfstate/driftctl");
    let read = |n: &str| {
        parse_state(n, &std::fs::read(dir.join(format!("{n}.tfstate"))).unwrap()).unwrap()
    };
    assert!(read("data_source").resources.is_empty());
    let m = read("module.iam_iam-user");
    assert!(m
        .resources
        .iter()
        .any(|d| d.address == "module.iam_iam-user.aws_iam_user.this[0]"));
    let legacy = read("v4_valid");
    assert!(legacy.resources.iter().all(|d| d.key.provider == "aws"));
    let az = read("azurerm_network_security_group");
    assert!(az.resources.iter().all(|d| d.key.provider == "azure"));
    let g = read("google_compute_firewall");
    assert!(g.resources.iter().all(|d| d.key.provider == "gcp"));
}

#[test]
fn invalid_states_are_refused_with_the_file_and_the_problem() {
    let dir = fixtures("tfstate/driftctl");
    for (name, needle) in INVALID {
        let file = format!("{name}.tfstate");
        let bytes = std::fs::read(dir.join(&file)).unwrap();
        let err = parse_state(&file, &bytes).unwrap_err().to_string();
        assert!(err.starts_with(&file), "{err}");
        assert!(err.contains(needle), "{name}: {err}");
    }
}
