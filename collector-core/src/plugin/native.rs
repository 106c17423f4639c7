//! Plugins loaded into this process with `dlopen`, spoken to through the C ABI.

use super::PluginError;
use driftwatch_plugin_sdk::abi::{
    CollectMessage, CollectNextFn, CollectRequest, CollectStartFn, CreateFn, DwBytes, FreeBytesFn,
    HandleFn, InfoFn, PluginHeader, PluginTable, ABI_MAJOR, ABI_MINOR, DW_ERROR, DW_OK, DW_PANIC,
    ENTRY_SYMBOL, MAGIC,
};
use driftwatch_plugin_sdk::{ProviderError, ProviderInfo};
use std::ffi::{c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The functions of ABI 1.0: a table smaller than this lacks some of them.
const MIN_TABLE_SIZE: usize = std::mem::size_of::<PluginTable>();

/// The ABI 1.0 functions of a plugin, checked to be non-null.
struct Fns {
    info: InfoFn,
    create: CreateFn,
    collect_start: CollectStartFn,
    collect_next: CollectNextFn,
    collect_cancel: HandleFn,
    collect_free: HandleFn,
    destroy: HandleFn,
    free_bytes: FreeBytesFn,
}

/// A validated plugin library, kept loaded for as long as any instance uses it.
pub struct Library {
    // Field order matters: the functions live in the library, which must be dropped last.
    table: Fns,
    /// Name the plugin gives itself.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// SDK version it was built with.
    pub sdk_version: String,
    /// ABI (major, minor) it was built for.
    pub abi: (u16, u16),
    /// Where it was loaded from.
    pub path: PathBuf,
    _lib: libloading::Library,
}

// SAFETY: the functions live in the loaded library, which stays loaded while this value
// lives; the ABI requires plugin functions to be callable from any thread.
unsafe impl Send for Library {}
unsafe impl Sync for Library {}

fn c_string(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the ABI requires NUL-terminated strings that live as long as the library.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The outcome of one call that returns a buffer.
enum Reply {
    Ok(Vec<u8>),
    Error(Vec<u8>),
    Panic(String),
}

impl Library {
    /// Loads a library, checks its entry symbol, magic, ABI version and table.
    pub fn open(path: &Path) -> Result<Arc<Library>, PluginError> {
        let shown = path.display().to_string();
        // SAFETY: loading a library runs its initialisers; that is what `isolated` mode
        // exists for. Here the user chose to trust the plugin with this process.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
            let detail = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default();
            PluginError::NotALibrary {
                path: shown.clone(),
                message: if detail.is_empty() {
                    e.to_string()
                } else {
                    detail
                },
            }
        })?;
        type Entry = unsafe extern "C" fn() -> *const PluginHeader;
        // SAFETY: the symbol's type is fixed by the ABI's entry-point name.
        let entry: libloading::Symbol<'_, Entry> = unsafe { lib.get(ENTRY_SYMBOL.as_bytes()) }
            .map_err(|_| PluginError::NoEntry {
                path: shown.clone(),
            })?;
        // SAFETY: calling the entry point is the ABI's first step.
        let header = unsafe { entry() };
        if header.is_null() {
            return Err(PluginError::Invalid {
                path: shown,
                message: format!("`{ENTRY_SYMBOL}` returned no header"),
            });
        }
        // SAFETY: non-null and, per the ABI, a static PluginHeader.
        let h = unsafe { &*header };
        if h.magic != MAGIC {
            return Err(PluginError::Invalid {
                path: shown,
                message: format!(
                    "wrong magic number {:#010x} (expected {MAGIC:#010x}): not a driftwatch plugin",
                    h.magic
                ),
            });
        }
        let name = c_string(h.name);
        if h.abi_major != ABI_MAJOR {
            return Err(PluginError::AbiMismatch {
                path: shown,
                name,
                theirs: format!("{}.{}", h.abi_major, h.abi_minor),
                ours: format!("{ABI_MAJOR}.{ABI_MINOR}"),
            });
        }
        if h.table.is_null() {
            return Err(PluginError::Invalid {
                path: shown,
                message: "the header has no function table".into(),
            });
        }
        // SAFETY: non-null, static per the ABI.
        let size = unsafe { (*h.table).size } as usize;
        if size < MIN_TABLE_SIZE {
            return Err(PluginError::Invalid {
                path: shown,
                message: format!(
                    "function table of {size} bytes is smaller than ABI {ABI_MAJOR}.0 requires ({MIN_TABLE_SIZE})"
                ),
            });
        }
        // SAFETY: non-null, static, and at least as large as ABI 1.0's table.
        let t = unsafe { &*h.table };
        let null = |slot: &str| PluginError::Invalid {
            path: shown.clone(),
            message: format!("the function table's `{slot}` slot is null"),
        };
        let fns = Fns {
            info: t.info.ok_or_else(|| null("info"))?,
            create: t.create.ok_or_else(|| null("create"))?,
            collect_start: t.collect_start.ok_or_else(|| null("collect_start"))?,
            collect_next: t.collect_next.ok_or_else(|| null("collect_next"))?,
            collect_cancel: t.collect_cancel.ok_or_else(|| null("collect_cancel"))?,
            collect_free: t.collect_free.ok_or_else(|| null("collect_free"))?,
            destroy: t.destroy.ok_or_else(|| null("destroy"))?,
            free_bytes: t.free_bytes.ok_or_else(|| null("free_bytes"))?,
        };
        Ok(Arc::new(Library {
            table: fns,
            name,
            version: c_string(h.version),
            sdk_version: c_string(h.sdk_version),
            abi: (h.abi_major, h.abi_minor),
            path: path.to_path_buf(),
            _lib: lib,
        }))
    }

    fn table(&self) -> &Fns {
        &self.table
    }

    /// Copies a plugin buffer and hands it back to the plugin to free.
    fn take(&self, b: DwBytes) -> Vec<u8> {
        if b.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: the plugin returned `len` readable bytes at `ptr`.
        let v = unsafe { std::slice::from_raw_parts(b.ptr, b.len) }.to_vec();
        // SAFETY: the buffer came from this plugin and is freed once, here.
        unsafe { (self.table().free_bytes)(b) };
        v
    }

    fn reply(&self, status: i32, out: DwBytes, err: DwBytes) -> Reply {
        let out = self.take(out);
        let err = self.take(err);
        match status {
            DW_OK => Reply::Ok(out),
            DW_ERROR => Reply::Error(if err.is_empty() { out } else { err }),
            DW_PANIC => Reply::Panic(
                String::from_utf8_lossy(if err.is_empty() { &out } else { &err }).into_owned(),
            ),
            other => Reply::Error(
                serde_json::to_vec(&ProviderError::other(format!(
                    "unknown status code {other}"
                )))
                .unwrap_or_default(),
            ),
        }
    }

    fn fail(&self, reply: Reply, what: &str) -> PluginError {
        match reply {
            Reply::Ok(_) => unreachable!("only failures are turned into errors"),
            Reply::Error(bytes) => match serde_json::from_slice::<ProviderError>(&bytes) {
                Ok(e) => PluginError::Provider(e),
                Err(_) => PluginError::Protocol {
                    name: self.name.clone(),
                    message: format!(
                        "{what} failed with an error that is not a JSON ProviderError: {}",
                        String::from_utf8_lossy(&bytes)
                    ),
                },
            },
            Reply::Panic(text) => PluginError::Panicked {
                name: self.name.clone(),
                message: format!("in {what}: {text}"),
            },
        }
    }

    /// Asks the plugin what it is.
    pub fn info(&self) -> Result<ProviderInfo, PluginError> {
        let mut out = DwBytes::EMPTY;
        // SAFETY: `out` is a valid, writable buffer descriptor.
        let status = unsafe { (self.table().info)(&mut out) };
        match self.reply(status, out, DwBytes::EMPTY) {
            Reply::Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| PluginError::Protocol {
                name: self.name.clone(),
                message: format!("info is not a JSON ProviderInfo: {e}"),
            }),
            other => Err(self.fail(other, "info")),
        }
    }

    /// Creates a configured instance.
    pub fn create(self: &Arc<Self>, config: &serde_json::Value) -> Result<Instance, PluginError> {
        let bytes = serde_json::to_vec(config).expect("JSON values always serialise");
        let mut instance: *mut c_void = std::ptr::null_mut();
        let mut err = DwBytes::EMPTY;
        // SAFETY: every pointer is valid for the duration of the call.
        let status =
            unsafe { (self.table().create)(bytes.as_ptr(), bytes.len(), &mut instance, &mut err) };
        match self.reply(status, DwBytes::EMPTY, err) {
            Reply::Ok(_) if !instance.is_null() => Ok(Instance {
                lib: self.clone(),
                ptr: instance,
            }),
            Reply::Ok(_) => Err(PluginError::Protocol {
                name: self.name.clone(),
                message: "create succeeded without an instance".into(),
            }),
            other => Err(self.fail(other, "create")),
        }
    }
}

/// A configured plugin instance.
pub struct Instance {
    lib: Arc<Library>,
    ptr: *mut c_void,
}

// SAFETY: the ABI requires instances to be usable from any thread, one call at a time;
// the host never shares an Instance between threads without exclusive access.
unsafe impl Send for Instance {}

impl Instance {
    /// Starts a collection.
    pub fn start(&self, batch_size: usize) -> Result<Collection, PluginError> {
        let req = serde_json::to_vec(&CollectRequest { batch_size }).expect("serialisable");
        let mut coll: *mut c_void = std::ptr::null_mut();
        let mut err = DwBytes::EMPTY;
        // SAFETY: `ptr` came from `create`; the other pointers are valid for the call.
        let status = unsafe {
            (self.lib.table().collect_start)(self.ptr, req.as_ptr(), req.len(), &mut coll, &mut err)
        };
        match self.lib.reply(status, DwBytes::EMPTY, err) {
            Reply::Ok(_) if !coll.is_null() => Ok(Collection {
                lib: self.lib.clone(),
                ptr: coll,
            }),
            Reply::Ok(_) => Err(PluginError::Protocol {
                name: self.lib.name.clone(),
                message: "collect_start succeeded without a collection".into(),
            }),
            other => Err(self.lib.fail(other, "collect_start")),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `create` and is destroyed once.
        unsafe { (self.lib.table().destroy)(self.ptr) };
    }
}

/// A running collection.
pub struct Collection {
    lib: Arc<Library>,
    ptr: *mut c_void,
}

// SAFETY: as for Instance.
unsafe impl Send for Collection {}

impl Collection {
    /// The raw next message, as the plugin encoded it (for relaying without re-encoding).
    pub fn next_raw(&mut self) -> Result<Vec<u8>, PluginError> {
        let mut out = DwBytes::EMPTY;
        // SAFETY: `ptr` came from `collect_start`.
        let status = unsafe { (self.lib.table().collect_next)(self.ptr, &mut out) };
        match self.lib.reply(status, out, DwBytes::EMPTY) {
            Reply::Ok(bytes) => Ok(bytes),
            other => Err(self.lib.fail(other, "collect_next")),
        }
    }

    /// The next message of the stream.
    pub fn next_message(&mut self) -> Result<CollectMessage, PluginError> {
        let bytes = self.next_raw()?;
        decode_message(&self.lib.name, &bytes)
    }

    /// Asks the plugin to stop.
    pub fn cancel(&mut self) {
        // SAFETY: `ptr` came from `collect_start`.
        unsafe { (self.lib.table().collect_cancel)(self.ptr) };
    }
}

/// Decodes one collection message, naming the plugin when it is malformed.
pub fn decode_message(name: &str, bytes: &[u8]) -> Result<CollectMessage, PluginError> {
    serde_json::from_slice(bytes).map_err(|e| PluginError::Protocol {
        name: name.to_string(),
        message: format!(
            "collect_next returned a malformed message ({e}): {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
        ),
    })
}

impl Drop for Collection {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `collect_start` and is freed once.
        unsafe { (self.lib.table().collect_free)(self.ptr) };
    }
}
