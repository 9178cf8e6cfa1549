/*
 * pfflake._header: the fixed-width header decode of pfflake/header.py in one pass.
 *
 * Optional: pfflake builds it when a C compiler is there (hatch_build.py) and
 * falls back to the numpy kernel in header.py when it is not. Both kernels
 * implement the same contract, and tests/test_header.py runs every check on
 * both against a per-frame json.loads:
 *
 *   - every byte of the header row outside the value spans, and the '*'
 *     marker, equals frame 0's template (mask / expect words);
 *   - each value is exactly what "%Nd" prints: spaces, then at least one
 *     digit, no leading zero ("0" alone is fine);
 *   - a frame failing either check is flagged bad and its values are left
 *     meaningless (callers re-parse it as JSON); it is never decoded into a
 *     wrong number.
 *
 * The numpy kernel copies header rows into windows that fit L2 and makes ~30
 * passes over word matrices; here each frame's words are loaded once from the
 * mapped file, in registers, with the GIL released (so two threads can share
 * a decode). The SWAR arithmetic per 8-byte word is the numpy kernel's, word
 * for word (see DecodePlan in header.py for the derivation of each step).
 * Little-endian hosts only: elsewhere the module exports no kernel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#else
typedef struct { uint64_t w[2]; } __m128i;
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define PFF_LITTLE_ENDIAN 1
#else
#define PFF_LITTLE_ENDIAN 0
#endif

#define LOW7 0x7F7F7F7F7F7F7F7FULL
#define TEN_UP 0x7676767676767676ULL
#define HIGH_BITS 0x8080808080808080ULL
#define FLIPPED_SPACES 0x1010101010101010ULL
#define LAST_ONLY (0xFFULL << 56)
#define ALL_ONES 0xFFFFFFFFFFFFFFFFULL
#define EVEN_BYTES 0x00FF00FF00FF00FFULL
#define EVEN_HALVES 0x0000FFFF0000FFFFULL
#define PAIR (10ULL * 256 + 1)
#define QUAD (100ULL * 65536 + 1)
#define OCTET (10000ULL * 4294967296ULL + 1)
#define E8 100000000ULL

#if defined(__x86_64__) && defined(__GNUC__)
#define PFF_SSE41 1 /* built for SSE4.1, used where the CPU has it (checked at import) */
#include <smmintrin.h>
#else
#define PFF_SSE41 0
#endif

#define PREFETCH_AHEAD 8 /* frames */
#define MAX_WORDS 512 /* words per frame: 2 per field at most; header.py plans stay far below */

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* One 8-byte word of a value: its value (0..99999999), the digit-byte mask in *digits,
 * *t == 0 iff the first digit is '0' or there is none; bytes that break "%Nd" go to *err. */
static inline uint64_t word_value(const unsigned char *p, uint64_t keep, uint64_t flip,
                                  uint64_t *err, uint64_t *t, uint64_t *digits) {
    uint64_t x = (load64(p) & keep) ^ flip;  /* digits -> 0..9; spaces, outside -> 0x10 */
    uint64_t a = (((((x & LOW7) + TEN_UP) | x) & HIGH_BITS) >> 7) * 0xFFULL;  /* non-digits */
    *err |= ((x ^ FLIPPED_SPACES) & a)  /* a byte that is neither digit nor space */
            | ((a + 1) & a);            /* a space after a digit */
    a = ~a;                             /* 0xFF in each digit byte (a suffix of the word) */
    x &= a;
    *t = ((a << 8) ^ a) & x;
    *digits = a;
    x = ((x * PAIR) >> 8) & EVEN_BYTES;    /* 16-bit lanes of 0..99 */
    x = ((x * QUAD) >> 16) & EVEN_HALVES;  /* 32-bit lanes of 0..9999 */
    return (x * OCTET) >> 32;              /* first byte most significant */
}

/* Buffers of one call; released together. */
typedef struct {
    Py_buffer buf, offsets, keep, flip, chunk_at, expect, mask, out, bad;
} Views;

static void release(Views *v) {
    Py_buffer *all[] = {&v->buf,      &v->offsets, &v->keep, &v->flip, &v->chunk_at,
                        &v->expect, &v->mask,    &v->out,  &v->bad};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (all[i]->obj != NULL) PyBuffer_Release(all[i]);
    }
}

static void decode_frames(const unsigned char *src, Py_ssize_t n, Py_ssize_t frame_size,
                          const int64_t *offsets, const uint64_t *keep, const uint64_t *flip,
                          Py_ssize_t k, Py_ssize_t m, const __m128i *mask,
                          const __m128i *expect, const int64_t *chunk_at, Py_ssize_t chunks,
                          Py_ssize_t row, int64_t *out,
                          Py_ssize_t out_col, Py_ssize_t out_n, unsigned char *bad) {
    /* bad: this call's n flags (already offset by out_col); out: k rows of out_n */
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *p = src + i * frame_size;
        if (i + PREFETCH_AHEAD < n) { /* the hardware prefetcher does not follow short runs */
            const unsigned char *q = p + PREFETCH_AHEAD * frame_size;
            for (Py_ssize_t b = 0; b < row; b += 64) __builtin_prefetch(q + b, 0, 0);
        }
        /* 1. the template: every byte outside the value spans, and the '*', in 16-byte
         * chunks (the last one ends at the row's end and may overlap the one before) */
        uint64_t diff = 0;
#ifdef __SSE2__
        __m128i d = _mm_setzero_si128();
        for (Py_ssize_t c = 0; c < chunks; c++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + chunk_at[c]));
            __m128i e = _mm_loadu_si128(&expect[c]), mk = _mm_loadu_si128(&mask[c]);
            d = _mm_or_si128(d, _mm_and_si128(_mm_xor_si128(v, e), mk));
        }
        diff = (uint64_t)_mm_cvtsi128_si64(_mm_or_si128(d, _mm_unpackhi_epi64(d, d)));
#else
        for (Py_ssize_t c = 0; c < chunks; c++) {
            const unsigned char *q = p + chunk_at[c];
            const uint64_t *e = (const uint64_t *)&expect[c], *mk = (const uint64_t *)&mask[c];
            diff |= ((load64(q) ^ e[0]) & mk[0]) | ((load64(q + 8) ^ e[1]) & mk[1]);
        }
#endif
        /* 2. the values, wide fields first (their last word, then the word before it).
         * No branches on the data: a field's digit count varies from frame to frame. */
        uint64_t err = 0;
        int lead = 0;
        for (Py_ssize_t j = 0; j < m; j++) {
            uint64_t t, digits, t_hi, digits_hi;
            uint64_t v = word_value(p + offsets[j], keep[j], flip[j], &err, &t, &digits);
            uint64_t hi = word_value(p + offsets[k + j], keep[k + j], flip[k + j], &err, &t_hi,
                                     &digits_hi);
            int lo_lead = (t == 0) & (digits != LAST_ONLY);
            int hi_lead = (t_hi == 0) | (digits != ALL_ONES);  /* or the low word not all digits */
            int hi_used = digits_hi != 0;
            lead |= (hi_used & hi_lead) | ((hi_used ^ 1) & lo_lead);
            out[j * out_n + out_col + i] = (int64_t)(v + hi * E8);
        }
        for (Py_ssize_t j = m; j < k; j++) {
            uint64_t t, digits;
            uint64_t v = word_value(p + offsets[j], keep[j], flip[j], &err, &t, &digits);
            lead |= (t == 0) & (digits != LAST_ONLY);
            out[j * out_n + out_col + i] = (int64_t)v;
        }
        bad[i] = (diff != 0) | (err != 0) | lead;
    }
}


#if PFF_SSE41
/* The same contract, one field per 16-byte vector (SSE4.1): the 16 bytes that end at the
 * field's end; the field is their last `width` bytes. Valid "%Nd" text: every byte of the
 * field a digit or a space, the digits a non-empty run ending at the last byte, and no
 * leading '0' unless it is the only digit. The value: digit pairs, then groups of 4 and 8
 * by multiply-adds (the first byte most significant). Per field ~30 instructions, where
 * the scalar words take ~40 per 8 bytes. */
static const unsigned char INSIDE_TABLE[32] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};

__attribute__((target("sse4.1"))) static void decode_frames_sse41(
    const unsigned char *src, Py_ssize_t n, Py_ssize_t frame_size, const int64_t *ends,
    const int *widths, Py_ssize_t k, const __m128i *mask, const __m128i *expect,
    const int64_t *chunk_at, Py_ssize_t chunks, Py_ssize_t row, int64_t *out,
    Py_ssize_t out_col, Py_ssize_t out_n, unsigned char *bad) {
    const __m128i zero_char = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
    const __m128i space = _mm_set1_epi8(' ');
    const __m128i w10 = _mm_setr_epi8(10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1);
    const __m128i w100 = _mm_setr_epi16(100, 1, 100, 1, 100, 1, 100, 1);
    const __m128i w10000 = _mm_setr_epi16(10000, 1, 10000, 1, 10000, 1, 10000, 1);
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *p = src + i * frame_size;
        if (i + PREFETCH_AHEAD < n) {
            const unsigned char *q = p + PREFETCH_AHEAD * frame_size;
            for (Py_ssize_t b = 0; b < row; b += 64) __builtin_prefetch(q + b, 0, 0);
        }
        __m128i d = _mm_setzero_si128();
        for (Py_ssize_t c = 0; c < chunks; c++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + chunk_at[c]));
            __m128i e = _mm_loadu_si128(&expect[c]), mk = _mm_loadu_si128(&mask[c]);
            d = _mm_or_si128(d, _mm_and_si128(_mm_xor_si128(v, e), mk));
        }
        unsigned broken = !_mm_testz_si128(d, d);
        for (Py_ssize_t j = 0; j < k; j++) {
            const int w = widths[j];
            const unsigned inside = (0xFFFFu << (16 - w)) & 0xFFFFu;
            __m128i v = _mm_loadu_si128((const __m128i *)(p + ends[j] - 16));
            __m128i dv = _mm_sub_epi8(v, zero_char);
            __m128i is_digit = _mm_cmpeq_epi8(_mm_min_epu8(dv, nine), dv);
            unsigned digits = (unsigned)_mm_movemask_epi8(is_digit) & inside;
            unsigned spaces = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, space)) & inside;
            unsigned zeros = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero_char));
            unsigned first = digits & (0u - digits); /* the first digit's bit */
            broken |= ((digits | spaces) != inside)                 /* another byte */
                      | (digits + first != 0x10000u)                /* no digit, or a gap */
                      | (((zeros & first) != 0) & (digits != 0x8000u)); /* leading zero */
            __m128i keep = _mm_loadu_si128((const __m128i *)(INSIDE_TABLE + w));
            __m128i z = _mm_and_si128(dv, _mm_and_si128(is_digit, keep));
            __m128i pairs = _mm_maddubs_epi16(z, w10);                 /* 8 x 0..99 */
            __m128i quads = _mm_madd_epi16(pairs, w100);               /* 4 x 0..9999 */
            __m128i octets = _mm_madd_epi16(_mm_packus_epi32(quads, quads), w10000);
            uint64_t hi = (uint32_t)_mm_cvtsi128_si32(octets);
            uint64_t lo = (uint32_t)_mm_extract_epi32(octets, 1);
            out[j * out_n + out_col + i] = (int64_t)(hi * E8 + lo);
        }
        bad[i] = (unsigned char)broken;
    }
}
#endif

static int use_sse41 = 0; /* set at import: the CPU has SSE4.1 (tests may turn it off) */

static int need(Py_buffer *b, Py_ssize_t bytes, const char *what) {
    if (b->len < bytes) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, need %zd", what, b->len, bytes);
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(decode_doc,
"decode(buf, base, n, frame_size, offsets, keep, flip, k, m, chunk_at, expect, mask, row,\n"
"       out, out_col, bad)\n"
"\n"
"Decode k fields of n frames from byte base of buf (frames frame_size bytes apart)\n"
"into out (int64, k rows of len(bad) values, starting at column out_col) and flag\n"
"bad frames in bad[out_col:out_col + n]. offsets/keep/flip: per 8-byte value word\n"
"(k + m words, the m high words of the wide fields last, in the order of the first m\n"
"fields); chunk_at/expect/mask: the 16-byte chunks of the header row (row bytes,\n"
"'*' included) and their template bytes and compare mask. Releases the GIL.");

static PyObject *decode(PyObject *self, PyObject *args) {
    (void)self;
    Views v;
    memset(&v, 0, sizeof v);
    Py_ssize_t base, n, frame_size, k, m, row, out_col;
    if (!PyArg_ParseTuple(args, "y*nnny*y*y*nny*y*y*nw*nw*", &v.buf, &base, &n, &frame_size,
                          &v.offsets, &v.keep, &v.flip, &k, &m, &v.chunk_at, &v.expect, &v.mask,
                          &row, &v.out, &out_col, &v.bad)) {
        release(&v);
        return NULL;
    }
    Py_ssize_t nw = k + m, out_n = v.bad.len, chunks = v.chunk_at.len / 8;
    int ok = 1;
    if (n < 0 || base < 0 || k < 0 || m < 0 || m > k || row < 16 || frame_size < row ||
        out_col < 0 || out_col + n > out_n) {
        PyErr_SetString(PyExc_ValueError, "decode: bad sizes");
        ok = 0;
    }
    ok = ok && need(&v.offsets, nw * 8, "offsets") && need(&v.keep, nw * 8, "keep") &&
         need(&v.flip, nw * 8, "flip") && need(&v.expect, chunks * 16, "expect") &&
         need(&v.mask, chunks * 16, "mask") && need(&v.out, k * out_n * 8, "out");
    if (ok) {
        const int64_t *offsets = v.offsets.buf, *chunk_at = v.chunk_at.buf;
        for (Py_ssize_t j = 0; ok && j < nw; j++) ok = offsets[j] >= 0 && offsets[j] + 8 <= row;
        for (Py_ssize_t c = 0; ok && c < chunks; c++) ok = chunk_at[c] >= 0 && chunk_at[c] + 16 <= row;
        if (!ok) PyErr_SetString(PyExc_ValueError, "decode: a word lies outside the header row");
    }
    /* every frame's row must lie inside buf (the last frame's pixels may be cut) */
    ok = ok && (n == 0 || need(&v.buf, base + (n - 1) * frame_size + row, "buf"));
#if PFF_SSE41
    if (ok && n > 0 && use_sse41 && k <= MAX_WORDS) {
        /* per field: where it ends, and its width (the bytes keep marks in its words) */
        int64_t ends[MAX_WORDS];
        int widths[MAX_WORDS];
        const int64_t *offsets = v.offsets.buf;
        const uint64_t *keep = v.keep.buf;
        for (Py_ssize_t j = 0; j < k; j++) {
            ends[j] = offsets[j] + 8;
            widths[j] = __builtin_popcountll(keep[j]) / 8 +
                        (j < m ? __builtin_popcountll(keep[k + j]) / 8 : 0);
            if (ends[j] < 16 || widths[j] < 1 || widths[j] > 16) {
                PyErr_SetString(PyExc_ValueError, "decode: a field is not 1-16 bytes wide");
                ok = 0;
                break;
            }
        }
        if (ok) {
            Py_BEGIN_ALLOW_THREADS
            decode_frames_sse41((const unsigned char *)v.buf.buf + base, n, frame_size, ends,
                                widths, k, v.mask.buf, v.expect.buf, v.chunk_at.buf, chunks,
                                row, v.out.buf, out_col, out_n,
                                (unsigned char *)v.bad.buf + out_col);
            Py_END_ALLOW_THREADS
        }
        release(&v);
        if (!ok) return NULL;
        Py_RETURN_NONE;
    }
#endif
    if (ok && n > 0) {
        Py_BEGIN_ALLOW_THREADS
        decode_frames((const unsigned char *)v.buf.buf + base, n, frame_size, v.offsets.buf,
                      v.keep.buf, v.flip.buf, k, m, v.mask.buf, v.expect.buf, v.chunk_at.buf,
                      chunks, row, v.out.buf, out_col, out_n,
                      (unsigned char *)v.bad.buf + out_col);
        Py_END_ALLOW_THREADS
    }
    release(&v);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyObject *set_simd(PyObject *self, PyObject *arg) {
    (void)self;
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    int before = use_sse41;
#if PFF_SSE41
    use_sse41 = on && __builtin_cpu_supports("sse4.1");
#endif
    return PyBool_FromLong(before);
}

static PyObject *simd(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyBool_FromLong(use_sse41);
}

static PyMethodDef methods[] = {
#if PFF_LITTLE_ENDIAN
    {"decode", decode, METH_VARARGS, decode_doc},
    {"simd", simd, METH_NOARGS, "True if decode uses its SSE4.1 path."},
    {"set_simd", set_simd, METH_O,
     "Use the SSE4.1 path where the CPU has it (True) or the scalar one (False); returns the "
     "previous setting. For tests: both paths keep one contract."},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pfflake._header",
    "The fixed-width PFF header decode in C (optional; see pfflake.header).", -1, methods,
};

PyMODINIT_FUNC PyInit__header(void) {
#if PFF_SSE41
    __builtin_cpu_init();
    use_sse41 = __builtin_cpu_supports("sse4.1");
#endif
    return PyModule_Create(&module);
}
