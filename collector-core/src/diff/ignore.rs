//! `.driftignore` in driftctl's syntax, so driftctl users keep their ignore files.
//!
//! One rule per line; `#` starts a comment. `TYPE.ID` ignores a resource, `TYPE.ID.PATH`
//! ignores drift on one attribute path (`aws_instance.*.tags.Name`). `*` matches any run of
//! characters within a part, a dot inside an id or a key is escaped as `\.`, and a leading
//! `!` re-includes what an earlier line ignored: the last matching line wins, as in
//! `.gitignore`.

use driftwatch_plugin_sdk::input::{quote_input, read_regular_text, MIB};
use driftwatch_plugin_sdk::Finding;
use std::path::Path;
use wildmatch::WildMatch;

/// Largest ignore file read.
pub const MAX_IGNORE_BYTES: u64 = 16 * MIB;

#[derive(Debug, Clone)]
struct Rule {
    negated: bool,
    r#type: WildMatch,
    id: WildMatch,
    path: Vec<WildMatch>,
    line: usize,
}

/// A parsed set of ignore rules.
#[derive(Debug, Clone, Default)]
pub struct DriftIgnore {
    rules: Vec<Rule>,
    /// Where the rules came from, for messages.
    pub sources: Vec<String>,
}

/// A line of an ignore file that cannot be understood.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct IgnoreError {
    /// The file.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Splits on unescaped dots, unescaping `\.`.
fn split_parts(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                parts.last_mut().expect("non-empty").push('.');
            }
            '.' => parts.push(String::new()),
            c => parts.last_mut().expect("non-empty").push(c),
        }
    }
    parts
}

impl DriftIgnore {
    /// Parses the text of one ignore file; `file` names it in errors.
    pub fn parse(&mut self, file: &str, text: &str) -> Result<(), IgnoreError> {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let parts = split_parts(body);
            if parts.iter().any(String::is_empty) {
                return Err(IgnoreError {
                    file: file.into(),
                    line: i + 1,
                    message: format!(
                        "{} has an empty part; write TYPE.ID or TYPE.ID.ATTRIBUTE, \
                         escaping dots inside ids as `\\.`",
                        quote_input(line)
                    ),
                });
            }
            let (ty, id, path) = match parts.as_slice() {
                [all] if all == "*" => ("*", "*", &[][..]),
                [ty] => (ty.as_str(), "*", &[][..]),
                [ty, id, rest @ ..] => (ty.as_str(), id.as_str(), rest),
                [] => unreachable!("split yields at least one part"),
            };
            self.rules.push(Rule {
                negated,
                r#type: WildMatch::new(ty),
                id: WildMatch::new(id),
                path: path.iter().map(|p| WildMatch::new(p)).collect(),
                line: i + 1,
            });
        }
        self.sources.push(file.into());
        Ok(())
    }

    /// Reads and parses an ignore file.
    pub fn load(&mut self, path: &Path) -> Result<(), IgnoreError> {
        let text = read_regular_text(path, MAX_IGNORE_BYTES).map_err(|e| IgnoreError {
            file: path.display().to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        self.parse(&path.display().to_string(), &text)
    }

    /// Number of rules loaded.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when no rule is loaded.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides a (type, id, attribute path) by the last rule that matches it.
    fn ignored(&self, ty: &str, id: &str, path: Option<&[String]>) -> bool {
        let mut ignored = false;
        for r in &self.rules {
            if !r.r#type.matches(ty) || !r.id.matches(id) {
                continue;
            }
            let applies = match (path, r.path.is_empty()) {
                (_, true) => true,
                (None, false) => false,
                (Some(p), false) => {
                    p.len() >= r.path.len()
                        && r.path.iter().zip(p).all(|(pat, seg)| pat.matches(seg))
                }
            };
            if applies {
                ignored = !r.negated;
            }
        }
        ignored
    }

    /// Applies the rules to a finding: `None` when the whole finding is ignored, otherwise
    /// the finding with ignored attribute changes removed (a `changed` finding whose every
    /// change is ignored is ignored).
    pub fn apply(&self, mut finding: Finding) -> Option<Finding> {
        if self.rules.is_empty() {
            return Some(finding);
        }
        let ty = finding.resource.key.r#type.clone();
        let id = finding.resource.key.id.clone();
        if self.ignored(&ty, &id, None) {
            return None;
        }
        if finding.changes.is_empty() {
            return Some(finding);
        }
        finding
            .changes
            .retain(|c| !self.ignored(&ty, &id, Some(&path_segments(&c.path))));
        (!finding.changes.is_empty()).then_some(finding)
    }

    /// Line numbers of the rules, for tests and diagnostics.
    pub fn lines(&self) -> Vec<usize> {
        self.rules.iter().map(|r| r.line).collect()
    }
}

/// `a.b[0].c` → `["a", "b", "0", "c"]`, the way driftctl spells list indices.
fn path_segments(path: &str) -> Vec<String> {
    path.replace('[', ".")
        .replace(']', "")
        .split('.')
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftwatch_plugin_sdk::*;
    use serde_json::json;

    fn finding(ty: &str, id: &str, paths: &[&str]) -> Finding {
        Finding {
            id: "x".into(),
            kind: if paths.is_empty() {
                FindingKind::Unmanaged
            } else {
                FindingKind::Changed
            },
            resource: FindingResource {
                key: ResourceKey::new("aws", ty, id),
                address: None,
                source: None,
                account: None,
                region: None,
                name: None,
            },
            changes: paths
                .iter()
                .map(|p| Change {
                    path: p.to_string(),
                    expected: json!(1),
                    actual: json!(2),
                })
                .collect(),
            status: FindingStatus::Review,
            risk: Risk::Medium,
            notes: vec![],
            review_due: false,
            policies: vec![],
            owner: None,
            first_seen: String::new(),
            last_seen: String::new(),
            facets: Facets::default(),
        }
    }

    #[test]
    fn driftctl_syntax() {
        let mut ig = DriftIgnore::default();
        ig.parse(
            ".driftignore",
            "# comment\n\
             aws_s3_bucket.my-bucket\n\
             aws_iam_user.*\n\
             !aws_iam_user.admin\n\
             aws_s3_bucket.my-bucket\\.with\\.dots\n\
             aws_instance.*.tags.Name\n\
             aws_lambda_function.*.environment\n\
             aws_s3_bucket.*wildcard*\n",
        )
        .unwrap();
        assert!(ig
            .apply(finding("aws_s3_bucket", "my-bucket", &[]))
            .is_none());
        assert!(ig
            .apply(finding("aws_s3_bucket", "my-bucket.with.dots", &[]))
            .is_none());
        assert!(ig
            .apply(finding("aws_s3_bucket", "a-wildcard-b", &[]))
            .is_none());
        assert!(ig.apply(finding("aws_s3_bucket", "other", &[])).is_some());
        assert!(ig.apply(finding("aws_iam_user", "bob", &[])).is_none());
        assert!(ig.apply(finding("aws_iam_user", "admin", &[])).is_some());
        let f = ig
            .apply(finding(
                "aws_instance",
                "i-1",
                &["tags.Name", "instance_type"],
            ))
            .unwrap();
        assert_eq!(f.changes.len(), 1);
        assert_eq!(f.changes[0].path, "instance_type");
        assert!(ig
            .apply(finding("aws_instance", "i-1", &["tags.Name"]))
            .is_none());
        assert!(ig
            .apply(finding(
                "aws_lambda_function",
                "f",
                &["environment[0].variables.X"]
            ))
            .is_none());
    }

    #[test]
    fn star_ignores_everything_and_errors_name_the_line() {
        let mut ig = DriftIgnore::default();
        ig.parse("i", "*\n").unwrap();
        assert!(ig.apply(finding("any", "thing", &[])).is_none());
        let e = DriftIgnore::default()
            .parse("f", "ok.ok\naws..x\n")
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("f:2:"));
    }
}
