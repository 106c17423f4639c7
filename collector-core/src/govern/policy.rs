//! Rego policies evaluated with regorus, in conftest's conventions: rules named `deny`,
//! `deny_*`, `violation` or `violation_*` make a violation, `warn` / `warn_*` add a note,
//! and `exception` names the rules (`deny_<name>` → `<name>`) it exempts.
//!
//! A policy is input too: it must not be able to crash or hang a scan. regorus detects a
//! rule that depends on itself, but not a function that calls itself, and evaluates by
//! native recursion, so a recursive function would overflow the stack and abort the
//! process. Functions that call themselves (directly or through others) are refused at
//! load, as OPA refuses them, and so are calls and rule references nested deeper than
//! [`MAX_CALL_DEPTH`]; evaluation runs on a thread whose stack holds that depth, under a
//! time limit, and each rule's messages are bounded.

use driftwatch_plugin_sdk::input::{clean_text, read_regular_text, ReadError, MIB};
use regorus::unstable::{Expr, Literal, Query, Rule, RuleHead};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Largest policy file read (regorus refuses larger ones too).
pub const MAX_POLICY_BYTES: u64 = MIB;

/// Deepest chain of function calls and rule references a policy may build.
pub const MAX_CALL_DEPTH: usize = 100;

/// Longest one package may take to judge one finding.
pub const EVAL_TIME_LIMIT: Duration = Duration::from_secs(5);

/// Messages kept per rule and finding; more are counted, not listed.
pub const MAX_MESSAGES: usize = 20;

/// Characters kept of one message.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Stack of the evaluation thread: room for [`MAX_CALL_DEPTH`] levels with a wide margin
/// (each level of a call is a few dozen native frames in regorus). Only the pages used
/// are ever committed.
const EVAL_STACK_BYTES: usize = 256 << 20;

/// Why policies could not be loaded or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A folder could not be listed.
    #[error("cannot read policy {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A policy file could not be read (or is not a regular file, or is too large).
    #[error("policy {path} {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: ReadError,
    },
    /// A policy does not parse.
    #[error("policy {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A function calls itself, directly or through other functions.
    #[error(
        "policy {path}:{line}: function `{function}` calls itself ({cycle}); \
         Rego does not allow recursion: rewrite it with a comprehension or `walk`"
    )]
    Recursion {
        /// The file defining the first function of the cycle.
        path: PathBuf,
        /// Its line.
        line: u32,
        /// The function.
        function: String,
        /// The calls that lead back to it: `data.p.f → data.p.g → data.p.f`.
        cycle: String,
    },
    /// Calls and rule references nest deeper than [`MAX_CALL_DEPTH`].
    #[error(
        "policy {path}:{line}: `{rule}` nests calls and rule references {depth} deep \
         (the limit is {limit})"
    )]
    TooDeep {
        /// The file defining the outermost rule.
        path: PathBuf,
        /// Its line.
        line: u32,
        /// The rule or function.
        rule: String,
        /// Its depth.
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// Evaluation failed (a runtime error in a rule, or the time limit).
    #[error("evaluating {query} ({files}): {message}")]
    Eval {
        /// What was evaluated.
        query: String,
        /// The files of its package.
        files: String,
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

/// A job for the evaluation thread.
type Job = Box<dyn FnOnce(&mut regorus::Engine) + Send>;

/// The thread that owns the engine: its stack is sized for [`MAX_CALL_DEPTH`], which the
/// callers' threads (a Tokio worker has 2 MiB) are not.
struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start(mut engine: regorus::Engine) -> std::io::Result<Worker> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("policy-eval".into())
            .stack_size(EVAL_STACK_BYTES)
            .spawn(move || {
                for job in rx {
                    job(&mut engine);
                }
            })?;
        Ok(Worker {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `work` on the engine's thread and waits for its result.
    fn run<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce(&mut regorus::Engine) -> T + Send + 'static,
    ) -> Result<T, PolicyError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let stopped = || PolicyError::Eval {
            query: what.to_string(),
            files: "all policies".into(),
            message: "the policy engine stopped".into(),
        };
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(Box::new(move |engine| {
                let _ = tx.send(work(engine));
            }))
            .map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A loaded set of policies.
pub struct PolicySet {
    worker: Worker,
    packages: Vec<String>,
    /// The files defining each package, for messages.
    files: BTreeMap<String, Vec<PathBuf>>,
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
                // Folders named `*.rego` hold policies of their own, found by the glob.
                if !e.is_dir() {
                    out.push(e);
                }
            }
        } else {
            // A file, or something that is not one: reading it says which.
            out.push(p.clone());
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
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .get("msg")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
        other => other.to_string(),
    };
    // Messages reach terminals (the table format) and logs.
    clean_text(&text, MAX_MESSAGE_CHARS).into_owned()
}

/// Messages a rule's value carries: a set of messages, one message, or `true`; at most
/// [`MAX_MESSAGES`], and a count of the rest.
fn messages(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => {
            let mut out: Vec<String> = items.iter().take(MAX_MESSAGES).map(message).collect();
            if items.len() > MAX_MESSAGES {
                out.push(format!(
                    "… and {} more messages",
                    items.len() - MAX_MESSAGES
                ));
            }
            out
        }
        Value::Bool(true) => vec![String::new()],
        Value::Bool(false) | Value::Null => Vec::new(),
        other => vec![message(other)],
    }
}

/// A regorus message as shown: it quotes policy lines, which may hold control characters.
fn engine_message(e: impl std::fmt::Display) -> String {
    let text = e.to_string();
    let mut out: Vec<String> = text
        .lines()
        .take(40)
        .map(|l| clean_text(l, 300).into_owned())
        .collect();
    if text.lines().nth(40).is_some() {
        out.push("…".into());
    }
    out.join("\n")
}

/// One rule or function of the call graph.
struct Node {
    function: bool,
    file: PathBuf,
    line: u32,
    /// Paths of the functions it calls, resolved.
    calls: BTreeSet<String>,
    /// Paths it references, resolved but not yet matched to rules.
    refs: BTreeSet<String>,
}

/// What one module's expressions reference: calls and data paths, as written.
#[derive(Default)]
struct Refs {
    calls: Vec<String>,
    paths: Vec<String>,
}

impl Refs {
    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::Call { fcn, params, .. } => {
                if let Ok(p) = regorus::utils::get_path_string(fcn, None) {
                    self.calls.push(p);
                }
                for p in params {
                    self.expr(p);
                }
            }
            Expr::Var { span, .. } => self.paths.push(span.text().to_string()),
            Expr::RefDot { .. } | Expr::RefBrack { .. } => {
                if let Ok(p) = regorus::utils::get_path_string(e, None) {
                    self.paths.push(p);
                }
                self.ref_parts(e);
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                for i in items {
                    self.expr(i);
                }
            }
            Expr::Object { fields, .. } => {
                for (_, k, v) in fields {
                    self.expr(k);
                    self.expr(v);
                }
            }
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                self.expr(term);
                self.query(query);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                self.expr(key);
                self.expr(value);
                self.query(query);
            }
            Expr::UnaryExpr { expr, .. } => self.expr(expr),
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. }
            | Expr::AssignExpr { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    self.expr(k);
                }
                self.expr(value);
                self.expr(collection);
            }
            _ => {}
        }
    }

    /// The parts of a reference that are expressions of their own: bracket indices, and
    /// a base that is not a name (`f(x).y`).
    fn ref_parts(&mut self, e: &Expr) {
        match e {
            Expr::RefDot { refr, .. } => self.ref_parts(refr),
            Expr::RefBrack { refr, index, .. } => {
                self.expr(index);
                self.ref_parts(refr);
            }
            Expr::Var { .. } => {}
            other => self.expr(other),
        }
    }

    fn query(&mut self, q: &Query) {
        for stmt in &q.stmts {
            match &stmt.literal {
                Literal::SomeVars { .. } => {}
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    if let Some(k) = key {
                        self.expr(k);
                    }
                    self.expr(value);
                    self.expr(collection);
                }
                Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => self.expr(expr),
                Literal::Every { domain, query, .. } => {
                    self.expr(domain);
                    self.query(query);
                }
            }
            for w in &stmt.with_mods {
                // `with f as g` makes calls of `f` call `g`.
                if let Ok(p) = regorus::utils::get_path_string(&w.r#as, None) {
                    self.calls.push(p);
                }
                self.expr(&w.r#as);
            }
        }
    }
}

/// Every rule and function of the loaded modules, with what each calls and references.
fn call_graph(engine: &mut regorus::Engine) -> BTreeMap<String, Node> {
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for module in engine.get_modules().iter() {
        let Ok(pkg) = regorus::utils::get_path_string(&module.package.refr, Some("data")) else {
            continue;
        };
        let file = PathBuf::from(module.package.span.source.file());
        // Import aliases of this module: `lib` → `data.lib`.
        let mut imports: BTreeMap<String, String> = BTreeMap::new();
        for i in &module.imports {
            let Ok(target) = regorus::utils::get_path_string(&i.refr, None) else {
                continue;
            };
            if !target.starts_with("data.") {
                continue;
            }
            let alias = match &i.r#as {
                Some(a) => a.text().to_string(),
                None => target.rsplit('.').next().unwrap_or_default().to_string(),
            };
            imports.insert(alias, target);
        }
        let resolve = |p: &str| -> String {
            if p == "data" || p.starts_with("data.") {
                return p.to_string();
            }
            let (first, rest) = p.split_once('.').map_or((p, ""), |(a, b)| (a, b));
            match imports.get(first) {
                Some(t) if rest.is_empty() => t.clone(),
                Some(t) => format!("{t}.{rest}"),
                None => format!("{pkg}.{p}"),
            }
        };
        for rule in module.policy.iter() {
            let mut refs = Refs::default();
            let (head, function, line) = match rule.as_ref() {
                Rule::Spec { head, bodies, span } => {
                    let (refr, function) = match head {
                        RuleHead::Compr { refr, assign, .. } => {
                            if let Some(a) = assign {
                                refs.expr(&a.value);
                            }
                            (refr, false)
                        }
                        RuleHead::Set { refr, key, .. } => {
                            if let Some(k) = key {
                                refs.expr(k);
                            }
                            (refr, false)
                        }
                        RuleHead::Func {
                            refr, args, assign, ..
                        } => {
                            for a in args {
                                refs.expr(a);
                            }
                            if let Some(a) = assign {
                                refs.expr(&a.value);
                            }
                            (refr, true)
                        }
                    };
                    for b in bodies {
                        if let Some(a) = &b.assign {
                            refs.expr(&a.value);
                        }
                        refs.query(&b.query);
                    }
                    (refr, function, span.line)
                }
                Rule::Default {
                    refr,
                    args,
                    value,
                    span,
                    ..
                } => {
                    refs.expr(value);
                    (refr, !args.is_empty(), span.line)
                }
            };
            let Ok(path) = regorus::utils::get_path_string(head, Some(&pkg)) else {
                continue;
            };
            let node = nodes.entry(path).or_insert_with(|| Node {
                function,
                file: file.clone(),
                line,
                calls: BTreeSet::new(),
                refs: BTreeSet::new(),
            });
            node.calls.extend(refs.calls.iter().map(|c| resolve(c)));
            node.refs.extend(refs.paths.iter().map(|c| resolve(c)));
        }
    }
    nodes
}

/// Refuses functions that call themselves and chains deeper than [`MAX_CALL_DEPTH`].
fn check_calls(nodes: &BTreeMap<String, Node>) -> Result<(), PolicyError> {
    // Edges between functions only: a cycle through a rule is caught by regorus when it is
    // evaluated, as a clear error.
    let calls: BTreeMap<&str, Vec<&str>> = nodes
        .iter()
        .filter(|(_, n)| n.function)
        .map(|(name, n)| {
            let to = n
                .calls
                .iter()
                .filter(|c| nodes.get(c.as_str()).is_some_and(|t| t.function))
                .map(String::as_str)
                .collect();
            (name.as_str(), to)
        })
        .collect();
    if let Some(cycle) = find_cycle(&calls) {
        let first = &nodes[cycle[0]];
        return Err(PolicyError::Recursion {
            path: first.file.clone(),
            line: first.line,
            function: cycle[0].trim_start_matches("data.").to_string(),
            cycle: cycle
                .iter()
                .map(|c| c.trim_start_matches("data."))
                .collect::<Vec<_>>()
                .join(" → "),
        });
    }
    // Every edge, calls and references alike, for the depth of native recursion.
    let names: Vec<&str> = nodes.keys().map(String::as_str).collect();
    let all: BTreeMap<&str, Vec<&str>> = nodes
        .iter()
        .map(|(name, n)| {
            let mut to: BTreeSet<&str> = n
                .calls
                .iter()
                .filter(|c| nodes.contains_key(c.as_str()))
                .map(String::as_str)
                .collect();
            for r in &n.refs {
                for t in &names {
                    let hit = *t == r
                        || t.strip_prefix(r.as_str())
                            .is_some_and(|s| s.starts_with('.'))
                        || r.strip_prefix(*t).is_some_and(|s| s.starts_with('.'));
                    if hit && *t != name {
                        to.insert(t);
                    }
                }
            }
            (name.as_str(), to.into_iter().collect())
        })
        .collect();
    let depths = depths(&all);
    if let Some((name, depth)) = depths
        .iter()
        .filter(|(_, d)| **d > MAX_CALL_DEPTH)
        .max_by_key(|(_, d)| **d)
    {
        let n = &nodes[*name];
        return Err(PolicyError::TooDeep {
            path: n.file.clone(),
            line: n.line,
            rule: name.trim_start_matches("data.").to_string(),
            depth: *depth,
            limit: MAX_CALL_DEPTH,
        });
    }
    Ok(())
}

/// A cycle of the graph, starting and ending at the same node; iterative, since a policy
/// may chain thousands of functions.
fn find_cycle<'a>(graph: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark: BTreeMap<&str, Mark> = graph.keys().map(|k| (*k, Mark::New)).collect();
    for &start in graph.keys() {
        if mark[start] != Mark::New {
            continue;
        }
        // (node, index of the next edge to follow)
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        mark.insert(start, Mark::Open);
        while let Some((node, next)) = stack.last_mut() {
            let edges = &graph[*node];
            if *next == edges.len() {
                mark.insert(*node, Mark::Done);
                stack.pop();
                continue;
            }
            let to = edges[*next];
            *next += 1;
            match mark.get(to).copied() {
                Some(Mark::New) => {
                    mark.insert(to, Mark::Open);
                    stack.push((to, 0));
                }
                Some(Mark::Open) => {
                    let from = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[from..].iter().map(|(n, _)| *n).collect();
                    cycle.push(to);
                    return Some(cycle);
                }
                _ => {}
            }
        }
    }
    None
}

/// Longest chain of edges starting at each node (1 for a node without edges); an edge
/// back into the chain being followed counts as nothing. Iterative, like [`find_cycle`].
fn depths<'a>(graph: &BTreeMap<&'a str, Vec<&'a str>>) -> BTreeMap<&'a str, usize> {
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    let mut open: BTreeSet<&str> = BTreeSet::new();
    for &start in graph.keys() {
        if depth.contains_key(start) {
            continue;
        }
        let mut stack: Vec<(&str, usize, usize)> = vec![(start, 0, 1)];
        open.insert(start);
        while let Some((node, next, best)) = stack.last_mut() {
            let edges = &graph[*node];
            if *next == edges.len() {
                let (node, best) = (*node, *best);
                depth.insert(node, best);
                open.remove(node);
                stack.pop();
                if let Some((_, _, parent)) = stack.last_mut() {
                    *parent = (*parent).max(best + 1);
                }
                continue;
            }
            let to = edges[*next];
            *next += 1;
            if let Some(d) = depth.get(to) {
                *best = (*best).max(d + 1);
            } else if !open.contains(to) {
                open.insert(to);
                stack.push((to, 0, 1));
            }
        }
    }
    depth
}

/// Turns an evaluation failure into a message naming what ran out.
fn eval_message(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    if text.contains("exceeded time limit") {
        format!(
            "took longer than the {} s limit (a policy must judge one finding in that time)",
            EVAL_TIME_LIMIT.as_secs()
        )
    } else {
        engine_message(text)
    }
}

impl PolicySet {
    /// Loads every `.rego` file under `paths`; `rego_v0` accepts pre-1.0 syntax.
    pub fn load(paths: &[PathBuf], rego_v0: bool) -> Result<PolicySet, PolicyError> {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(rego_v0);
        engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: EVAL_TIME_LIMIT,
            check_interval: NonZeroU32::new(64).expect("non-zero"),
        });
        let mut packages = BTreeSet::new();
        let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        let mut tests = Vec::new();
        for file in rego_files(paths)? {
            let source =
                read_regular_text(&file, MAX_POLICY_BYTES).map_err(|source| PolicyError::Read {
                    path: file.clone(),
                    source,
                })?;
            engine
                .add_policy(file.display().to_string(), source.clone())
                .map_err(|e| PolicyError::Parse {
                    path: file.clone(),
                    message: engine_message(e),
                })?;
            let Some(pkg) = package_of(&source) else {
                continue;
            };
            files.entry(pkg.clone()).or_default().push(file.clone());
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
        check_calls(&call_graph(&mut engine))?;
        let worker = Worker::start(engine).map_err(|source| PolicyError::Io {
            path: paths.first().cloned().unwrap_or_default(),
            source,
        })?;
        Ok(PolicySet {
            worker,
            packages: packages.into_iter().collect(),
            files,
            tests,
        })
    }

    /// Packages whose rules are applied to findings.
    pub fn packages(&self) -> &[String] {
        &self.packages
    }

    fn files_of(&self, query: &str) -> String {
        let mut pkg = query;
        // A rule's query names its package's files.
        while !self.files.contains_key(pkg) {
            match pkg.rsplit_once('.') {
                Some((p, _)) => pkg = p,
                None => return "no file".into(),
            }
        }
        self.files[pkg]
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Evaluates each query in turn against `input` on the engine's thread.
    fn queries(
        &self,
        input: Option<String>,
        queries: Vec<String>,
    ) -> Result<Vec<Option<Value>>, PolicyError> {
        let what = queries.first().cloned().unwrap_or_default();
        let outcome = self.worker.run(&what, move |engine| {
            let value = match input {
                Some(text) => match regorus::Value::from_json_str(&text) {
                    Ok(v) => v,
                    Err(e) => return Err(("input".to_string(), engine_message(e))),
                },
                None => regorus::Value::new_object(),
            };
            engine.set_input(value);
            let mut out = Vec::with_capacity(queries.len());
            for q in queries {
                let results = match engine.eval_query(q.clone(), false) {
                    Ok(r) => r,
                    Err(e) => return Err((q, eval_message(&e))),
                };
                let value = results
                    .result
                    .into_iter()
                    .next()
                    .and_then(|r| r.expressions.into_iter().next())
                    .map(|expr| serde_json::to_value(&expr.value))
                    .transpose()
                    .map_err(|e| (q.clone(), e.to_string()))?;
                out.push(value);
            }
            Ok(out)
        })?;
        outcome.map_err(|(query, message)| PolicyError::Eval {
            files: self.files_of(&query),
            query,
            message,
        })
    }

    /// Applies every package's rules to one input document.
    pub fn decide(&mut self, input: &Value) -> Result<Decision, PolicyError> {
        let results = self.queries(Some(input.to_string()), self.packages.clone())?;
        let mut d = Decision::default();
        for (pkg, result) in self.packages.iter().zip(results) {
            let Some(Value::Object(rules)) = result else {
                continue;
            };
            let short = pkg.strip_prefix("data.").unwrap_or(pkg).to_string();
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
        let queries: Vec<String> = self
            .tests
            .iter()
            .map(|(pkg, name, _)| format!("{pkg}.{name}"))
            .collect();
        let results = self.queries(None, queries.clone())?;
        Ok(self
            .tests
            .iter()
            .zip(queries)
            .zip(results)
            .map(|(((_, _, file), q), r)| (q, file.clone(), matches!(r, Some(Value::Bool(true)))))
            .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(files: &[(&str, &str)]) -> Result<PolicySet, PolicyError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        PolicySet::load(&[dir.path().to_path_buf()], false)
    }

    #[test]
    fn recursion_is_refused_at_load() {
        let direct = "package r\nf(x) := y if { y := f(x) }\ndeny contains \"m\" if { f(1) }\n";
        let e = load(&[("r.rego", direct)]).err().expect("refused");
        assert!(matches!(e, PolicyError::Recursion { line: 2, .. }), "{e}");
        assert!(e.to_string().contains("r.f → r.f"), "{e}");
        assert!(e.to_string().contains("r.rego:2"), "{e}");
        let mutual = "package r\nf(x) := y if { y := g(x) }\ng(x) := y if { y := f(x) }\n\
                      deny contains \"m\" if { f(1) }\n";
        let e = load(&[("r.rego", mutual)]).err().expect("refused");
        assert!(e.to_string().contains("r.f → r.g → r.f"), "{e}");
        // Bounded recursion is recursion too, as in OPA.
        let bounded =
            "package r\nf(n) := 0 if { n <= 0 }\nf(n) := y if { n > 0; y := f(n - 1) + 1 }\n\
                       deny contains \"m\" if { f(100000) > 0 }\n";
        assert!(matches!(
            load(&[("r.rego", bounded)]).err(),
            Some(PolicyError::Recursion { .. })
        ));
        // Across packages, through an import alias.
        let a = "package a\nimport data.b\nf(x) := b.g(x)\n";
        let b = "package b\nimport data.a as other\ng(x) := other.f(x)\n";
        assert!(matches!(
            load(&[("a.rego", a), ("b.rego", b)]).err(),
            Some(PolicyError::Recursion { .. })
        ));
    }

    #[test]
    fn deep_chains_are_refused_and_allowed_depth_evaluates() {
        let chain = |n: usize| {
            let mut p = String::from("package c\nf0(x) := x\n");
            for i in 1..n {
                p.push_str(&format!("f{i}(x) := f{}(x)\n", i - 1));
            }
            p.push_str(&format!(
                "deny contains \"deep\" if {{ f{}(1) == 1 }}\n",
                n - 1
            ));
            p
        };
        let e = load(&[("c.rego", &chain(MAX_CALL_DEPTH + 5))])
            .err()
            .expect("refused");
        assert!(matches!(e, PolicyError::TooDeep { .. }), "{e}");
        // At the limit, evaluation fits the evaluation thread's stack.
        let mut set = load(&[("c.rego", &chain(MAX_CALL_DEPTH - 1))]).unwrap();
        let d = set.decide(&json!({})).unwrap();
        assert_eq!(d.denied, ["c.deny: deep"]);
    }

    #[test]
    fn a_rule_that_depends_on_itself_is_an_error_not_an_abort() {
        let p = "package r\nx if { y }\ny if { x }\ndeny contains \"m\" if { x }\n";
        let mut set = load(&[("r.rego", p)]).unwrap();
        let e = set.decide(&json!({})).unwrap_err();
        assert!(e.to_string().contains("recursion"), "{e}");
        assert!(e.to_string().contains("r.rego"), "{e}");
    }

    #[test]
    fn evaluation_time_is_bounded() {
        // Ten billion iterations that collect nothing: time, not memory, runs out.
        let p = "package slow\ndeny contains \"m\" if { some x in numbers.range(1, 100000); \
                 some y in numbers.range(1, 100000); x == y + 200000 }\n";
        let mut set = load(&[("slow.rego", p)]).unwrap();
        let e = set.decide(&json!({})).unwrap_err().to_string();
        assert!(e.contains("took longer than the 5 s limit"), "{e}");
        assert!(e.contains("slow.rego"), "{e}");
    }

    #[test]
    fn messages_are_bounded_and_escaped() {
        let p = "package m\ndeny contains sprintf(\"%d\", [x]) if { some x in numbers.range(1, 5000) }\n\
                 warn contains concat(\"\", [\"\\u001b[31m\", concat(\"\", [\"a\" | some _ in numbers.range(1, 10000)])])\n";
        let mut set = load(&[("m.rego", p)]).unwrap();
        let d = set.decide(&json!({})).unwrap();
        assert_eq!(d.denied.len(), MAX_MESSAGES + 1);
        assert!(d.denied.last().unwrap().ends_with("and 4980 more messages"));
        assert_eq!(d.warnings.len(), 1);
        let w = &d.warnings[0];
        assert!(w.len() < MAX_MESSAGE_CHARS + 100, "{}", w.len());
        assert!(w.starts_with("m.warn: \\u{1b}[31maaa"), "{w}");
        assert!(!w.contains('\u{1b}'));
    }

    #[test]
    fn fifos_and_devices_in_a_policy_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("p.rego");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = PolicySet::load(&[dir.path().to_path_buf()], false)
            .err()
            .expect("refused");
        assert!(
            e.to_string().contains("is a FIFO, not a regular file"),
            "{e}"
        );
        let e = PolicySet::load(&[PathBuf::from("/dev/zero")], false)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("a character device"), "{e}");
        let big = dir.path().join("big");
        std::fs::create_dir(&big).unwrap();
        std::fs::write(
            big.join("big.rego"),
            "#".repeat(MAX_POLICY_BYTES as usize + 1),
        )
        .unwrap();
        let e = PolicySet::load(&[big], false).err().expect("refused");
        assert!(
            e.to_string().contains("larger than the limit of 1 MiB"),
            "{e}"
        );
    }
}
