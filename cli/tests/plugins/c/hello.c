/*
 * c-hello: a minimal driftwatch provider plugin written in C against
 * plugin-sdk/include/driftwatch_plugin.h (see docs/plugin-abi.md).
 *
 *   cc -shared -fPIC -I plugin-sdk/include -o libhello.so hello.c
 *
 * Config: {"count": N} (default 3). A collection reports N resources of type hello_item,
 * item-1 .. item-N, in batches of at most the requested batch_size, then a complete scope.
 *
 * Each of these flags builds a broken plugin, so the host's handling of that failure can be
 * tested against a real library:
 *   -DDW_BAD_MAGIC               header magic is 0xdeadbeef
 *   -DDW_ABI_MAJOR_OVERRIDE=2    header abi_major is 2
 *   -DDW_NO_ENTRY                the entry function is named not_the_entry
 *   -DDW_SEGFAULT                collect_next writes through a NULL pointer
 *   -DDW_ABORT                   collect_next calls abort()
 *   -DDW_HANG                    collect_next never returns
 *   -DDW_MALFORMED               collect_next returns truncated JSON
 *   -DDW_EXIT_ZERO               collect_next calls exit(0)
 *   -DDW_STDOUT                  collect_next prints to standard output, then works
 *   -DDW_SECRETS                 each batch also reports resources whose attributes hold
 *                                live secrets (LIVE-s3cr3t): an SSM parameter, a Kubernetes
 *                                secret, a tagged instance, a database with nested passwords
 *   -DDW_PARTIAL                 the collection ends with its one scope incomplete
 *   -DDW_FORK                    collect_start forks a child that sleeps for 10 minutes and
 *                                writes its pid to the file named by DW_FORK_PIDFILE
 */
#include "driftwatch_plugin.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __GNUC__
#define DW_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DW_PRINTF(f, a)
#endif

#ifndef DW_ABI_MAJOR_OVERRIDE
#define DW_ABI_MAJOR_OVERRIDE DW_ABI_MAJOR
#endif

#ifdef DW_BAD_MAGIC
#define HELLO_MAGIC 0xdeadbeefu
#else
#define HELLO_MAGIC DW_MAGIC
#endif

typedef struct Instance {
    long count;
} Instance;

typedef struct Collection {
    long count;
    long next; /* index of the next item to send, 1-based */
    long batch_size;
    int finished;
    /* Atomic because collect_cancel may run on another thread during collect_next. */
    atomic_int cancelled;
} Collection;

/* A growable string; `failed` latches so callers check once at the end. */
typedef struct Buf {
    char *data;
    size_t len;
    size_t cap;
    int failed;
} Buf;

static void buf_printf(Buf *b, const char *fmt, ...) DW_PRINTF(2, 3);

static void buf_printf(Buf *b, const char *fmt, ...) {
    if (b->failed) {
        return;
    }
    for (;;) {
        va_list ap;
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap - b->len <= (size_t)n) {
            cap *= 2;
        }
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
}

/* Hands a finished Buf to the host; returns DW_PANIC if it could not be built, since no
 * JSON error can be allocated either. */
static int32_t give(Buf *b, DwBytes *out, int32_t status) {
    if (b->failed) {
        free(b->data);
        out->ptr = NULL;
        out->len = 0;
        return DW_PANIC;
    }
    out->ptr = (uint8_t *)b->data;
    out->len = b->len;
    return status;
}

static int32_t give_text(const char *text, DwBytes *out, int32_t status) {
    Buf b = {0};
    buf_printf(&b, "%s", text);
    return give(&b, out, status);
}

/* The input is not NUL-terminated; a terminated copy lets strstr/strtol work on it. */
static char *terminated(const uint8_t *p, size_t len) {
    char *s = malloc(len + 1);
    if (s) {
        if (len) {
            memcpy(s, p, len);
        }
        s[len] = '\0';
    }
    return s;
}

/* Reads `"key":<integer>` with a hand parse: enough for the flat objects this plugin gets,
 * with no JSON library to link. Returns 1 found, 0 absent, -1 present but not an integer. */
static int find_long(const char *json, const char *key, long *value) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    if (!at) {
        return 0;
    }
    const char *start = at + strlen(pattern);
    char *end = NULL;
    long v = strtol(start, &end, 10);
    if (end == start || !strchr(",} \t\r\n", *end) || *end == '\0') {
        return -1;
    }
    *value = v;
    return 1;
}

static int32_t hello_info(DwBytes *out) {
    return give_text("{\"name\":\"c-hello\",\"version\":\"0.1.0\","
                     "\"resource_types\":[\"hello_item\"]}",
                     out, DW_OK);
}

static int32_t hello_create(const uint8_t *config, size_t config_len, void **instance,
                            DwBytes *err) {
    char *json = terminated(config, config_len);
    if (!json) {
        return DW_PANIC;
    }
    const char *first = json + strspn(json, " \t\r\n");
    if (*first != '{') {
        free(json);
        return give_text("{\"kind\":\"other\",\"message\":\"config is not a JSON object\"}",
                         err, DW_ERROR);
    }
    long count = 3;
    int found = find_long(json, "count", &count);
    free(json);
    if (found < 0 || count < 0) {
        return give_text("{\"kind\":\"config\",\"path\":\"count\","
                         "\"message\":\"must be a non-negative integer\"}",
                         err, DW_ERROR);
    }
    Instance *inst = malloc(sizeof *inst);
    if (!inst) {
        return DW_PANIC;
    }
    inst->count = count;
    *instance = inst;
    return DW_OK;
}

static int32_t hello_collect_start(void *instance, const uint8_t *request,
                                   size_t request_len, void **collection, DwBytes *err) {
    const Instance *inst = instance;
    char *json = terminated(request, request_len);
    if (!json) {
        return DW_PANIC;
    }
    long batch_size = 0;
    int found = find_long(json, "batch_size", &batch_size);
    free(json);
    if (found <= 0) {
        return give_text("{\"kind\":\"other\",\"message\":\"bad collect request: "
                         "no integer batch_size\"}",
                         err, DW_ERROR);
    }
    Collection *c = malloc(sizeof *c);
    if (!c) {
        return DW_PANIC;
    }
#ifdef DW_FORK
    pid_t pid = fork();
    if (pid == 0) {
        sleep(600);
        _exit(0);
    }
    const char *pidfile = getenv("DW_FORK_PIDFILE");
    if (pid > 0 && pidfile) {
        FILE *f = fopen(pidfile, "w");
        if (f) {
            fprintf(f, "%ld\n", (long)pid);
            fclose(f);
        }
    }
#endif
    c->count = inst->count;
    c->next = 1;
    c->batch_size = batch_size < 1 ? 1 : batch_size;
    c->finished = 0;
    atomic_init(&c->cancelled, 0);
    *collection = c;
    return DW_OK;
}

static int32_t hello_collect_next(void *collection, DwBytes *out) {
    Collection *c = collection;
#if defined(DW_SEGFAULT)
    /* Volatile so the compiler cannot see the NULL and replace the store with a trap. */
    int *volatile nowhere = NULL;
    *nowhere = 1;
#elif defined(DW_ABORT)
    abort();
#elif defined(DW_HANG)
    for (;;) {
        sleep(1);
    }
#elif defined(DW_MALFORMED)
    (void)c;
    return give_text("{\"type\": \"batch\", \"resources\": [", out, DW_OK);
#elif defined(DW_EXIT_ZERO)
    exit(0);
#elif defined(DW_STDOUT)
    printf("{\"plugin\": \"noise on stdout\"}\n");
    fflush(stdout);
#endif
    Buf b = {0};
    if (c->finished) {
        buf_printf(&b, "{\"type\":\"error\",\"error\":{\"kind\":\"other\","
                       "\"message\":\"collection already finished\"}}");
    } else if (atomic_load(&c->cancelled)) {
        c->finished = 1;
        buf_printf(&b, "{\"type\":\"error\",\"error\":{\"kind\":\"cancelled\"}}");
    } else if (c->next <= c->count) {
        long last = c->next + c->batch_size - 1;
        if (last > c->count) {
            last = c->count;
        }
        buf_printf(&b, "{\"type\":\"batch\",\"resources\":[");
        for (long i = c->next; i <= last; i++) {
            buf_printf(&b,
                       "%s{\"provider\":\"hello\",\"type\":\"hello_item\",\"id\":\"item-%ld\","
                       "\"name\":\"item %ld\",\"attributes\":{\"id\":\"item-%ld\",\"size\":%ld}}",
                       i == c->next ? "" : ",", i, i, i, i);
        }
#ifdef DW_SECRETS
        if (c->next == 1) {
            buf_printf(&b,
                ",{\"provider\":\"aws\",\"type\":\"aws_ssm_parameter\",\"id\":\"/app/db\","
                "\"attributes\":{\"id\":\"/app/db\",\"type\":\"String\",\"value\":\"LIVE-s3cr3t\"}}"
                ",{\"provider\":\"kubernetes\",\"type\":\"kubernetes_secret\",\"id\":\"ns/app\","
                "\"attributes\":{\"id\":\"ns/app\",\"type\":\"Opaque\","
                "\"data\":{\"user\":\"LIVE-s3cr3t\"}}}"
                ",{\"provider\":\"aws\",\"type\":\"aws_instance\",\"id\":\"i-1\","
                "\"tags\":{\"api\":\"LIVE-s3cr3t\",\"env\":\"dev\"},"
                "\"attributes\":{\"id\":\"i-1\",\"instance_type\":\"t3.large\","
                "\"tags\":{\"api\":\"LIVE-s3cr3t\",\"env\":\"dev\"}}}"
                ",{\"provider\":\"aws\",\"type\":\"aws_db_instance\",\"id\":\"db-1\","
                "\"attributes\":{\"id\":\"db-1\",\"engine\":\"postgres\","
                "\"default_primary_connection_string\":\"LIVE-s3cr3t\","
                "\"blocks\":[[{\"password\":\"LIVE-s3cr3t\",\"host\":\"b\"}]]}}"
                ",{\"provider\":\"aws\",\"type\":\"aws_iam_access_key\",\"id\":\"AKIA1\","
                "\"attributes\":{\"id\":\"AKIA1\",\"status\":\"Inactive\","
                "\"secret\":\"LIVE-s3cr3t\",\"access_key\":\"LIVE-s3cr3t\"}}");
        }
#endif
        buf_printf(&b, "]}");
        c->next = last + 1;
    } else {
        c->finished = 1;
#ifdef DW_PARTIAL
        buf_printf(&b, "{\"type\":\"done\",\"report\":{\"scopes\":[{\"provider\":\"hello\","
                       "\"type\":\"hello_item\",\"account\":\"acct-1\",\"region\":\"north\","
                       "\"complete\":false,\"error\":\"throttled after 3 attempts\"}],"
                       "\"api_calls\":0,\"warnings\":[]}}");
#else
        buf_printf(&b, "{\"type\":\"done\",\"report\":{\"scopes\":[{\"provider\":\"hello\","
                       "\"type\":\"hello_item\",\"complete\":true}],"
                       "\"api_calls\":0,\"warnings\":[]}}");
#endif
    }
    return give(&b, out, DW_OK);
}

static void hello_collect_cancel(void *collection) {
    Collection *c = collection;
    atomic_store(&c->cancelled, 1);
}

static void hello_collect_free(void *collection) {
    free(collection);
}

static void hello_destroy(void *instance) {
    free(instance);
}

static void hello_free_bytes(DwBytes bytes) {
    free(bytes.ptr);
}

static const DwPluginTable TABLE = {
    .size = (uint32_t)sizeof(DwPluginTable),
    .info = hello_info,
    .create = hello_create,
    .collect_start = hello_collect_start,
    .collect_next = hello_collect_next,
    .collect_cancel = hello_collect_cancel,
    .collect_free = hello_collect_free,
    .destroy = hello_destroy,
    .free_bytes = hello_free_bytes,
};

static const DwPluginHeader HEADER = {
    .magic = HELLO_MAGIC,
    .abi_major = DW_ABI_MAJOR_OVERRIDE,
    .abi_minor = DW_ABI_MINOR,
    .sdk_version = "0.1.0",
    .name = "c-hello",
    .version = "0.1.0",
    .table = &TABLE,
};

#ifdef DW_NO_ENTRY
const DwPluginHeader *not_the_entry(void);

const DwPluginHeader *not_the_entry(void) {
    return &HEADER;
}
#else
const DwPluginHeader *driftwatch_plugin_v1(void) {
    return &HEADER;
}
#endif
