//! Rego policies evaluated with regorus, in conftest's conventions: rules named `deny`,
//! `deny_*`, `violation` or `violation_*` make a violation, `warn` / `warn_*` add a note,
//! and `exception` names the rules (`deny_<name>` → `<name>`) it exempts.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Why policies could not be loaded or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or folder could not be read.
    #[error("cannot read policy {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A policy does not parse.
    #[error("policy {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Evaluation failed (a runtime error in a rule).
    #[error("evaluating {query}: {message}")]
    Eval {
        /// What was evaluated.
        query: String,
        /// The interpreter's message.
        message: String,
    },
}

/// What the policies decided about one input.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decision {
    /// Deny rules that fired, as `package.rule: message`.
    pub denied: Vec<String>,
    /// Deny rules that fired but an `exception` exempted, as `package.rule`.
    pub exempted: Vec<String>,
    /// Warnings, as `package.rule: message`.
    pub warnings: Vec<String>,
}

/// A loaded set of policies.
#[derive(Clone)]
pub struct PolicySet {
    engine: regorus::Engine,
    packages: Vec<String>,
    /// Test rules found in `*_test.rego` files: (package, rule, file).
    tests: Vec<(String, String, PathBuf)>,
}

/// `.rego` files under the given files and folders, sorted.
pub fn rego_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PolicyError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let pattern = p.join("**/*.rego");
            for e in glob::glob(&pattern.to_string_lossy())
                .map_err(|e| PolicyError::Io {
                    path: p.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?
                .flatten()
            {
                out.push(e);
            }
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(PolicyError::Io {
                path: p.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn package_of(source: &str) -> Option<String> {
    source.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("package ")
            .map(|p| format!("data.{}", p.trim().trim_end_matches(';')))
    })
}

fn message(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .get("msg")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
        other => other.to_string(),
    }
}

/// Messages a rule's value carries: a set of messages, one message, or `true`.
fn messages(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(message).collect(),
        Value::Bool(true) => vec![String::new()],
        Value::Bool(false) | Value::Null => Vec::new(),
        other => vec![message(other)],
    }
}

impl PolicySet {
    /// Loads every `.rego` file under `paths`; `rego_v0` accepts pre-1.0 syntax.
    pub fn load(paths: &[PathBuf], rego_v0: bool) -> Result<PolicySet, PolicyError> {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(rego_v0);
        let mut packages = BTreeSet::new();
        let mut tests = Vec::new();
        for file in rego_files(paths)? {
            let source = std::fs::read_to_string(&file).map_err(|source| PolicyError::Io {
                path: file.clone(),
                source,
            })?;
            engine
                .add_policy(file.display().to_string(), source.clone())
                .map_err(|e| PolicyError::Parse {
                    path: file.clone(),
                    message: e.to_string(),
                })?;
            let Some(pkg) = package_of(&source) else {
                continue;
            };
            let is_test = file
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("_test.rego"));
            if is_test {
                for line in source.lines() {
                    let name: String = line
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name.starts_with("test_")
                        && !tests.iter().any(|(p, n, _)| *p == pkg && *n == name)
                    {
                        tests.push((pkg.clone(), name, file.clone()));
                    }
                }
            } else {
                packages.insert(pkg);
            }
        }
        Ok(PolicySet {
            engine,
            packages: packages.into_iter().collect(),
            tests,
        })
    }

    /// Packages whose rules are applied to findings.
    pub fn packages(&self) -> &[String] {
        &self.packages
    }

    fn query(&mut self, query: &str) -> Result<Option<Value>, PolicyError> {
        let results = self
            .engine
            .eval_query(query.to_string(), false)
            .map_err(|e| PolicyError::Eval {
                query: query.to_string(),
                message: e.to_string(),
            })?;
        let Some(first) = results.result.into_iter().next() else {
            return Ok(None);
        };
        let Some(expr) = first.expressions.into_iter().next() else {
            return Ok(None);
        };
        serde_json::to_value(&expr.value)
            .map(Some)
            .map_err(|e| PolicyError::Eval {
                query: query.to_string(),
                message: e.to_string(),
            })
    }

    /// Applies every package's rules to one input document.
    pub fn decide(&mut self, input: &Value) -> Result<Decision, PolicyError> {
        let value =
            regorus::Value::from_json_str(&input.to_string()).map_err(|e| PolicyError::Eval {
                query: "input".into(),
                message: e.to_string(),
            })?;
        self.engine.set_input(value);
        let mut d = Decision::default();
        for pkg in self.packages.clone() {
            let Some(Value::Object(rules)) = self.query(&pkg)? else {
                continue;
            };
            let short = pkg.strip_prefix("data.").unwrap_or(&pkg).to_string();
            let exempt: BTreeSet<String> = rules
                .get("exception")
                .map(|v| match v {
                    Value::Array(sets) => sets
                        .iter()
                        .flat_map(|s| match s {
                            Value::Array(names) => names.iter().map(message).collect::<Vec<_>>(),
                            other => vec![message(other)],
                        })
                        .collect(),
                    other => [message(other)].into_iter().collect(),
                })
                .unwrap_or_default();
            for (name, v) in &rules {
                let (is_deny, suffix) = if let Some(s) = name.strip_prefix("deny") {
                    (true, s)
                } else if let Some(s) = name.strip_prefix("violation") {
                    (true, s)
                } else if let Some(s) = name.strip_prefix("warn") {
                    (false, s)
                } else {
                    continue;
                };
                if !(suffix.is_empty() || suffix.starts_with('_')) {
                    continue;
                }
                let msgs = messages(v);
                if msgs.is_empty() {
                    continue;
                }
                let rule = format!("{short}.{name}");
                let label = |m: &String| {
                    if m.is_empty() {
                        rule.clone()
                    } else {
                        format!("{rule}: {m}")
                    }
                };
                if !is_deny {
                    d.warnings.extend(msgs.iter().map(label));
                } else if exempt.contains(suffix.trim_start_matches('_')) {
                    d.exempted.push(rule.clone());
                } else {
                    d.denied.extend(msgs.iter().map(label));
                }
            }
        }
        Ok(d)
    }

    /// Runs every `test_*` rule of the `*_test.rego` files: (rule, file, passed).
    pub fn run_tests(&mut self) -> Result<Vec<(String, PathBuf, bool)>, PolicyError> {
        self.engine.set_input(regorus::Value::new_object());
        let mut out = Vec::new();
        for (pkg, name, file) in self.tests.clone() {
            let q = format!("{pkg}.{name}");
            let passed = matches!(self.query(&q)?, Some(Value::Bool(true)));
            out.push((q, file, passed));
        }
        Ok(out)
    }
}

/// Resolves configured policy paths against the config folder.
pub fn resolve(paths: &[String], base: &Path) -> Vec<PathBuf> {
    paths
        .iter()
        .map(|p| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        })
        .collect()
}
