//! Helpers shared by driftwatch's workspace-level end-to-end tests.

#![warn(missing_docs)]

pub mod arm_fixture;
pub mod aws_fixture;
pub mod azurite;
pub mod gce_fixture;
pub mod gcs;
pub mod moto;

use driftwatch_core::config::Config;
use driftwatch_core::scan;
use driftwatch_plugin_sdk::ScanReport;
use indicatif::{MultiProgress, ProgressDrawTarget};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A plugin cdylib of this workspace (`driftwatch-plugin-aws` gives `driftwatch_plugin_aws`),
/// as cargo built it for this test run.
///
/// The test crate depends on the plugin crates, so cargo builds their cdylibs into the
/// same `deps/` folder as the test executables, with the profile and features of this run.
pub fn plugin_lib(lib: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let p = exe
        .parent()
        .expect("a test executable lives in a folder")
        .join(format!("lib{lib}.so"));
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// A folder of test data under `tests/fixtures/`.
pub fn fixtures(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(sub)
}

/// Writes `text` as `driftwatch.toml` in `dir` and runs one scan of it in-process, on a
/// runtime of its own, without progress bars.
pub fn scan_config(dir: &Path, text: &str) -> ScanReport {
    let path = dir.join("driftwatch.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::parse(&path, text, &|_| None).unwrap();
    let prepared = scan::prepare(config, &driftwatch::components(), &[]).unwrap();
    let hidden = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(scan::run(prepared, &hidden)).unwrap().report
}

/// One HTTP/1.1 request as the fixture servers read it.
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Header names (lowercased) and values.
    pub headers: Vec<(String, String)>,
    /// The body, `Content-Length` bytes of it.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The value of header `name` (lowercase), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves every connection `listener` accepts with `serve`, each on a thread of its own, for
/// as long as the test process runs: the fixture servers' accept loop.
pub fn accept_each(listener: TcpListener, serve: impl Fn(TcpStream) + Send + Sync + 'static) {
    let serve = std::sync::Arc::new(serve);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let serve = serve.clone();
            std::thread::spawn(move || serve(conn));
        }
    });
}

/// Writes one HTTP/1.1 response with a `Content-Length`; false once the client is gone.
pub fn write_response(
    conn: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
) -> bool {
    let reason = if status < 400 { "OK" } else { "Error" };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).is_ok() && conn.write_all(body).is_ok()
}

/// Reads the next request of a keep-alive connection; `None` once the client closed it.
pub fn read_request(reader: &mut BufReader<TcpStream>) -> Option<HttpRequest> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(HttpRequest {
        method,
        target,
        headers,
        body,
    })
}

/// The state backends of a scan whose `[iac.<scheme>]` table is `settings`, built through
/// the binary's own factories.
pub fn backends(
    scheme: &str,
    settings: serde_json::Value,
) -> driftwatch_core::iac::remote::Backends {
    let components = driftwatch::components();
    let factory = components.backend(scheme).expect("a built-in backend");
    let backend = factory
        .create(Some(&settings), Path::new("."))
        .expect("valid backend settings");
    [(scheme.to_string(), backend)].into_iter().collect()
}

/// A remote state location, parsed as `[iac] states` entries are.
pub fn location(url: &str) -> driftwatch_core::iac::remote::RemoteLocation {
    driftwatch_core::iac::remote::parse_location(url, &driftwatch::components())
        .expect("a valid location")
        .expect("a remote location")
}
