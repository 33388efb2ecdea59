/*
 * Optional compiled skimmer for scanners/pickle_vm.py (PickleMachine._skim_py is the reference).
 *
 * skim(buf, i, limit, base, keep, memo, into_dict, preview) walks one ``MARK ... APPENDS/SETITEMS``
 * batch whose items the loader would discard, exactly as ``PickleMachine._skim_py`` does, with one
 * small tag per stack item. It never touches ``memo`` (an ``array('q')``, read through the buffer
 * protocol); the memo codes the batch would append are returned as native int64 bytes for
 * ``memo.frombytes``. It returns None where the Python skim abandons (its caller replays the batch
 * with the full walk), else ``(index after the batch, opcodes walked, last string constant or None,
 * index of the opcode that pushed it, memo codes)``.
 *
 * It parses hostile bytes: every read is bounds-checked against the buffer length, there is no
 * recursion, and everything allocated grows with the opcodes actually walked (each one at least one
 * byte of the buffer), never with a length declared in the data.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum {
    T_SCALAR = 0,
    T_TUPLE = 1,
    T_NESTED_TUPLE = 2,
    T_HASHABLE = 2,
    T_EMPTY_DICT = 3,
    T_DICT = 4,
    T_EMPTY_LIST = 5,
    T_LIST = 6,
    T_OTHER = 7,
};

#define OPAQUE_CODE ((int64_t)-2)
#define MAX_PREVIEW ((Py_ssize_t)1 << 20)

/* Size of the opcodes that push a hashable scalar from a fixed-size operand (0: others). */
static unsigned char scalar_width[256];

typedef struct {
    void *v;
    Py_ssize_t n;
    Py_ssize_t cap;
} vec;

/* Make room for one more item of ``size`` bytes; -1 with MemoryError set on failure. */
static int
vec_reserve(vec *a, size_t size)
{
    if (a->n < a->cap) {
        return 0;
    }
    Py_ssize_t cap = a->cap ? a->cap : 64;
    if (a->cap) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    if ((size_t)cap > (size_t)PY_SSIZE_T_MAX / size) {
        PyErr_NoMemory();
        return -1;
    }
    void *v = PyMem_Realloc(a->v, (size_t)cap * size);
    if (v == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    a->v = v;
    a->cap = cap;
    return 0;
}

typedef struct {
    const unsigned char *p; /* the buffer */
    Py_ssize_t len;         /* its length: every read is checked against it */
    const int64_t *memo;    /* the memo before the batch */
    Py_ssize_t m0;          /* its length */
    long long base;         /* absolute offset of p[0] */
    vec codes;              /* int64 memo codes appended by the batch */
    vec tags;               /* unsigned char per stack item */
    vec frames;             /* Py_ssize_t saved floors */
} walk;

/* Return codes of the helpers below (indexes are never negative). */
#define ABANDON (-1)
#define FAILED (-2)

static inline int
has(const walk *w, Py_ssize_t pos, Py_ssize_t count)
{
    return pos >= 0 && count <= w->len && pos <= w->len - count;
}

static inline uint32_t
u4(const walk *w, Py_ssize_t pos)
{
    const unsigned char *q = w->p + pos;
    return (uint32_t)q[0] | ((uint32_t)q[1] << 8) | ((uint32_t)q[2] << 16) | ((uint32_t)q[3] << 24);
}

static inline Py_ssize_t
memo_len(const walk *w)
{
    return w->m0 + w->codes.n;
}

/* Memo code at ``idx``; 0 if there is no such key (the Python skim's IndexError). */
static inline int
memo_at(const walk *w, uint64_t idx, int64_t *code)
{
    if (idx < (uint64_t)w->m0) {
        *code = w->memo[idx];
        return 1;
    }
    idx -= (uint64_t)w->m0;
    if (idx < (uint64_t)w->codes.n) {
        *code = ((int64_t *)w->codes.v)[idx];
        return 1;
    }
    return 0;
}

static inline int
append_code(walk *w, int64_t code)
{
    if (vec_reserve(&w->codes, sizeof(int64_t)) < 0) {
        return -1;
    }
    ((int64_t *)w->codes.v)[w->codes.n++] = code;
    return 0;
}

static inline int
push_tag(walk *w, unsigned char tag)
{
    if (vec_reserve(&w->tags, 1) < 0) {
        return -1;
    }
    ((unsigned char *)w->tags.v)[w->tags.n++] = tag;
    return 0;
}

static inline int
push_frame(walk *w, Py_ssize_t floor)
{
    if (vec_reserve(&w->frames, sizeof(Py_ssize_t)) < 0) {
        return -1;
    }
    ((Py_ssize_t *)w->frames.v)[w->frames.n++] = floor;
    return 0;
}

/* The MEMOIZE/BINPUT/LONG_BINPUT fused after an object at p[k] storing ``code`` at the next key.
 * Returns the index after it (``k`` if there is none or its key is not the next), ABANDON or
 * FAILED. ``*ops`` counts the fused opcode. */
static Py_ssize_t
fuse_put(walk *w, Py_ssize_t k, int64_t code, Py_ssize_t *ops)
{
    if (!has(w, k, 1)) {
        return ABANDON;
    }
    unsigned char nx = w->p[k];
    Py_ssize_t after;
    if (nx == 0x94) {
        after = k + 1;
    }
    else if (nx == 0x72) {
        if (!has(w, k + 1, 4)) {
            return ABANDON;
        }
        if ((uint64_t)u4(w, k + 1) != (uint64_t)memo_len(w)) {
            return k;
        }
        after = k + 5;
    }
    else if (nx == 0x71) {
        if (!has(w, k + 1, 1)) {
            return ABANDON;
        }
        if ((Py_ssize_t)w->p[k + 1] != memo_len(w)) {
            return k;
        }
        after = k + 2;
    }
    else {
        return k;
    }
    if (append_code(w, code) < 0) {
        return FAILED;
    }
    *ops += 1;
    return after;
}

/* 1 if p[j:k] decodes as UTF-8 with "surrogatepass" (exactly the Python check), 0 if not,
 * -1 with an exception set on another error. */
static int
valid_text(const walk *w, Py_ssize_t j, Py_ssize_t k)
{
    const unsigned char *q = w->p + j;
    Py_ssize_t n = k - j;
    Py_ssize_t t;
    for (t = 0; t < n; t++) {
        if (q[t] & 0x80) {
            break;
        }
    }
    if (t == n) {
        return 1;
    }
    PyObject *s = PyUnicode_DecodeUTF8((const char *)q, n, "surrogatepass");
    if (s != NULL) {
        Py_DECREF(s);
        return 1;
    }
    if (PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

/* A position code (absolute offset of the opcode at index ``i``); -1 with OverflowError set. */
static int
position_code(const walk *w, Py_ssize_t i, int64_t *code)
{
    if (w->base > INT64_MAX - (long long)i) {
        PyErr_SetString(PyExc_OverflowError, "memo position does not fit in 64 bits");
        return -1;
    }
    *code = (int64_t)(w->base + (long long)i);
    return 0;
}

static PyObject *
skim(PyObject *module, PyObject *args)
{
    Py_buffer bb, mb;
    Py_ssize_t i, limit, keep, preview;
    long long base;
    PyObject *memo_obj;
    int into_dict;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*nnLnOpn:skim", &bb, &i, &limit, &base, &keep, &memo_obj,
                          &into_dict, &preview)) {
        return NULL;
    }
    if (PyObject_GetBuffer(memo_obj, &mb, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&bb);
        return NULL;
    }
    PyObject *result = NULL;
    walk w;
    memset(&w, 0, sizeof(w));
    if (mb.itemsize != 8 || mb.format == NULL || strcmp(mb.format, "q") != 0 || mb.len % 8) {
        PyErr_SetString(PyExc_TypeError, "memo must be an array('q')");
        goto done;
    }
    if (i < 0 || keep < 0 || base < 0 || preview < 1 || preview > MAX_PREVIEW) {
        PyErr_SetString(PyExc_ValueError, "skim: argument out of range");
        goto done;
    }
    w.p = (const unsigned char *)bb.buf;
    w.len = bb.len;
    w.memo = (const int64_t *)mb.buf;
    w.m0 = mb.len / 8;
    w.base = base;

    Py_ssize_t ops = 0;
    Py_ssize_t floor = 0;
    int has_last = 0;
    unsigned char last_op = 0;
    Py_ssize_t last_j = 0, last_k = 0, last_at = 0;
    Py_ssize_t got;
    int64_t code;

#define TAGS ((unsigned char *)w.tags.v)
#define FRAMES ((Py_ssize_t *)w.frames.v)
#define PUSH(tag)                        \
    do {                                 \
        if (push_tag(&w, (tag)) < 0)     \
            goto done;                   \
    } while (0)
#define FUSE(at, c)                      \
    do {                                 \
        got = fuse_put(&w, (at), (c), &ops); \
        if (got == FAILED)               \
            goto done;                   \
        if (got == ABANDON)              \
            goto abandon;                \
        i = got;                         \
    } while (0)

    while (i < limit) {
        if (!has(&w, i, 1)) {
            goto abandon;
        }
        unsigned char op = w.p[i];
        ops++;
        if (op == 0x68 || op == 0x6A) { /* BINGET / LONG_BINGET: a constant or plain data only */
            uint64_t idx;
            Py_ssize_t size = op == 0x68 ? 2 : 5;
            if (!has(&w, i + 1, size - 1)) {
                goto abandon;
            }
            idx = op == 0x68 ? w.p[i + 1] : u4(&w, i + 1);
            if (!memo_at(&w, idx, &code) || (code < 0 && code != OPAQUE_CODE)) {
                goto abandon;
            }
            PUSH(T_SCALAR);
            i += size;
            continue;
        }
        unsigned char width = scalar_width[op];
        if (width) { /* BINFLOAT, BININT*, NONE, NEWTRUE, NEWFALSE */
            PUSH(T_SCALAR);
            i += width;
            continue;
        }
        if (op == 0x8C || op == 0x58 || op == 0x43) {
            /* SHORT_BINUNICODE / BINUNICODE / SHORT_BINBYTES (+ MEMOIZE/BINPUT) */
            Py_ssize_t j, k;
            if (op == 0x58) {
                if (!has(&w, i + 1, 4)) {
                    goto abandon;
                }
                uint32_t n = u4(&w, i + 1);
                if ((uint64_t)n > (uint64_t)keep) {
                    goto abandon;
                }
                j = i + 5;
                if ((Py_ssize_t)n > limit - j) { /* k > limit, without overflowing k */
                    goto abandon;
                }
                k = j + (Py_ssize_t)n;
            }
            else {
                if (!has(&w, i + 1, 1)) {
                    goto abandon;
                }
                j = i + 2;
                k = j + w.p[i + 1];
            }
            if (k > w.len) {
                goto abandon;
            }
            if (op != 0x43) {
                int ok = valid_text(&w, j, k);
                if (ok < 0) {
                    goto done;
                }
                if (!ok) {
                    goto abandon;
                }
            }
            has_last = 1;
            last_op = op;
            last_j = j;
            last_k = k;
            last_at = i;
            PUSH(T_SCALAR);
            if (position_code(&w, i, &code) < 0) {
                goto done;
            }
            i = k;
            /* The position code is only appended if a put follows; overflow is checked first,
             * where the Python skim would fail on the append (base < 2**63 - 2**32 in practice). */
            FUSE(k, code);
            continue;
        }
        if (op == 0x7D || op == 0x5D) { /* EMPTY_DICT / EMPTY_LIST (+ MEMOIZE/BINPUT, MARK) */
            PUSH(op == 0x7D ? T_EMPTY_DICT : T_EMPTY_LIST);
            i += 1;
            FUSE(i, OPAQUE_CODE);
            if (!has(&w, i, 1)) {
                goto abandon;
            }
            if (w.p[i] == 0x28) {
                if (push_frame(&w, floor) < 0) {
                    goto done;
                }
                floor = w.tags.n;
                ops++;
                i++;
            }
            continue;
        }
        if (op == 0x75 || op == 0x65) { /* SETITEMS / APPENDS */
            Py_ssize_t n = w.tags.n - floor;
            if (w.frames.n == 0) {
                /* The end of the batch: its items go nowhere. */
                if ((op == 0x75) != (into_dict != 0) || (n & 1)) {
                    goto abandon;
                }
                i += 1;
                goto success;
            }
            if (floor <= 0 || floor > w.tags.n) {
                goto abandon;
            }
            unsigned char target = TAGS[floor - 1];
            unsigned char done_tag;
            if (op == 0x75) {
                if (target != T_EMPTY_DICT || (n & 1)) {
                    goto abandon;
                }
                if (n) {
                    Py_ssize_t stop = floor + 2 * preview;
                    if (stop > w.tags.n) {
                        stop = w.tags.n;
                    }
                    unsigned char top = 0;
                    for (Py_ssize_t t = floor; t < stop; t += 2) {
                        if (TAGS[t] > top) {
                            top = TAGS[t];
                        }
                    }
                    if (top > T_HASHABLE) {
                        goto abandon;
                    }
                }
                done_tag = n ? T_DICT : T_EMPTY_DICT;
            }
            else {
                if (target != T_EMPTY_LIST && target != T_LIST) {
                    goto abandon;
                }
                done_tag = n ? T_LIST : target;
            }
            w.tags.n = floor;
            TAGS[floor - 1] = done_tag;
            floor = FRAMES[--w.frames.n];
            i += 1;
            continue;
        }
        if ((op >= 0x85 && op <= 0x87) || op == 0x74) { /* TUPLE1/2/3 / TUPLE (+ MEMOIZE/BINPUT) */
            unsigned char top = T_SCALAR;
            if (op == 0x74) {
                if (w.frames.n == 0 || floor > w.tags.n) {
                    goto abandon;
                }
                Py_ssize_t stop = w.tags.n - floor > preview ? floor + preview : w.tags.n;
                for (Py_ssize_t t = floor; t < stop; t++) {
                    if (TAGS[t] > top) {
                        top = TAGS[t];
                    }
                }
                w.tags.n = floor;
                floor = FRAMES[--w.frames.n];
            }
            else {
                Py_ssize_t n = op - 0x84;
                if (w.tags.n - floor < n) {
                    goto abandon;
                }
                for (Py_ssize_t t = w.tags.n - n; t < w.tags.n; t++) {
                    if (TAGS[t] > top) {
                        top = TAGS[t];
                    }
                }
                w.tags.n -= n;
            }
            i += 1;
            if (top != T_SCALAR) {
                PUSH(top <= T_HASHABLE ? T_NESTED_TUPLE : T_OTHER);
                continue;
            }
            PUSH(T_TUPLE);
            FUSE(i, OPAQUE_CODE);
            continue;
        }
        if (op == 0x28) { /* MARK */
            if (push_frame(&w, floor) < 0) {
                goto done;
            }
            floor = w.tags.n;
            i += 1;
            continue;
        }
        if (op == 0x94 || op == 0x71 || op == 0x72) { /* MEMOIZE / BINPUT / LONG_BINPUT */
            if (w.tags.n == 0) {
                goto abandon;
            }
            unsigned char top = TAGS[w.tags.n - 1];
            if (top != T_TUPLE && top != T_EMPTY_DICT && top != T_EMPTY_LIST) {
                goto abandon;
            }
            if (op == 0x94) {
                i += 1;
            }
            else if (op == 0x71) {
                if (!has(&w, i + 1, 1) || (Py_ssize_t)w.p[i + 1] != memo_len(&w)) {
                    goto abandon;
                }
                i += 2;
            }
            else {
                if (!has(&w, i + 1, 4) || (uint64_t)u4(&w, i + 1) != (uint64_t)memo_len(&w)) {
                    goto abandon;
                }
                i += 5;
            }
            if (append_code(&w, OPAQUE_CODE) < 0) {
                goto done;
            }
            continue;
        }
        if (op == 0x29) { /* EMPTY_TUPLE */
            PUSH(T_TUPLE);
            i += 1;
            continue;
        }
        if (op == 0x95) { /* FRAME */
            i += 9;
            continue;
        }
        if (op == 0x8A) { /* LONG1 */
            if (!has(&w, i + 1, 1)) {
                goto abandon;
            }
            PUSH(T_SCALAR);
            i += 2 + (Py_ssize_t)w.p[i + 1];
            continue;
        }
        goto abandon;
    }

abandon:
    result = Py_NewRef(Py_None);
    goto done;

success: {
    PyObject *last = NULL;
    if (has_last) {
        if (last_op == 0x43) {
            last = PyBytes_FromStringAndSize((const char *)w.p + last_j, last_k - last_j);
        }
        else {
            last = PyUnicode_DecodeUTF8((const char *)w.p + last_j, last_k - last_j,
                                        "surrogatepass");
        }
        if (last == NULL) {
            goto done;
        }
    }
    else {
        last = Py_NewRef(Py_None);
    }
    PyObject *codes = PyBytes_FromStringAndSize((const char *)w.codes.v,
                                                w.codes.n * (Py_ssize_t)sizeof(int64_t));
    if (codes == NULL) {
        Py_DECREF(last);
        goto done;
    }
    result = Py_BuildValue("(nnNnN)", i, ops, last, has_last ? last_at : (Py_ssize_t)0, codes);
}

done:
    PyMem_Free(w.codes.v);
    PyMem_Free(w.tags.v);
    PyMem_Free(w.frames.v);
    PyBuffer_Release(&mb);
    PyBuffer_Release(&bb);
    return result;
#undef TAGS
#undef FRAMES
#undef PUSH
#undef FUSE
}

static PyMethodDef methods[] = {
    {"skim", skim, METH_VARARGS,
     "skim(buf, i, limit, base, keep, memo, into_dict, preview) -> None | "
     "(index, ops, last_const | None, last_index, memo_codes)\n\n"
     "Compiled PickleMachine._skim_py: walk a discarded MARK ... APPENDS/SETITEMS batch."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_pickle_accel",
    "Optional compiled inner loop of scanners.pickle_vm (pure Python is the reference).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__pickle_accel(void)
{
    static const unsigned char ops[] = {0x47, 0x4D, 0x4A, 0x4B, 0x88, 0x89, 0x4E};
    static const unsigned char widths[] = {9, 3, 5, 2, 1, 1, 1};
    for (size_t t = 0; t < sizeof(ops); t++) {
        scalar_width[ops[t]] = widths[t];
    }
    return PyModule_Create(&module_def);
}
