//! Isolated plugins: driftwatch re-executes itself as `driftwatch plugin-host PATH`, the
//! child loads the plugin, and both sides exchange the ABI's JSON messages over a pipe,
//! each framed by a 4-byte little-endian length. A crash, an abort or a hang past the
//! timeout kills only the child.

use super::native::{Collection, Instance, Library};
use super::PluginError;
use driftwatch_plugin_sdk::abi::{CollectMessage, CollectRequest};
use driftwatch_plugin_sdk::{ProviderError, ProviderInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Largest frame either side accepts: a batch of resources, with room to spare.
const MAX_FRAME: u32 = 256 * 1024 * 1024;

/// A request from the host to the child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Describe the plugin.
    Info,
    /// Create the instance.
    Create {
        /// The provider's config entry.
        config: Value,
    },
    /// Start a collection.
    Collect {
        /// Batch size and other settings.
        request: CollectRequest,
    },
    /// The next message of the collection.
    Next,
    /// Stop the collection.
    Cancel,
}

/// A reply from the child; `T` is the payload of a success.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T = Value> {
    /// Success, with the request's payload.
    Ok(T),
    /// The plugin (or the child) reported an error.
    Error(ProviderError),
    /// The plugin panicked.
    Panic(String),
}

/// Identity the child reports once the library is loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// Plugin name from its header.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// SDK version it was built with.
    pub sdk_version: String,
    /// ABI (major, minor).
    pub abi: (u16, u16),
}

fn write_frame(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::other("frame too large"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(bytes)?;
    w.flush()
}

fn read_frame(r: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes is too large"
        )));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

fn reply_of(e: PluginError) -> Reply {
    match e {
        PluginError::Provider(p) => Reply::Error(p),
        PluginError::Panicked { message, .. } => Reply::Panic(message),
        other => Reply::Error(ProviderError::other(other.to_string())),
    }
}

/// The child side: loads the plugin and serves requests until stdin closes. Plugins that
/// print to stdout would corrupt the protocol, so stdout is moved to a private descriptor
/// and the plugin's standard output goes to stderr.
pub fn serve(path: &Path) -> std::io::Result<()> {
    let mut out = private_stdout()?;
    let mut input = std::io::stdin().lock();
    let send = |out: &mut std::fs::File, reply: &Reply| {
        let bytes = serde_json::to_vec(reply).expect("replies serialise");
        write_frame(out, &bytes)
    };
    let lib = match Library::open(path) {
        Ok(lib) => lib,
        Err(e) => return send(&mut out, &reply_of(e)),
    };
    let hello = Hello {
        name: lib.name.clone(),
        version: lib.version.clone(),
        sdk_version: lib.sdk_version.clone(),
        abi: lib.abi,
    };
    send(
        &mut out,
        &Reply::Ok(serde_json::to_value(&hello).expect("serialisable")),
    )?;
    let mut instance: Option<Instance> = None;
    let mut collection: Option<Collection> = None;
    while let Some(frame) = read_frame(&mut input)? {
        let reply = match serde_json::from_slice::<Request>(&frame) {
            Err(e) => Reply::Error(ProviderError::other(format!("bad request: {e}"))),
            Ok(Request::Info) => match lib.info() {
                Ok(info) => Reply::Ok(serde_json::to_value(info).expect("serialisable")),
                Err(e) => reply_of(e),
            },
            Ok(Request::Create { config }) => {
                collection = None;
                match lib.create(&config) {
                    Ok(i) => {
                        instance = Some(i);
                        Reply::Ok(Value::Null)
                    }
                    Err(e) => reply_of(e),
                }
            }
            Ok(Request::Collect { request }) => match &instance {
                None => Reply::Error(ProviderError::other("collect before create")),
                Some(i) => match i.start(request.batch_size) {
                    Ok(c) => {
                        collection = Some(c);
                        Reply::Ok(Value::Null)
                    }
                    Err(e) => reply_of(e),
                },
            },
            Ok(Request::Next) => match &mut collection {
                None => Reply::Error(ProviderError::other("next before collect")),
                // Relay the plugin's bytes as they are: the host decodes and validates them.
                // Relayed unchecked: the host decodes the frame once and reports a malformed
                // message as the plugin's, exactly as in process.
                Some(c) => match c.next_raw() {
                    Ok(bytes) => {
                        let mut framed = Vec::with_capacity(bytes.len() + 8);
                        framed.extend_from_slice(b"{\"ok\":");
                        framed.extend_from_slice(&bytes);
                        framed.push(b'}');
                        write_frame(&mut out, &framed)?;
                        continue;
                    }
                    Err(e) => reply_of(e),
                },
            },
            Ok(Request::Cancel) => {
                if let Some(c) = &mut collection {
                    c.cancel();
                }
                Reply::Ok(Value::Null)
            }
        };
        send(&mut out, &reply)?;
    }
    Ok(())
}

/// Moves standard output to a private descriptor and points descriptor 1 at stderr, so
/// that whatever a plugin prints cannot land inside the output written to the returned file.
/// The private descriptor is close-on-exec: no child process holds the output open.
#[cfg(unix)]
pub fn private_stdout() -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain descriptor duplication; the new descriptor is owned by the File.
    unsafe {
        let fd = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(std::fs::File::from_raw_fd(fd))
    }
}

/// The host side of one child process.
pub struct Session {
    child: Child,
    stdin: ChildStdin,
    frames: Receiver<std::io::Result<Option<Vec<u8>>>>,
    timeout: Duration,
    name: String,
    /// What the child reported after loading the plugin.
    pub hello: Hello,
}

impl Session {
    /// Starts `exe plugin-host PATH` and waits for the plugin to load.
    pub fn spawn(
        exe: &Path,
        path: &Path,
        name: &str,
        timeout: Duration,
    ) -> Result<Session, PluginError> {
        let mut command = Command::new(exe);
        // Its own process group, so that processes the plugin forks die with it.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .arg("plugin-host")
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| PluginError::Spawn {
                name: name.to_string(),
                message: format!("cannot start {}: {e}", exe.display()),
            })?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        std::thread::spawn(move || loop {
            let frame = read_frame(&mut stdout);
            let end = !matches!(frame, Ok(Some(_)));
            if tx.send(frame).is_err() || end {
                break;
            }
        });
        let mut s = Session {
            child,
            stdin,
            frames: rx,
            timeout,
            name: name.to_string(),
            hello: Hello {
                name: String::new(),
                version: String::new(),
                sdk_version: String::new(),
                abi: (0, 0),
            },
        };
        s.hello = s.receive("loading the plugin")?;
        s.name = s.hello.name.clone();
        Ok(s)
    }

    fn receive<T: serde::de::DeserializeOwned>(&mut self, what: &str) -> Result<T, PluginError> {
        let frame = match self.frames.recv_timeout(self.timeout) {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) | Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => {
                return Err(self.died(what))
            }
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                return Err(PluginError::Timeout {
                    name: self.name.clone(),
                    what: what.to_string(),
                    secs: self.timeout.as_secs_f64(),
                });
            }
        };
        match serde_json::from_slice::<Reply<T>>(&frame) {
            Ok(Reply::Ok(v)) => Ok(v),
            Ok(Reply::Error(e)) => Err(PluginError::Provider(e)),
            Ok(Reply::Panic(message)) => Err(PluginError::Panicked {
                name: self.name.clone(),
                message,
            }),
            Err(e) => Err(PluginError::Protocol {
                name: self.name.clone(),
                message: format!("{what}: malformed message ({e})"),
            }),
        }
    }

    /// The child is gone: say how it ended.
    fn died(&mut self, what: &str) -> PluginError {
        let status = self.child.wait().ok();
        let how = match status {
            Some(s) => describe_exit(s),
            None => "ended".into(),
        };
        PluginError::Crashed {
            name: self.name.clone(),
            message: format!("the plugin process {how} while {what}"),
        }
    }

    fn kill(&mut self) {
        #[cfg(unix)]
        if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signals the process group this session created (see `spawn`).
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn call<T: serde::de::DeserializeOwned>(
        &mut self,
        req: &Request,
        what: &str,
    ) -> Result<T, PluginError> {
        let bytes = serde_json::to_vec(req).expect("requests serialise");
        if write_frame(&mut self.stdin, &bytes).is_err() {
            return Err(self.died(what));
        }
        self.receive(what)
    }

    /// Asks the plugin what it is.
    pub fn info(&mut self) -> Result<ProviderInfo, PluginError> {
        self.call(&Request::Info, "describing itself")
    }

    /// Creates the instance.
    pub fn create(&mut self, config: &Value) -> Result<(), PluginError> {
        self.call::<Value>(
            &Request::Create {
                config: config.clone(),
            },
            "applying its config",
        )
        .map(|_| ())
    }

    /// Starts a collection.
    pub fn collect(&mut self, batch_size: usize) -> Result<(), PluginError> {
        self.call::<Value>(
            &Request::Collect {
                request: CollectRequest { batch_size },
            },
            "starting a collection",
        )
        .map(|_| ())
    }

    /// The next message of the collection.
    pub fn next_message(&mut self) -> Result<CollectMessage, PluginError> {
        match self.call(&Request::Next, "collecting") {
            Err(PluginError::Protocol { .. }) => Err(PluginError::Protocol {
                name: self.name.clone(),
                message: "collect_next returned a malformed message".into(),
            }),
            other => other,
        }
    }

    /// Asks the plugin to stop.
    pub fn cancel(&mut self) -> Result<(), PluginError> {
        self.call::<Value>(&Request::Cancel, "cancelling")
            .map(|_| ())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(unix)]
fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(sig)) => {
            let name = match sig {
                libc::SIGSEGV => "SIGSEGV, a segmentation fault",
                libc::SIGABRT => "SIGABRT, an abort",
                libc::SIGKILL => "SIGKILL",
                libc::SIGBUS => "SIGBUS",
                libc::SIGILL => "SIGILL",
                libc::SIGFPE => "SIGFPE",
                _ => "a signal",
            };
            format!("was killed by signal {sig} ({name})")
        }
        _ => "ended".into(),
    }
}

/// The `driftwatch` executable to re-run as a plugin host.
pub fn current_exe() -> PathBuf {
    std::env::var_os("DRIFTWATCH_PLUGIN_HOST")
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("driftwatch"))
}
