/*
 * driftwatch plugin C ABI, version 1.0.
 *
 * This header mirrors plugin-sdk/src/abi.rs field for field; docs/plugin-abi.md is the
 * specification. A plugin is a shared library exporting DW_ENTRY_SYMBOL, which returns a
 * pointer to a DwPluginHeader that stays valid for as long as the library is loaded.
 *
 * Every message crossing the boundary is UTF-8 JSON (encoding "json/1"). Every DwBytes the
 * plugin hands out is given back to the plugin's own free_bytes, so plugin and host never
 * need to share an allocator. Pointers the host passes in are owned by the host and valid
 * only for the duration of the call.
 */
#ifndef DRIFTWATCH_PLUGIN_H
#define DRIFTWATCH_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "DWPL" read as a little-endian uint32_t: lets the host reject a library that merely
 * happens to export a function of the right name. */
#define DW_MAGIC 0x4c505744u

/* The host loads only plugins of its own major; the minor only tells which functions were
 * appended to the table (the table's size field is what the host actually relies on). */
#define DW_ABI_MAJOR 1
#define DW_ABI_MINOR 0

/* The major is part of the symbol name so an incompatible ABI can never be called by
 * mistake. */
#define DW_ENTRY_SYMBOL "driftwatch_plugin_v1"

/* The encoding of every message; informative, not carried in the header. */
#define DW_MESSAGE_ENCODING "json/1"

/* Status codes returned by the functions that return int32_t. */
/* The call succeeded; the output (if any) is in `out`. */
#define DW_OK 0
/* The call failed; the error buffer holds a JSON ProviderError. */
#define DW_ERROR 1
/* The plugin caught a crash of its own; the error buffer holds UTF-8 text. */
#define DW_PANIC 2

/* A byte buffer allocated by the plugin and released by its free_bytes. */
typedef struct DwBytes {
    /* Start of the bytes; may be NULL when len is 0. */
    uint8_t *ptr;
    /* Number of bytes. */
    size_t len;
} DwBytes;

/* The plugin's functions. Append-only: a new function goes at the end with a minor bump,
 * so an older host simply never looks past the size it knows. */
typedef struct DwPluginTable {
    /* sizeof(DwPluginTable) as the plugin was built: tells the host which functions exist. */
    uint32_t size;
    /* Writes the JSON ProviderInfo into *out. */
    int32_t (*info)(DwBytes *out);
    /* Creates an instance from a JSON config object; on failure writes a JSON
     * ProviderError into *err. */
    int32_t (*create)(const uint8_t *config, size_t config_len, void **instance,
                      DwBytes *err);
    /* Starts a collection from a JSON CollectRequest; on failure writes a JSON
     * ProviderError into *err. */
    int32_t (*collect_start)(void *instance, const uint8_t *request, size_t request_len,
                             void **collection, DwBytes *err);
    /* Blocks until the next JSON CollectMessage and writes it into *out (on failure, the
     * error or panic text goes into *out too). */
    int32_t (*collect_next)(void *collection, DwBytes *out);
    /* Asks a running collection to stop; collect_next then delivers its final message.
     * May be called from another thread while collect_next is blocked. */
    void (*collect_cancel)(void *collection);
    /* Releases a collection, finished or not. */
    void (*collect_free)(void *collection);
    /* Releases an instance. */
    void (*destroy)(void *instance);
    /* Releases a buffer this plugin returned. */
    void (*free_bytes)(DwBytes bytes);
} DwPluginTable;

/* What the entry symbol returns: identity, ABI version and the function table. */
typedef struct DwPluginHeader {
    /* Always DW_MAGIC. */
    uint32_t magic;
    /* ABI major the plugin was built for. */
    uint16_t abi_major;
    /* ABI minor the plugin was built for. */
    uint16_t abi_minor;
    /* SDK (or header) version, NUL-terminated. */
    const char *sdk_version;
    /* Plugin name, NUL-terminated: the `kind` providers use in config. */
    const char *name;
    /* Plugin version, NUL-terminated. */
    const char *version;
    /* The functions. */
    const DwPluginTable *table;
} DwPluginHeader;

/* The signature of the entry symbol. */
typedef const DwPluginHeader *(*DwEntryFn)(void);

/* The entry point every plugin exports (declared here so a plugin's definition is checked
 * against it). */
const DwPluginHeader *driftwatch_plugin_v1(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DRIFTWATCH_PLUGIN_H */
