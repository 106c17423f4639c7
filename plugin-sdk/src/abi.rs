//! The plugin ABI, version 1: a C interface, so a plugin built with any compiler (or
//! written in C) loads into any driftwatch of the same ABI major.
//!
//! Nothing of Rust's layout crosses the boundary: one exported symbol,
//! [`ENTRY_SYMBOL`], returns a `#[repr(C)]` [`PluginHeader`]; its [`PluginTable`] of
//! function pointers only grows at the end (its `size` tells the host which functions the
//! plugin has); every message is UTF-8 JSON ([`MESSAGE_ENCODING`]); every buffer the plugin
//! returns is released by the plugin's own `free_bytes`. `docs/plugin-abi.md` is the full
//! specification.
//!
//! A Rust plugin never touches this module directly: [`crate::export_provider!`] turns an
//! `impl Provider` into an exported plugin.

use crate::factory::{DynProviderFactory, ProviderFactory};
use crate::provider::{CollectContext, CollectReport, Emit, Provider, ProviderError, ProviderInfo};
use crate::schema::Resource;
use serde::{Deserialize, Serialize};
use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// Name of the exported entry function; the version is part of the name so an
/// incompatible future ABI can never be called by mistake.
pub const ENTRY_SYMBOL: &str = "driftwatch_plugin_v1";
/// `"DWPL"` read as a little-endian u32: the first field of every header.
pub const MAGIC: u32 = 0x4c50_5744;
/// ABI major version: a host loads only plugins of its own major.
pub const ABI_MAJOR: u16 = 1;
/// ABI minor version: functions appended to the table bump it; older hosts ignore them.
pub const ABI_MINOR: u16 = 0;
/// The encoding of every message crossing the boundary.
pub const MESSAGE_ENCODING: &str = "json/1";

/// Status: the call succeeded.
pub const DW_OK: i32 = 0;
/// Status: the call failed; the error buffer holds a JSON [`ProviderError`].
pub const DW_ERROR: i32 = 1;
/// Status: the plugin panicked; the error buffer holds the panic message as text.
pub const DW_PANIC: i32 = 2;

/// A byte buffer allocated by the plugin; the host hands it back to `free_bytes`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DwBytes {
    /// Start of the bytes; may be null or dangling when `len` is 0. Always hand the
    /// buffer back to `free_bytes`, whatever its length.
    pub ptr: *mut u8,
    /// Number of bytes.
    pub len: usize,
}

impl DwBytes {
    /// An empty buffer.
    pub const EMPTY: DwBytes = DwBytes {
        ptr: std::ptr::null_mut(),
        len: 0,
    };

    /// Moves a vector across the boundary; [`DwBytes::free`] takes it back.
    pub fn from_vec(v: Vec<u8>) -> DwBytes {
        let boxed = v.into_boxed_slice();
        let len = boxed.len();
        let ptr = Box::into_raw(boxed) as *mut u8;
        DwBytes { ptr, len }
    }

    /// Releases a buffer made by [`DwBytes::from_vec`].
    ///
    /// # Safety
    /// `self` must come from `from_vec` in this same library and not be freed yet.
    pub unsafe fn free(self) {
        if !self.ptr.is_null() {
            let slice = std::ptr::slice_from_raw_parts_mut(self.ptr, self.len);
            drop(Box::from_raw(slice));
        }
    }
}

/// `info(out)`: writes the JSON [`ProviderInfo`] into `out`.
pub type InfoFn = unsafe extern "C" fn(out: *mut DwBytes) -> i32;
/// `create(config, len, instance, err)`: an instance from a JSON config.
pub type CreateFn = unsafe extern "C" fn(
    config: *const u8,
    config_len: usize,
    instance: *mut *mut c_void,
    err: *mut DwBytes,
) -> i32;
/// `collect_start(instance, request, len, collection, err)`: starts a collection.
pub type CollectStartFn = unsafe extern "C" fn(
    instance: *mut c_void,
    request: *const u8,
    request_len: usize,
    collection: *mut *mut c_void,
    err: *mut DwBytes,
) -> i32;
/// `collect_next(collection, out)`: blocks for the next JSON [`CollectMessage`].
pub type CollectNextFn = unsafe extern "C" fn(collection: *mut c_void, out: *mut DwBytes) -> i32;
/// `collect_cancel(collection)`, `collect_free(collection)` and `destroy(instance)`.
pub type HandleFn = unsafe extern "C" fn(handle: *mut c_void);
/// `free_bytes(bytes)`: releases a buffer the plugin returned.
pub type FreeBytesFn = unsafe extern "C" fn(bytes: DwBytes);

/// The plugin's functions. Append-only: new functions go at the end with a minor bump.
/// Every slot is nullable at the C level; the host refuses a table with a null slot.
#[repr(C)]
pub struct PluginTable {
    /// `size_of::<PluginTable>()` as the plugin was built: which functions exist.
    pub size: u32,
    /// Describes the provider.
    pub info: Option<InfoFn>,
    /// Creates a configured instance; on error writes a JSON [`ProviderError`] to `err`.
    pub create: Option<CreateFn>,
    /// Starts a collection from a JSON [`CollectRequest`].
    pub collect_start: Option<CollectStartFn>,
    /// Blocks until the next message of a collection.
    pub collect_next: Option<CollectNextFn>,
    /// Asks a running collection to stop; `collect_next` then ends it.
    pub collect_cancel: Option<HandleFn>,
    /// Releases a collection (finished or not).
    pub collect_free: Option<HandleFn>,
    /// Releases an instance.
    pub destroy: Option<HandleFn>,
    /// Releases a buffer the plugin returned.
    pub free_bytes: Option<FreeBytesFn>,
}

/// What [`ENTRY_SYMBOL`] returns: identity, versions and the function table.
#[repr(C)]
pub struct PluginHeader {
    /// Always [`MAGIC`].
    pub magic: u32,
    /// ABI major the plugin was built for.
    pub abi_major: u16,
    /// ABI minor the plugin was built for.
    pub abi_minor: u16,
    /// SDK version, NUL-terminated.
    pub sdk_version: *const c_char,
    /// Plugin name, NUL-terminated: the `kind` providers use in config.
    pub name: *const c_char,
    /// Plugin version, NUL-terminated.
    pub version: *const c_char,
    /// The functions.
    pub table: *const PluginTable,
}

/// A header in a `static`: raw pointers to immutable, leaked data are safe to share.
pub struct ExportedHeader(pub PluginHeader);
// SAFETY: every pointer in the header points to data leaked for the process lifetime and
// never written after creation.
unsafe impl Sync for ExportedHeader {}
unsafe impl Send for ExportedHeader {}

/// The request that starts a collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectRequest {
    /// Largest batch the plugin should send.
    pub batch_size: usize,
}

/// One message of a collection stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CollectMessage {
    /// Some resources.
    Batch {
        /// At most `batch_size` resources.
        resources: Vec<Resource>,
    },
    /// The end of a successful collection.
    Done {
        /// Scopes, API calls and warnings.
        report: CollectReport,
    },
    /// The end of a failed collection.
    Error {
        /// Why.
        error: ProviderError,
    },
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Runs `f`, turning a panic into [`DW_PANIC`] with its message in `err`.
fn guarded(err: *mut DwBytes, f: impl FnOnce() -> i32) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(p) => {
            if !err.is_null() {
                // SAFETY: the host passes a valid, writable DwBytes.
                unsafe { *err = DwBytes::from_vec(panic_text(p).into_bytes()) };
            }
            DW_PANIC
        }
    }
}

fn write_json<T: Serialize>(out: *mut DwBytes, v: &T) -> i32 {
    match serde_json::to_vec(v) {
        Ok(bytes) => {
            // SAFETY: the host passes a valid, writable DwBytes.
            unsafe { *out = DwBytes::from_vec(bytes) };
            DW_OK
        }
        Err(e) => {
            let msg = ProviderError::other(format!("cannot encode message: {e}"));
            // SAFETY: as above.
            unsafe { *out = DwBytes::from_vec(serde_json::to_vec(&msg).unwrap_or_default()) };
            DW_ERROR
        }
    }
}

/// Writes a JSON error into `err` and returns [`DW_ERROR`].
fn fail(err: *mut DwBytes, e: &ProviderError) -> i32 {
    write_json(err, e);
    DW_ERROR
}

/// # Safety
/// `ptr` must point to `len` readable bytes (or be null with `len` 0).
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    }
}

/// `info` for the providers of factory `F`.
///
/// # Safety
/// Called by the host through the table with a valid `out`.
pub unsafe extern "C" fn info<F: ProviderFactory + Default>(out: *mut DwBytes) -> i32 {
    guarded(out, || write_json(out, &F::default().info()))
}

/// `create` for the providers of factory `F`: parse, validate, build.
///
/// # Safety
/// Called by the host through the table with valid pointers.
pub unsafe extern "C" fn create<F: ProviderFactory + Default>(
    config: *const u8,
    config_len: usize,
    instance: *mut *mut c_void,
    err: *mut DwBytes,
) -> i32 {
    guarded(err, || {
        // SAFETY: per this function's contract.
        let bytes = unsafe { input(config, config_len) };
        let value: serde_json::Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                let e = ProviderError::other(format!("config is not valid JSON: {e}"));
                return fail(err, &e);
            }
        };
        match DynProviderFactory::create(&F::default(), &value) {
            Ok(p) => {
                let arc: Arc<Instance> = Arc::new(Instance(Arc::from(p)));
                // SAFETY: the host passes a writable pointer.
                unsafe { *instance = Arc::into_raw(arc) as *mut c_void };
                DW_OK
            }
            Err(e) => fail(err, &e),
        }
    })
}

/// A built provider behind the C handle: a thin pointer to a shared `dyn Provider`.
struct Instance(Arc<dyn Provider>);

/// A running collection on the plugin's own thread.
struct Collection {
    rx: Receiver<Encoded>,
    ctx: CollectContext,
    // Shared references only (`collect_cancel` may run while `collect_next` blocks).
    finished: std::sync::atomic::AtomicBool,
}

/// A message already encoded on the plugin's thread, so encoding the next batch overlaps
/// with the host decoding this one.
struct Encoded {
    bytes: Vec<u8>,
    last: bool,
}

fn encode(msg: &CollectMessage) -> Encoded {
    let last = !matches!(msg, CollectMessage::Batch { .. });
    let bytes = serde_json::to_vec(msg).unwrap_or_else(|e| {
        let error = ProviderError::other(format!("cannot encode message: {e}"));
        serde_json::to_vec(&CollectMessage::Error { error }).unwrap_or_default()
    });
    Encoded { bytes, last }
}

struct ChannelEmit {
    tx: std::sync::mpsc::SyncSender<Encoded>,
    ctx: CollectContext,
}

impl Emit for ChannelEmit {
    fn emit(&mut self, batch: Vec<Resource>) -> Result<(), ProviderError> {
        if self.ctx.is_cancelled() {
            return Err(ProviderError::Cancelled);
        }
        let n = self.ctx.batch_size.max(1);
        let mut batch = batch;
        while !batch.is_empty() {
            let rest = if batch.len() > n {
                batch.split_off(n)
            } else {
                Vec::new()
            };
            self.tx
                .send(encode(&CollectMessage::Batch { resources: batch }))
                .map_err(|_| ProviderError::Cancelled)?;
            batch = rest;
        }
        Ok(())
    }
}

/// `collect_start` for provider type `P`: the plugin runs the collection on a thread of
/// its own with its own executor, so no runtime or future crosses the boundary.
///
/// # Safety
/// `instance` must come from `create`; other pointers valid.
pub unsafe extern "C" fn collect_start(
    instance: *mut c_void,
    request: *const u8,
    request_len: usize,
    collection: *mut *mut c_void,
    err: *mut DwBytes,
) -> i32 {
    guarded(err, || {
        // SAFETY: per this function's contract.
        let bytes = unsafe { input(request, request_len) };
        let req: CollectRequest = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                let e = ProviderError::other(format!("bad collect request: {e}"));
                return fail(err, &e);
            }
        };
        // SAFETY: `instance` is an Arc<Instance> leaked by `create`; we take a new reference.
        let provider: Arc<dyn Provider> = unsafe {
            Arc::increment_strong_count(instance as *const Instance);
            Arc::from_raw(instance as *const Instance).0.clone()
        };
        let ctx = CollectContext::new(req.batch_size);
        // Two batches in flight at most: memory stays flat however large the estate.
        let (tx, rx) = sync_channel(1);
        let thread_ctx = ctx.clone();
        std::thread::spawn(move || {
            let mut emit = ChannelEmit {
                tx: tx.clone(),
                ctx: thread_ctx.clone(),
            };
            let run = catch_unwind(AssertUnwindSafe(|| {
                pollster::block_on(provider.collect(&thread_ctx, &mut emit))
            }));
            let last = match run {
                Ok(Ok(report)) => CollectMessage::Done { report },
                Ok(Err(error)) => CollectMessage::Error { error },
                Err(p) => CollectMessage::Error {
                    error: ProviderError::other(format!("plugin panicked: {}", panic_text(p))),
                },
            };
            let _ = tx.send(encode(&last));
        });
        let c = Box::new(Collection {
            rx,
            ctx,
            finished: std::sync::atomic::AtomicBool::new(false),
        });
        // SAFETY: the host passes a writable pointer.
        unsafe { *collection = Box::into_raw(c) as *mut c_void };
        DW_OK
    })
}

/// `collect_next`: blocks for the next message.
///
/// # Safety
/// `collection` must come from `collect_start` and not be freed.
pub unsafe extern "C" fn collect_next(collection: *mut c_void, out: *mut DwBytes) -> i32 {
    guarded(out, || {
        // SAFETY: per this function's contract.
        let c = unsafe { &*(collection as *const Collection) };
        if c.finished.load(std::sync::atomic::Ordering::SeqCst) {
            let e = ProviderError::other("collection already finished");
            return write_json(out, &CollectMessage::Error { error: e });
        }
        let msg = c.rx.recv().unwrap_or_else(|_| {
            encode(&CollectMessage::Error {
                error: ProviderError::other("collection thread ended without a result"),
            })
        });
        c.finished
            .store(msg.last, std::sync::atomic::Ordering::SeqCst);
        // SAFETY: the host passes a valid, writable DwBytes.
        unsafe { *out = DwBytes::from_vec(msg.bytes) };
        DW_OK
    })
}

/// `collect_cancel`.
///
/// # Safety
/// `collection` must come from `collect_start` and not be freed.
pub unsafe extern "C" fn collect_cancel(collection: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: per this function's contract.
        let c = unsafe { &*(collection as *const Collection) };
        c.ctx.cancel();
    }));
}

/// `collect_free`: dropping the receiver makes a still-running collection stop at its
/// next batch.
///
/// # Safety
/// `collection` must come from `collect_start`; it is invalid afterwards.
pub unsafe extern "C" fn collect_free(collection: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !collection.is_null() {
            // SAFETY: per this function's contract.
            let c = unsafe { Box::from_raw(collection as *mut Collection) };
            c.ctx.cancel();
            drop(c);
        }
    }));
}

/// `destroy` for provider type `P`.
///
/// # Safety
/// `instance` must come from `create`; it is invalid afterwards.
pub unsafe extern "C" fn destroy(instance: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !instance.is_null() {
            // SAFETY: per this function's contract.
            drop(unsafe { Arc::from_raw(instance as *const Instance) });
        }
    }));
}

/// `free_bytes`.
///
/// # Safety
/// `bytes` must come from this library and not be freed yet.
pub unsafe extern "C" fn free_bytes(bytes: DwBytes) {
    // SAFETY: per this function's contract.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { bytes.free() }));
}

/// Builds the header for provider type `P`; the strings and table are leaked once per
/// process, which is what a `static` header needs.
pub fn header<F: ProviderFactory + Default>() -> ExportedHeader {
    // A panic must not cross the entry point: the header then carries a placeholder name
    // and the host learns of the panic from `info`.
    let provider_info: ProviderInfo =
        catch_unwind(|| F::default().info()).unwrap_or_else(|_| ProviderInfo {
            name: "unknown".into(),
            version: "0".into(),
            resource_types: vec![],
            config_schema: None,
        });
    let cstr = |s: &str| {
        CString::new(s.replace('\0', ""))
            .expect("NULs removed")
            .into_raw() as *const c_char
    };
    let table = Box::leak(Box::new(PluginTable {
        size: std::mem::size_of::<PluginTable>() as u32,
        info: Some(info::<F>),
        create: Some(create::<F>),
        collect_start: Some(collect_start),
        collect_next: Some(collect_next),
        collect_cancel: Some(collect_cancel),
        collect_free: Some(collect_free),
        destroy: Some(destroy),
        free_bytes: Some(free_bytes),
    }));
    ExportedHeader(PluginHeader {
        magic: MAGIC,
        abi_major: ABI_MAJOR,
        abi_minor: ABI_MINOR,
        sdk_version: cstr(crate::SDK_VERSION),
        name: cstr(&provider_info.name),
        version: cstr(&provider_info.version),
        table,
    })
}

/// Exports an `impl ProviderFactory + Default` as a driftwatch plugin: build the crate as
/// a `cdylib` and point a `[[plugins]]` entry at the library.
///
/// ```ignore
/// #[derive(Default)]
/// struct HelloFactory;
/// impl driftwatch_plugin_sdk::ProviderFactory for HelloFactory { /* Config, info, build */ }
/// struct Hello { /* its config */ }
/// #[async_trait::async_trait]
/// impl driftwatch_plugin_sdk::Provider for Hello { /* collect */ }
/// driftwatch_plugin_sdk::export_provider!(HelloFactory);
/// ```
#[macro_export]
macro_rules! export_provider {
    ($factory:ty) => {
        /// The plugin's entry point (driftwatch plugin ABI v1).
        #[no_mangle]
        pub extern "C" fn driftwatch_plugin_v1() -> *const $crate::abi::PluginHeader {
            static HEADER: ::std::sync::OnceLock<$crate::abi::ExportedHeader> =
                ::std::sync::OnceLock::new();
            &HEADER.get_or_init($crate::abi::header::<$factory>).0
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ResourceKey;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static EMITTED: AtomicUsize = AtomicUsize::new(0);

    /// Emits one resource at a time, forever, until told to stop.
    struct Endless;

    #[derive(Default)]
    struct EndlessFactory;

    impl ProviderFactory for EndlessFactory {
        type Config = serde_json::Value;

        fn info(&self) -> ProviderInfo {
            ProviderInfo {
                name: "endless".into(),
                version: "1".into(),
                resource_types: vec!["t".into()],
                config_schema: None,
            }
        }

        fn build(&self, _: serde_json::Value) -> Result<Box<dyn Provider>, ProviderError> {
            Ok(Box::new(Endless))
        }
    }

    #[async_trait::async_trait]
    impl Provider for Endless {
        async fn collect(
            &self,
            _ctx: &CollectContext,
            out: &mut dyn Emit,
        ) -> Result<CollectReport, ProviderError> {
            for i in 0.. {
                let batch: Vec<Resource> = (0..5)
                    .map(|j| Resource::new(ResourceKey::new("p", "t", format!("{i}-{j}"))))
                    .collect();
                out.emit(batch)?;
                EMITTED.fetch_add(5, Ordering::SeqCst);
            }
            unreachable!()
        }
    }

    fn take(b: DwBytes) -> serde_json::Value {
        // SAFETY: buffers from this module, freed once.
        let v = unsafe { std::slice::from_raw_parts(b.ptr, b.len) }.to_vec();
        unsafe { free_bytes(b) };
        serde_json::from_slice(&v).unwrap()
    }

    #[test]
    fn batches_are_bounded_and_cancellation_ends_the_stream() {
        let header = header::<EndlessFactory>();
        assert_eq!(header.0.magic, MAGIC);
        let cfg = b"{}";
        let mut instance = std::ptr::null_mut();
        let mut err = DwBytes::EMPTY;
        // SAFETY: valid pointers for each call.
        unsafe {
            assert_eq!(
                create::<EndlessFactory>(cfg.as_ptr(), cfg.len(), &mut instance, &mut err),
                DW_OK
            );
            let req = br#"{"batch_size":2}"#;
            let mut coll = std::ptr::null_mut();
            assert_eq!(
                collect_start(instance, req.as_ptr(), req.len(), &mut coll, &mut err),
                DW_OK
            );
            for _ in 0..6 {
                let mut out = DwBytes::EMPTY;
                assert_eq!(collect_next(coll, &mut out), DW_OK);
                let msg = take(out);
                assert_eq!(msg["type"], "batch");
                assert!(msg["resources"].as_array().unwrap().len() <= 2, "{msg}");
            }
            // Backpressure: the provider is never far ahead of the reader.
            assert!(EMITTED.load(Ordering::SeqCst) <= 20);
            collect_cancel(coll);
            let mut last = serde_json::Value::Null;
            for _ in 0..10 {
                let mut out = DwBytes::EMPTY;
                assert_eq!(collect_next(coll, &mut out), DW_OK);
                last = take(out);
                if last["type"] != "batch" {
                    break;
                }
            }
            assert_eq!(last["type"], "error");
            assert_eq!(last["error"]["kind"], "cancelled");
            collect_free(coll);
            destroy(instance);
        }
    }
}
