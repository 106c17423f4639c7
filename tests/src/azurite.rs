//! A real Azurite Blob storage emulator (npm `azurite`) on 127.0.0.1, started per test and
//! stopped when dropped. Missing Azurite is a failure, never a skip: the README's test
//! command installs it under `tests/.node/`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The account Azurite serves.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known key of that account.
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite Blob service.
pub struct Azurite {
    child: Child,
    _data: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
}

fn binary() -> PathBuf {
    let local =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".node/node_modules/.bin/azurite-blob");
    if local.exists() {
        return local;
    }
    PathBuf::from("azurite-blob")
}

impl Azurite {
    /// Starts Azurite's Blob service on a free loopback port and waits until it listens.
    pub fn start() -> Azurite {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let data = tempfile::tempdir().unwrap();
        let child = Command::new(binary())
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--silent",
            ])
            .arg("--location")
            .arg(data.path())
            // The SDK line in use speaks an older x-ms-version than Azurite's newest.
            .arg("--skipApiVersionCheck")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start azurite-blob ({e}): install it with \
                     `npm install --no-save --prefix tests/.node azurite@3.37.0`"
                )
            });
        let mut azurite = Azurite {
            child,
            _data: data,
            origin: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return azurite;
            }
            if let Ok(Some(status)) = azurite.child.try_wait() {
                panic!("azurite-blob exited with {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "azurite did not start listening on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The blob endpoint template `[iac.azurerm] endpoint` takes.
    pub fn endpoint_template(&self) -> String {
        format!("{}/{{account}}", self.origin)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
