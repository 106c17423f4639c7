//! `driftwatch.toml`: parsing, `${ENV}` expansion and validation that reports every problem
//! with its line, so a user fixes a config in one pass.

use driftwatch_plugin_sdk::input::{clean_text, quote_input, read_regular_text, ReadError, MIB};
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 16 * MIB;

/// Characters of one problem's message shown.
const MAX_MESSAGE_CHARS: usize = 1000;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// Dotted key path (`providers[0].paths`), empty for the whole file.
    pub path: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// Every problem found in a config file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// The problems, in file order.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{} has {n} problem{}:",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}", self.file.display())?;
            if let Some(l) = p.line {
                write!(f, ":{l}")?;
            }
            // Messages and key paths may quote the file, its environment or a provider's
            // answer: nothing in them may forge a line or a terminal sequence.
            let message = clean_text(&p.message, MAX_MESSAGE_CHARS);
            if p.path.is_empty() {
                write!(f, ": {message}")?;
            } else {
                write!(f, ": `{}`: {message}", clean_text(&p.path, 200))?;
            }
        }
        Ok(())
    }
}

/// `[scan]`: settings of the scan itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanSection {
    /// Ignore files in driftctl's syntax; a `.driftignore` beside the config is read when
    /// this is not set.
    #[serde(default)]
    pub driftignore: Option<Vec<String>>,
    /// Largest batch a provider emits at once.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Where streaming sinks keep undelivered events, one folder per sink (default
    /// `.driftwatch/spool` beside the config file).
    #[serde(default)]
    pub spool_dir: Option<String>,
}

fn default_batch() -> usize {
    1000
}

impl Default for ScanSection {
    fn default() -> Self {
        Self {
            driftignore: None,
            batch_size: default_batch(),
            spool_dir: None,
        }
    }
}

/// `[agent]`: how `driftwatch agent` schedules scans, keeps state and serves its endpoints.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Time between two scans of a provider.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Per-provider intervals, by provider name, overriding `interval`.
    #[serde(default)]
    pub intervals: BTreeMap<String, String>,
    /// Fraction of the interval added or taken at random, so scans of many agents and
    /// providers spread out (0 to 0.5).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Address of the health, metrics and findings endpoints.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The SQLite state store, relative to the config file.
    #[serde(default = "default_state")]
    pub state: String,
    /// How long SIGTERM waits for a running scan and the sinks' flush.
    #[serde(default = "default_shutdown", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_jitter() -> f64 {
    0.1
}
fn default_listen() -> String {
    "127.0.0.1:9464".into()
}
fn default_state() -> String {
    ".driftwatch/agent.db".into()
}
fn default_shutdown() -> Duration {
    Duration::from_secs(30)
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            intervals: BTreeMap::new(),
            jitter: default_jitter(),
            listen: default_listen(),
            state: default_state(),
            shutdown_timeout: default_shutdown(),
        }
    }
}

/// `[iac]`: where the declared estate comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IacSection {
    /// State files: paths or globs (`envs/**/*.tfstate`), relative to the config file,
    /// or `s3://bucket/key`, `azurerm://account/container/key` and `gcs://bucket/key`
    /// locations (globs too).
    #[serde(default)]
    pub states: Vec<String>,
    /// Each state backend's table (`[iac.s3]`, `[iac.azurerm]`, `[iac.gcs]`, ...) by
    /// scheme, as written: the backend's factory parses and checks it, so a mistake in one
    /// hides nothing else of `[iac]`.
    #[serde(skip)]
    pub backends: BTreeMap<String, Json>,
}

/// One `[[providers]]` or `[[sinks]]` entry: its kind, name, and the kind's own settings.
#[derive(Debug, Clone)]
pub struct ComponentEntry {
    /// Which implementation (`inventory`, `file`, ...).
    pub kind: String,
    /// Instance name, unique within its list (defaults to the kind).
    pub name: String,
    /// False to keep the entry but not run it.
    pub enabled: bool,
    /// Every other key of the entry, as JSON, plus `config_dir`.
    pub settings: Json,
    /// Index within its list, for locating problems.
    pub index: usize,
}

/// A parsed, expanded config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    /// Its folder: relative paths in it are resolved here.
    pub dir: PathBuf,
    /// `[scan]`.
    pub scan: ScanSection,
    /// `[iac]`.
    pub iac: IacSection,
    /// `[governance]`.
    pub governance: crate::govern::GovernanceSection,
    /// `[agent]`.
    pub agent: AgentSection,
    /// `[[providers]]`.
    pub providers: Vec<ComponentEntry>,
    /// `[[sinks]]`.
    pub sinks: Vec<ComponentEntry>,
    /// `[[plugins]]`, with their index in the list.
    pub plugins: Vec<(usize, crate::plugin::PluginEntry)>,
    text: String,
}

/// Builds problems with lines from key paths, using the spans toml_edit keeps.
pub struct Locator {
    doc: Option<toml_edit::Document<String>>,
    text: String,
}

impl Locator {
    fn new(text: &str) -> Self {
        Self {
            doc: toml_edit::Document::parse(text.to_string()).ok(),
            text: text.to_string(),
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    /// Line of the deepest item of `path` that exists in the file.
    pub fn line(&self, path: &str) -> Option<usize> {
        use toml_edit::{Item, Value};
        enum Cur<'a> {
            Table(&'a toml_edit::Table),
            Inline(&'a toml_edit::InlineTable),
            Tables(&'a toml_edit::ArrayOfTables),
            Array(&'a toml_edit::Array),
            Leaf,
        }
        fn of_value(v: &Value) -> Cur<'_> {
            match v {
                Value::InlineTable(t) => Cur::Inline(t),
                Value::Array(a) => Cur::Array(a),
                _ => Cur::Leaf,
            }
        }
        fn of_item(i: &Item) -> Cur<'_> {
            match i {
                Item::Table(t) => Cur::Table(t),
                Item::ArrayOfTables(a) => Cur::Tables(a),
                Item::Value(v) => of_value(v),
                Item::None => Cur::Leaf,
            }
        }
        let doc = self.doc.as_ref()?;
        let mut best = None;
        let mut cur = Cur::Table(doc.as_table());
        for seg in split_path(path) {
            let (span, next) = match (seg, cur) {
                (Seg::Key(k), Cur::Table(t)) => {
                    (t.key(k).and_then(|k| k.span()), t.get(k).map(of_item))
                }
                (Seg::Key(k), Cur::Inline(t)) => {
                    (t.key(k).and_then(|k| k.span()), t.get(k).map(of_value))
                }
                (Seg::Index(i), Cur::Tables(a)) => {
                    (a.get(i).and_then(|t| t.span()), a.get(i).map(Cur::Table))
                }
                (Seg::Index(i), Cur::Array(a)) => {
                    (a.get(i).and_then(|v| v.span()), a.get(i).map(of_value))
                }
                _ => (None, None),
            };
            if span.is_some() {
                best = span;
            }
            match next {
                Some(n) => cur = n,
                None => break,
            }
        }
        best.map(|s| self.line_of(s.start))
    }

    /// A problem at `path`, with its line when the path exists in the file.
    pub fn problem(&self, path: &str, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            line: self.line(path),
            path: path.to_string(),
            message: message.into(),
        }
    }
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Seg::Key(name));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                out.push(Seg::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

/// Why a `${VAR}` reference could not be expanded, in words for the config's problem list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(String);

/// Expands `${VAR}` and `${VAR:-default}` in one string; `$${` writes a literal `${`.
pub fn expand_env(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, EnvError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| EnvError(format!("unclosed `${{` in {}", quote_input(s))))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(EnvError(format!(
                    "{} is not a variable name",
                    quote_input(&format!("${{{expr}}}"))
                )));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(EnvError(format!(
                        "environment variable `{name}` is not set (set it, or write `${{{name}:-default}}`)"
                    )))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand_all(
    v: &mut toml::Value,
    path: &str,
    loc: &Locator,
    problems: &mut Vec<ConfigProblem>,
    lookup: &dyn Fn(&str) -> Option<String>,
) {
    match v {
        toml::Value::String(s) if s.contains('$') => match expand_env(s, lookup) {
            Ok(e) => *s = e,
            Err(m) => problems.push(loc.problem(path, m.to_string())),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_all(item, &format!("{path}[{i}]"), loc, problems, lookup);
            }
        }
        toml::Value::Table(t) => {
            for (k, item) in t.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                expand_all(item, &p, loc, problems, lookup);
            }
        }
        _ => {}
    }
}

/// Converts TOML to JSON for component settings (datetimes become RFC 3339 strings).
pub fn toml_to_json(v: &toml::Value) -> Json {
    match v {
        toml::Value::String(s) => Json::String(s.clone()),
        toml::Value::Integer(i) => Json::from(*i),
        toml::Value::Float(f) => Json::from(*f),
        toml::Value::Boolean(b) => Json::Bool(*b),
        toml::Value::Datetime(d) => Json::String(d.to_string()),
        toml::Value::Array(a) => Json::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Json::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

fn serde_problem(
    loc: &Locator,
    prefix: &str,
    e: serde_path_to_error::Error<toml::de::Error>,
) -> ConfigProblem {
    let inner = e.path().to_string();
    let path = match (prefix.is_empty(), inner.as_str()) {
        (_, ".") => prefix.to_string(),
        (true, p) => p.to_string(),
        (false, p) => format!("{prefix}.{p}"),
    };
    let msg = e.into_inner().message().to_string();
    // Point at the offending key itself, not at its section.
    let path = match msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        Some(field) if !path.ends_with(field) => format!("{path}.{field}"),
        _ => path,
    };
    loc.problem(&path, msg)
}

/// Deserialises one section; `None` when it is absent or has problems (then recorded).
fn section<T: for<'de> Deserialize<'de>>(
    root: &toml::Table,
    name: &str,
    loc: &Locator,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(root.get(name)?.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(serde_problem(loc, name, e));
            None
        }
    }
}

fn components(
    root: &toml::Table,
    list: &str,
    dir: &Path,
    loc: &Locator,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<ComponentEntry> {
    let Some(v) = root.get(list) else {
        return Vec::new();
    };
    let Some(items) = v.as_array() else {
        problems.push(loc.problem(
            list,
            format!("must be an array of tables: write each entry as `[[{list}]]`"),
        ));
        return Vec::new();
    };
    let mut out: Vec<ComponentEntry> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{list}[{i}]");
        let Some(t) = item.as_table() else {
            problems.push(loc.problem(&at, "must be a table"));
            continue;
        };
        let kind = match t.get("kind") {
            Some(toml::Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => {
                problems.push(loc.problem(&format!("{at}.kind"), "must be a non-empty string"));
                continue;
            }
            None => {
                problems.push(loc.problem(&at, "missing `kind` (e.g. kind = \"inventory\")"));
                continue;
            }
        };
        let name = match t.get("name") {
            Some(toml::Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => {
                problems.push(loc.problem(&format!("{at}.name"), "must be a non-empty string"));
                kind.clone()
            }
            None => kind.clone(),
        };
        let enabled = match t.get("enabled") {
            Some(toml::Value::Boolean(b)) => *b,
            Some(_) => {
                problems.push(loc.problem(&format!("{at}.enabled"), "must be true or false"));
                true
            }
            None => true,
        };
        if out.iter().any(|c| c.name == name) {
            problems.push(loc.problem(
                &at,
                format!(
                    "duplicate {list} name {}: give each entry a distinct `name`",
                    quote_input(&name)
                ),
            ));
        }
        let mut settings = serde_json::Map::new();
        for (k, v) in t {
            if !matches!(k.as_str(), "kind" | "name" | "enabled") {
                settings.insert(k.clone(), toml_to_json(v));
            }
        }
        settings.insert(
            "config_dir".into(),
            Json::String(dir.to_string_lossy().into_owned()),
        );
        out.push(ComponentEntry {
            kind,
            name,
            enabled,
            settings: Json::Object(settings),
            index: i,
        });
    }
    out
}

fn plugin_entries(
    root: &toml::Table,
    loc: &Locator,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<(usize, crate::plugin::PluginEntry)> {
    let Some(v) = root.get("plugins") else {
        return Vec::new();
    };
    let Some(items) = v.as_array() else {
        problems.push(loc.problem(
            "plugins",
            "must be an array of tables: write each entry as `[[plugins]]`",
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("plugins[{i}]");
        match serde_path_to_error::deserialize::<_, crate::plugin::PluginEntry>(item.clone()) {
            Ok(e) => out.push((i, e)),
            Err(e) => problems.push(serde_problem(loc, &at, e)),
        }
    }
    out
}

impl Config {
    /// The folder holding each streaming sink's spool.
    pub fn spool_root(&self) -> PathBuf {
        let p = self
            .scan
            .spool_dir
            .as_deref()
            .unwrap_or(".driftwatch/spool");
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// Reads and parses a config file; problems of structure are all reported together.
    /// Component settings are checked by [`crate::validate`].
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = read_regular_text(file, MAX_CONFIG_BYTES).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            problems: vec![ConfigProblem {
                line: None,
                path: String::new(),
                message: match e {
                    ReadError::Io(e) => format!("cannot read the config file: {e}"),
                    e => format!("the config file {e}"),
                },
            }],
        })?;
        Self::parse(file, &text, &|k| std::env::var(k).ok())
    }

    /// Parses config text as if read from `file`, expanding variables with `lookup`.
    pub fn parse(
        file: &Path,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError {
            file: file.to_path_buf(),
            problems,
        };
        let mut root: toml::Table = match toml::from_str(text) {
            Ok(t) => t,
            Err(e) => {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                return Err(fail(vec![ConfigProblem {
                    line,
                    path: String::new(),
                    message: format!("not valid TOML: {}", e.message()),
                }]));
            }
        };
        let loc = Locator::new(text);
        let mut problems = Vec::new();
        let mut as_value = toml::Value::Table(std::mem::take(&mut root));
        expand_all(&mut as_value, "", &loc, &mut problems, lookup);
        let toml::Value::Table(root) = as_value else {
            unreachable!("a table stays a table")
        };
        for key in root.keys() {
            if !matches!(
                key.as_str(),
                "scan" | "iac" | "governance" | "agent" | "providers" | "sinks" | "plugins"
            ) {
                problems.push(loc.problem(
                    key,
                    "unknown section (expected `scan`, `iac`, `governance`, `agent`, `providers`, `sinks` or `plugins`)",
                ));
            }
        }
        let dir = file
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let scan: ScanSection = section(&root, "scan", &loc, &mut problems).unwrap_or_default();
        if scan.batch_size == 0 {
            problems.push(loc.problem("scan.batch_size", "must be at least 1"));
        }
        // Every table inside `[iac]` is a state backend's (`[iac.s3]`, ...): its factory
        // checks it when the scan is prepared, so a mistake in one hides nothing else.
        let mut parts = toml::Table::new();
        let mut backends = BTreeMap::new();
        if let Some(v) = root.get("iac") {
            let mut v = v.clone();
            if let Some(t) = v.as_table_mut() {
                let tables: Vec<String> = t
                    .iter()
                    .filter(|(_, b)| b.is_table())
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in tables {
                    if let Some(b) = t.remove(&k) {
                        backends.insert(k, toml_to_json(&b));
                    }
                }
            }
            parts.insert("iac".into(), v);
        }
        let iac = section::<IacSection>(&parts, "iac", &loc, &mut problems).map(|mut i| {
            i.backends = backends;
            i
        });
        if !root.contains_key("iac") {
            problems.push(loc.problem(
                "",
                "no `[iac]` section: add `[iac]` with `states = [\"path/to/*.tfstate\"]`",
            ));
        } else if iac.as_ref().is_some_and(|i| i.states.is_empty()) {
            problems.push(loc.problem("iac.states", "lists no state file"));
        }
        let iac = iac.unwrap_or_default();
        let governance = section(&root, "governance", &loc, &mut problems).unwrap_or_default();
        let agent: AgentSection = section(&root, "agent", &loc, &mut problems).unwrap_or_default();
        if !(0.0..=0.5).contains(&agent.jitter) {
            problems.push(loc.problem("agent.jitter", "must be between 0 and 0.5"));
        }
        for (name, d) in &agent.intervals {
            if let Err(e) = humantime::parse_duration(d) {
                problems.push(loc.problem(
                    &format!("agent.intervals.{name}"),
                    format!("{} is not a duration (e.g. \"5m\"): {e}", quote_input(d)),
                ));
            }
        }
        if agent.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(loc.problem(
                "agent.listen",
                format!(
                    "{} is not an address like 127.0.0.1:9464",
                    quote_input(&agent.listen)
                ),
            ));
        }
        let providers = components(&root, "providers", &dir, &loc, &mut problems);
        let sinks = components(&root, "sinks", &dir, &loc, &mut problems);
        let plugins = plugin_entries(&root, &loc, &mut problems);
        let declared = root
            .get("providers")
            .and_then(|p| p.as_array())
            .map_or(0, |a| a.len());
        if declared == 0 {
            problems.push(loc.problem(
                "providers",
                "no provider: add a `[[providers]]` entry (e.g. kind = \"inventory\")",
            ));
        } else if !providers.is_empty() && providers.iter().all(|p| !p.enabled) {
            problems.push(loc.problem("providers", "every provider has `enabled = false`"));
        }
        let config = Config {
            file: file.to_path_buf(),
            dir,
            scan,
            iac,
            governance,
            agent,
            providers,
            sinks,
            plugins,
            text: text.to_string(),
        };
        if problems.is_empty() {
            Ok(config)
        } else {
            problems.sort_by_key(|p| p.line.unwrap_or(0));
            Err(fail(problems))
        }
    }

    /// A locator over this config's text, for problems found after parsing.
    pub fn locator(&self) -> Locator {
        Locator::new(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "HOME_DIR").then(|| "/home/x".to_string())
    }

    #[test]
    fn expansion() {
        assert_eq!(expand_env("${HOME_DIR}/a", &env).unwrap(), "/home/x/a");
        assert_eq!(expand_env("${NOPE:-d}", &env).unwrap(), "d");
        assert_eq!(
            expand_env("$${HOME_DIR} $5", &env).unwrap(),
            "${HOME_DIR} $5"
        );
        assert!(expand_env("${NOPE}", &env)
            .unwrap_err()
            .to_string()
            .contains("NOPE"));
        assert!(expand_env("${bad name}", &env).is_err());
    }

    #[test]
    fn every_problem_with_its_line() {
        let text = "[scan]\nbatch_size = 0\n\n[iac]\nstates = [\"${MISSING}\"]\n\n[[providers]]\nname = \"x\"\n\n[[providers]]\nkind = 3\n\n[bogus]\n";
        let e = Config::parse(Path::new("c.toml"), text, &env).unwrap_err();
        let lines: Vec<_> = e
            .problems
            .iter()
            .map(|p| (p.line, p.path.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (Some(2), "scan.batch_size"),
                (Some(5), "iac.states[0]"),
                (Some(7), "providers[0]"),
                (Some(11), "providers[1].kind"),
                (Some(13), "bogus"),
            ],
            "{e}"
        );
        let shown = e.to_string();
        assert!(shown.contains("c.toml:5: `iac.states[0]`: environment variable `MISSING`"));
    }

    #[test]
    fn syntax_error_has_line() {
        let e = Config::parse(Path::new("c.toml"), "[iac]\nstates = [\n\n", &env).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert!(e.problems[0].line.is_some());
        assert!(e.problems[0].message.starts_with("not valid TOML"));
    }

    #[test]
    fn unknown_field_in_section() {
        let e = Config::parse(
            Path::new("c.toml"),
            "[iac]\nstates = [\"a\"]\nstatez = 1\n[[providers]]\nkind = \"inventory\"\n",
            &env,
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert!(e.problems[0].message.contains("statez"));
        assert_eq!(e.problems[0].line, Some(3));
    }
}
