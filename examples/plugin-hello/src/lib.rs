//! `hello`: a driftwatch provider plugin that reports greetings kept as JSON files in a
//! folder. It is the smallest complete third-party provider: config validation, batched
//! emission, cancellation, scopes and errors, exported through the plugin ABI.
//!
//! Every `*.json` file of the configured folder is one `hello_greeting` resource whose id is
//! the file stem and whose attributes are the file's JSON object.

use driftwatch_plugin_sdk::serde_json::{Map, Value};
use driftwatch_plugin_sdk::{
    CollectContext, CollectReport, Emit, Provider, ProviderError, ProviderFactory, ProviderInfo,
    Resource, ResourceKey, Scope, async_trait, export_provider,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Provider name: the `kind` in config, and the `provider` of every resource it reports
/// (Terraform's `registry.terraform.io/acme/hello` maps to it).
pub const PROVIDER: &str = "hello";
/// The one Terraform resource type this provider lists.
pub const GREETING_TYPE: &str = "hello_greeting";

/// Settings of a `[[providers]] kind = "hello"` entry.
// `deny_unknown_fields` turns a typo such as `dirr` into an error naming that key instead
// of a silently ignored setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelloConfig {
    /// Folder of `*.json` greetings, relative to the config file's folder.
    pub dir: PathBuf,
    /// Folder of the config file, added by the host.
    #[serde(default)]
    pub config_dir: Option<PathBuf>,
}

impl HelloConfig {
    /// The greetings folder as the provider reads it.
    fn folder(&self) -> PathBuf {
        // Without `config_dir` (a host calling the plugin directly), the working directory
        // is the only base there is; `join` keeps an absolute `dir` as it is.
        self.config_dir
            .as_deref()
            .unwrap_or(Path::new("."))
            .join(&self.dir)
    }
}

/// Builds `hello` providers from their config table; what `export_provider!` exports.
#[derive(Debug, Clone, Copy, Default)]
pub struct HelloFactory;

/// Lists a folder of JSON greetings as `hello_greeting` resources.
#[derive(Debug)]
pub struct HelloProvider {
    dir: PathBuf,
}

fn config_error(path: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Config {
        path: path.to_string(),
        message: message.into(),
    }
}

fn input_error(source: &Path, message: impl Into<String>) -> ProviderError {
    ProviderError::Input {
        source_name: source.display().to_string(),
        message: message.into(),
    }
}

/// The `*.json` files of `dir`, sorted so that scans and batches are reproducible.
fn greeting_files(dir: &Path) -> Result<Vec<PathBuf>, ProviderError> {
    let entries = std::fs::read_dir(dir).map_err(|e| input_error(dir, e.to_string()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| input_error(dir, e.to_string()))?.path();
        if path.extension().is_some_and(|x| x == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads one greeting; `warnings` receives notes that should not fail the scan.
fn read_greeting(path: &Path, warnings: &mut Vec<String>) -> Result<Resource, ProviderError> {
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| input_error(path, "file name is not valid UTF-8"))?
        .to_string();
    let bytes = std::fs::read(path).map_err(|e| input_error(path, e.to_string()))?;
    let value: Value = driftwatch_plugin_sdk::serde_json::from_slice(&bytes)
        .map_err(|e| input_error(path, format!("not valid JSON: {e}")))?;
    let Value::Object(mut attributes) = value else {
        return Err(input_error(
            path,
            format!("expected a JSON object, found {}", kind_of(&value)),
        ));
    };
    // The file name is the identity Terraform knows; an `id` inside the file cannot
    // override it or the resource would no longer match its declaration.
    if let Some(other) = attributes
        .get("id")
        .filter(|v| v.as_str() != Some(id.as_str()))
    {
        warnings.push(format!(
            "{}: `id` {other} ignored; the file name `{id}` is the id",
            path.display()
        ));
    }
    attributes.insert("id".into(), Value::String(id.clone()));
    let mut resource = Resource::new(ResourceKey::new(PROVIDER, GREETING_TYPE, id));
    resource.attributes = attributes;
    Ok(resource)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl ProviderFactory for HelloFactory {
    type Config = HelloConfig;

    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: PROVIDER.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: vec![GREETING_TYPE.into()],
            config_schema: Some(config_schema()),
        }
    }

    // The SDK already refused unknown keys, a missing `dir` and wrong types; what is left
    // are the checks serde cannot express.
    fn validate(&self, config: &HelloConfig) -> Result<(), ProviderError> {
        if config.dir.as_os_str().is_empty() {
            return Err(config_error(
                "dir",
                "must not be empty: the folder of *.json greetings",
            ));
        }
        let folder = config.folder();
        // Checked here, not in `collect`, so `driftwatch validate` catches a wrong path
        // before any scan.
        if !folder.is_dir() {
            return Err(config_error(
                "dir",
                format!("{} is not a folder", folder.display()),
            ));
        }
        Ok(())
    }

    fn build(&self, config: HelloConfig) -> Result<Box<dyn Provider>, ProviderError> {
        Ok(Box::new(HelloProvider {
            dir: config.folder(),
        }))
    }
}

#[async_trait]
impl Provider for HelloProvider {
    async fn collect(
        &self,
        ctx: &CollectContext,
        out: &mut dyn Emit,
    ) -> Result<CollectReport, ProviderError> {
        let batch_size = ctx.batch_size.max(1);
        let mut warnings = Vec::new();
        let mut batch = Vec::new();
        for path in greeting_files(&self.dir)? {
            if ctx.is_cancelled() {
                return Err(ProviderError::Cancelled);
            }
            batch.push(read_greeting(&path, &mut warnings)?);
            if batch.len() == batch_size {
                out.emit(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            out.emit(batch)?;
        }
        // Every file of the folder was read, so a declared greeting absent here is missing.
        Ok(CollectReport {
            scopes: vec![Scope::complete(PROVIDER, GREETING_TYPE)],
            api_calls: 0,
            warnings,
        })
    }
}

/// The JSON Schema `driftwatch plugins inspect` shows for the provider's settings.
fn config_schema() -> Value {
    let mut dir = Map::new();
    dir.insert("type".into(), "string".into());
    dir.insert(
        "description".into(),
        "Folder of *.json greetings, relative to the config file".into(),
    );
    let mut properties = Map::new();
    properties.insert("dir".into(), Value::Object(dir));
    let mut schema = Map::new();
    schema.insert("type".into(), "object".into());
    schema.insert("required".into(), Value::Array(vec!["dir".into()]));
    schema.insert("properties".into(), Value::Object(properties));
    Value::Object(schema)
}

export_provider!(HelloFactory);

#[cfg(test)]
mod tests {
    use super::*;
    use driftwatch_plugin_sdk::DynProviderFactory;
    use driftwatch_plugin_sdk::abi::{DW_ERROR, DW_OK, DwBytes, MAGIC};
    use driftwatch_plugin_sdk::serde_json::{self, json};
    use std::ffi::{CStr, c_void};
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// A scratch folder per test, so tests can run in parallel.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str, files: &[(&str, &str)]) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("plugin-hello-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for (file, body) in files {
                std::fs::write(dir.join(file), body).unwrap();
            }
            Scratch(dir)
        }

        fn config(&self) -> Value {
            json!({"dir": self.0.display().to_string()})
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The provider never awaits anything pending, but a plain poll loop keeps the test
    /// correct if it ever does.
    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::yield_now();
        }
    }

    #[derive(Default)]
    struct Collected {
        batches: Vec<Vec<Resource>>,
        /// Cancels the context after this many batches, as the host would mid-scan.
        cancel_after: Option<(usize, CollectContext)>,
    }

    impl Emit for Collected {
        fn emit(&mut self, batch: Vec<Resource>) -> Result<(), ProviderError> {
            self.batches.push(batch);
            let due = self.batches.len();
            if let Some((_, ctx)) = self.cancel_after.as_ref().filter(|(n, _)| due >= *n) {
                ctx.cancel();
            }
            Ok(())
        }
    }

    /// What the host does with a `[[providers]]` table: parse, validate, build.
    fn configured(config: &Value) -> Result<Box<dyn Provider>, ProviderError> {
        HelloFactory.create(config)
    }

    fn five_greetings(name: &str) -> Scratch {
        Scratch::new(
            name,
            &[
                ("a.json", r#"{"message":"hello"}"#),
                ("b.json", r#"{"message":"bonjour","language":"fr"}"#),
                ("c.json", r#"{"message":"hola"}"#),
                ("d.json", r#"{"message":"ciao"}"#),
                ("e.json", r#"{"message":"hallo"}"#),
                ("notes.txt", "not a greeting"),
            ],
        )
    }

    /// The key a config is refused at. A match, not `unwrap_err`: `dyn Provider` is not
    /// `Debug`.
    fn refused_at(config: &Value) -> String {
        match configured(config) {
            Err(ProviderError::Config { path, .. }) => path,
            Err(other) => panic!("expected a config error, got {other:?}"),
            Ok(_) => panic!("{config} was accepted"),
        }
    }

    #[test]
    fn info_names_the_provider_and_its_type() {
        let info = HelloFactory.info();
        assert_eq!(info.name, "hello");
        assert_eq!(info.resource_types, vec!["hello_greeting".to_string()]);
        assert!(info.config_schema.is_some());
    }

    #[test]
    fn config_errors_name_the_key() {
        let s = Scratch::new("config", &[]);
        assert_eq!(refused_at(&json!({})), "dir");
        assert_eq!(refused_at(&json!({"dir": 3})), "dir");
        assert_eq!(refused_at(&json!({"dir": ""})), "dir");
        let mut typo = s.config();
        typo["dirr"] = json!("x");
        assert_eq!(refused_at(&typo), "dirr");
        let mut bad_base = s.config();
        bad_base["config_dir"] = json!(false);
        assert_eq!(refused_at(&bad_base), "config_dir");
        let gone = json!({"dir": s.0.join("nowhere").display().to_string()});
        assert_eq!(refused_at(&gone), "dir");
        assert_eq!(refused_at(&json!([])), "");
        assert_eq!(refused_at(&json!("greetings")), "");
    }

    #[test]
    fn dir_is_relative_to_config_dir() {
        // A greeting beside the config file would be listed if `dir` were ignored.
        let s = Scratch::new("relative", &[("decoy.json", "{}")]);
        std::fs::create_dir(s.0.join("greetings")).unwrap();
        std::fs::write(s.0.join("greetings/hi.json"), "{}").unwrap();
        let p = configured(&json!({
            "dir": "greetings",
            "config_dir": s.0.display().to_string(),
        }))
        .unwrap();
        let mut out = Collected::default();
        block_on(p.collect(&CollectContext::new(10), &mut out)).unwrap();
        let ids: Vec<&str> = out
            .batches
            .iter()
            .flatten()
            .map(|r| r.key.id.as_str())
            .collect();
        assert_eq!(ids, vec!["hi"]);
    }

    #[test]
    fn emits_every_greeting_in_bounded_batches() {
        let s = five_greetings("batches");
        let p = configured(&s.config()).unwrap();
        let mut out = Collected::default();
        let report = block_on(p.collect(&CollectContext::new(2), &mut out)).unwrap();

        let sizes: Vec<usize> = out.batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        let all: Vec<&Resource> = out.batches.iter().flatten().collect();
        let ids: Vec<&str> = all.iter().map(|r| r.key.id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b", "c", "d", "e"]);
        assert_eq!(all[1].key, ResourceKey::new("hello", "hello_greeting", "b"));
        assert_eq!(
            Value::Object(all[1].attributes.clone()),
            json!({"id": "b", "message": "bonjour", "language": "fr"})
        );
        assert_eq!(
            report.scopes,
            vec![Scope::complete("hello", "hello_greeting")]
        );
        assert!(report.warnings.is_empty());
    }

    #[test]
    fn an_empty_folder_is_a_complete_empty_listing() {
        let s = Scratch::new("empty", &[]);
        let p = configured(&s.config()).unwrap();
        let mut out = Collected::default();
        let report = block_on(p.collect(&CollectContext::new(10), &mut out)).unwrap();
        assert!(out.batches.is_empty());
        assert!(report.scopes[0].complete);
    }

    #[test]
    fn the_file_name_wins_over_an_id_inside() {
        let s = Scratch::new("id", &[("real.json", r#"{"id":"fake","message":"hi"}"#)]);
        let p = configured(&s.config()).unwrap();
        let mut out = Collected::default();
        let report = block_on(p.collect(&CollectContext::new(10), &mut out)).unwrap();
        assert_eq!(out.batches[0][0].key.id, "real");
        assert_eq!(out.batches[0][0].attributes["id"], json!("real"));
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    }

    #[test]
    fn unreadable_greetings_name_the_file() {
        for (name, body, expect) in [
            ("broken", "{\"message\": ", "not valid JSON"),
            ("list", "[1, 2]", "found an array"),
        ] {
            let s = Scratch::new(name, &[("ok.json", "{}"), ("bad.json", body)]);
            let p = configured(&s.config()).unwrap();
            let err = block_on(p.collect(&CollectContext::new(10), &mut Collected::default()))
                .unwrap_err();
            match err {
                ProviderError::Input {
                    source_name,
                    message,
                } => {
                    assert!(source_name.ends_with("bad.json"), "{source_name}");
                    assert!(message.contains(expect), "{message}");
                }
                other => panic!("expected an input error, got {other:?}"),
            }
        }
    }

    #[test]
    fn cancellation_stops_at_the_next_file() {
        let s = five_greetings("cancel");
        let p = configured(&s.config()).unwrap();
        let ctx = CollectContext::new(2);
        let mut out = Collected {
            cancel_after: Some((1, ctx.clone())),
            ..Collected::default()
        };
        let err = block_on(p.collect(&ctx, &mut out)).unwrap_err();
        assert_eq!(err, ProviderError::Cancelled);
        assert_eq!(out.batches.len(), 1);
    }

    /// Copies and releases a buffer the way the host does.
    fn take(free: unsafe extern "C" fn(DwBytes), b: DwBytes) -> Value {
        assert!(!b.ptr.is_null());
        // SAFETY: the plugin returned `len` readable bytes at `ptr`.
        let bytes = unsafe { std::slice::from_raw_parts(b.ptr, b.len) }.to_vec();
        // SAFETY: returned by this plugin, freed once.
        unsafe { free(b) };
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn the_exported_plugin_speaks_the_abi() {
        let s = five_greetings("abi");
        let header = driftwatch_plugin_v1();
        // SAFETY: the entry point returns a static header.
        let h = unsafe { &*header };
        assert_eq!(h.magic, MAGIC);
        // SAFETY: NUL-terminated static strings.
        assert_eq!(unsafe { CStr::from_ptr(h.name) }.to_str().unwrap(), "hello");
        // SAFETY: static table.
        let t = unsafe { &*h.table };
        assert_eq!(t.size as usize, std::mem::size_of_val(t));

        let mut out = DwBytes::EMPTY;
        // SAFETY: valid out pointer.
        assert_eq!(unsafe { (t.info.unwrap())(&mut out) }, DW_OK);
        assert_eq!(
            take(t.free_bytes.unwrap(), out)["resource_types"],
            json!(["hello_greeting"])
        );

        let bad = br#"{"colour":"blue"}"#;
        let mut instance: *mut c_void = std::ptr::null_mut();
        let mut err = DwBytes::EMPTY;
        // SAFETY: valid pointers for the call.
        let status =
            unsafe { (t.create.unwrap())(bad.as_ptr(), bad.len(), &mut instance, &mut err) };
        assert_eq!(status, DW_ERROR);
        let e = take(t.free_bytes.unwrap(), err);
        assert_eq!(
            (e["kind"].clone(), e["path"].clone()),
            (json!("config"), json!("colour"))
        );

        let config = serde_json::to_vec(&s.config()).unwrap();
        let mut err = DwBytes::EMPTY;
        // SAFETY: as above.
        let status =
            unsafe { (t.create.unwrap())(config.as_ptr(), config.len(), &mut instance, &mut err) };
        assert_eq!(status, DW_OK);

        let request = br#"{"batch_size":2}"#;
        let mut collection: *mut c_void = std::ptr::null_mut();
        // SAFETY: `instance` came from create.
        let status = unsafe {
            (t.collect_start.unwrap())(
                instance,
                request.as_ptr(),
                request.len(),
                &mut collection,
                &mut err,
            )
        };
        assert_eq!(status, DW_OK);
        let mut sizes = Vec::new();
        let last = loop {
            let mut out = DwBytes::EMPTY;
            // SAFETY: `collection` came from collect_start.
            assert_eq!(
                unsafe { (t.collect_next.unwrap())(collection, &mut out) },
                DW_OK
            );
            let msg = take(t.free_bytes.unwrap(), out);
            if msg["type"] != "batch" {
                break msg;
            }
            let resources = msg["resources"].as_array().unwrap();
            assert_eq!(resources[0]["provider"], "hello");
            sizes.push(resources.len());
        };
        assert_eq!(sizes, vec![2, 2, 1]);
        assert_eq!(last["type"], "done");
        assert_eq!(
            last["report"]["scopes"],
            json!([{"provider": "hello", "type": "hello_greeting", "complete": true}])
        );
        // SAFETY: each released once, collection before instance.
        unsafe {
            (t.collect_free.unwrap())(collection);
            (t.destroy.unwrap())(instance);
        }
    }
}
