/* The heads map (shared/integrity/sparse_merkle.py) held in memory as a full audit rebuilds it
 * from the log: the audit's per-row loop in C (issue 27, decision 3).
 *
 * Why C: a full audit replays every head into a 256-level sparse Merkle tree and compares
 * every node with the stored map. In Python that tree was a dict of ~2.4 nodes a key (a
 * tuple, an int and a 65-byte bytes object each, ~550 bytes a key) and the hashing ran one
 * interpreter call a node. Here the tree is a crit-bit tree: one 64-byte leaf (key, value
 * hash) a key and one 48-byte record a branching node (both halves non-empty), with that
 * node's hash cached; the one-child interior nodes above a branching node (a "chain": its
 * keys share more bits) and the leaves' hashes are recomputed when needed, so memory is
 * ~112 bytes a key. Every hash is SHA-256 computed here (FIPS 180-4), with the x86 SHA
 * extensions when the CPU has them: the database computes nothing this trusts.
 *
 * The tree's rules are sparse_merkle's: leaf SHA-256(0x02 || key || value hash), interior
 * SHA-256(0x03 || left || right), empty subtree 32 zero bytes, a one-key subtree hoisted
 * to its leaf. `strata` yields every node's 65-byte hash preimage, cut into the stored
 * map's strata (shared/storage/map_strata.py) and in the order they are read: a stratum's
 * prefix and its row as stored. The pure-Python twin is shared/integrity/map_memory.PureMap;
 * a test holds the two to the same roots, strata and audit findings. */

#include <string.h>

#include "plant_native.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI_CODE 1
#endif

/* ---- SHA-256 (FIPS 180-4) ---- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void blocks_portable(uint32_t s[8], const uint8_t *p, size_t blocks) {
    uint32_t w[64];
    while (blocks--) {
        for (int t = 0; t < 16; t++)
            w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
                   (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
        for (int t = 0; t < 64; t++) {
            uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) +
                          K256[t] + w[t];
            uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        s[0] += a;
        s[1] += b;
        s[2] += c;
        s[3] += d;
        s[4] += e;
        s[5] += f;
        s[6] += g;
        s[7] += h;
        p += 64;
    }
}

#ifdef HAVE_SHA_NI_CODE
/* The same compression with the SHA extensions: four rounds a step, the message schedule
 * by sha256msg1/msg2. The state is kept as ABEF and CDGH, as sha256rnds2 wants it. */
__attribute__((target("sha,sse4.1,ssse3"))) static void blocks_sha_ni(uint32_t s[8],
                                                                       const uint8_t *p,
                                                                       size_t blocks) {
    const __m128i order = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&s[0]), 0xB1);
    __m128i cdgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&s[4]), 0x1B);
    __m128i abef = _mm_alignr_epi8(tmp, cdgh, 8);
    cdgh = _mm_blend_epi16(cdgh, tmp, 0xF0);
    while (blocks--) {
        __m128i abef_in = abef, cdgh_in = cdgh, m[4];
        for (int i = 0; i < 16; i++) {
            if (i < 4) {
                m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), order);
            } else {
                __m128i next = _mm_sha256msg1_epu32(m[i & 3], m[(i + 1) & 3]);
                next = _mm_add_epi32(next, _mm_alignr_epi8(m[(i + 3) & 3], m[(i + 2) & 3], 4));
                m[i & 3] = _mm_sha256msg2_epu32(next, m[(i + 3) & 3]);
            }
            __m128i wk = _mm_add_epi32(m[i & 3], _mm_loadu_si128((const __m128i *)&K256[4 * i]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));
        }
        abef = _mm_add_epi32(abef, abef_in);
        cdgh = _mm_add_epi32(cdgh, cdgh_in);
        p += 64;
    }
    tmp = _mm_shuffle_epi32(abef, 0x1B);
    cdgh = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&s[0], _mm_blend_epi16(tmp, cdgh, 0xF0));
    _mm_storeu_si128((__m128i *)&s[4], _mm_alignr_epi8(cdgh, tmp, 8));
}

static int cpu_has_sha_ni(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3)) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 29) & 1;
}
#endif

typedef void (*blocks_fn)(uint32_t[8], const uint8_t *, size_t);
static blocks_fn compress = blocks_portable;

void sha256(const uint8_t *data, size_t len, uint8_t out[32]) {
    uint32_t s[8];
    uint8_t tail[128];
    memcpy(s, H0, sizeof s);
    size_t whole = len / 64, rest = len % 64;
    if (whole) compress(s, data, whole);
    memset(tail, 0, sizeof tail);
    memcpy(tail, data + 64 * whole, rest);
    tail[rest] = 0x80;
    size_t tail_len = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) tail[tail_len - 1 - i] = (uint8_t)(bits >> (8 * i));
    compress(s, tail, tail_len / 64);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s[i] >> 8);
        out[4 * i + 3] = (uint8_t)s[i];
    }
}

const uint8_t EMPTY[32] = {0};

void plant_node_hash(uint8_t tag, const uint8_t a[32], const uint8_t b[32], uint8_t out[32]) {
    uint8_t buf[65];
    buf[0] = tag;
    memcpy(buf + 1, a, 32);
    memcpy(buf + 33, b, 32);
    sha256(buf, 65, out);
}

/* ---- the tree ---- */

#define LEAF_BIT 0x80000000u
#define NONE 0xFFFFFFFFu
#define IS_LEAF(ref) ((ref) & LEAF_BIT)
#define LEAF_OF(ref) ((ref) & ~LEAF_BIT)

typedef struct {
    uint8_t key[32];
    uint8_t value[32]; /* SHA-256 of the head's value */
} Leaf;

typedef struct {
    uint32_t child[2]; /* a leaf's index | LEAF_BIT, or an inner node's index */
    uint32_t leaf;     /* a leaf below: its key gives the node's address bits */
    uint16_t depth;    /* the first bit where the keys below differ */
    uint8_t dirty;     /* its hash is stale */
    uint8_t hash[32];  /* SHA-256(0x03 || left || right) at its own depth */
} Inner;

typedef struct {
    PyObject_HEAD Leaf *leaves;
    Inner *inner;
    uint32_t n_leaves, n_inner, root;
    size_t cap_leaves, cap_inner;
    uint64_t version; /* bumped by every update: a strata iterator refuses a changed tree */
} Tree;

static const uint8_t *key_of(const Tree *t, uint32_t ref) {
    return t->leaves[IS_LEAF(ref) ? LEAF_OF(ref) : t->inner[ref].leaf].key;
}

/* The map's arrays hold fewer than LEAF_BIT items: a reference's top bit tells a leaf. */
static int grow(void **array, size_t *cap, size_t item, size_t want) {
    return plant_reserve(array, cap, item, want, LEAF_BIT, "the map holds too many keys");
}

/* Set key to value: a new leaf, or a new value for the leaf already there. The nodes above
 * it are marked dirty on the way down. */
static int put(Tree *t, const uint8_t *key, const uint8_t *value) {
    if (t->root == NONE) {
        if (grow((void **)&t->leaves, &t->cap_leaves, sizeof(Leaf), t->n_leaves + 1)) return -1;
        memcpy(t->leaves[t->n_leaves].key, key, 32);
        memcpy(t->leaves[t->n_leaves].value, value, 32);
        t->root = t->n_leaves++ | LEAF_BIT;
        return 0;
    }
    uint32_t ref = t->root;
    while (!IS_LEAF(ref)) ref = t->inner[ref].child[bit_at(key, t->inner[ref].depth)];
    const uint8_t *near = t->leaves[LEAF_OF(ref)].key;
    unsigned crit = 256;
    for (unsigned i = 0; i < 32; i++) {
        if (near[i] != key[i]) {
            crit = 8 * i + (unsigned)__builtin_clz((unsigned)(near[i] ^ key[i])) - 24;
            break;
        }
    }
    uint32_t *slot = &t->root;
    while (!IS_LEAF(*slot) && t->inner[*slot].depth < crit) {
        Inner *node = &t->inner[*slot];
        node->dirty = 1;
        slot = &node->child[bit_at(key, node->depth)];
    }
    if (crit == 256) {
        memcpy(t->leaves[LEAF_OF(*slot)].value, value, 32);
        return 0;
    }
    /* the slot's subtree and the new key share the first crit bits and part there */
    if (grow((void **)&t->leaves, &t->cap_leaves, sizeof(Leaf), t->n_leaves + 1)) return -1;
    ptrdiff_t at = (uint8_t *)slot - (uint8_t *)t->inner; /* the slot moves if inner grows */
    int in_inner = slot != &t->root;
    if (grow((void **)&t->inner, &t->cap_inner, sizeof(Inner), t->n_inner + 1)) return -1;
    if (in_inner) slot = (uint32_t *)((uint8_t *)t->inner + at);
    uint32_t leaf = t->n_leaves++;
    memcpy(t->leaves[leaf].key, key, 32);
    memcpy(t->leaves[leaf].value, value, 32);
    Inner *node = &t->inner[t->n_inner];
    int side = bit_at(key, crit);
    node->child[side] = leaf | LEAF_BIT;
    node->child[1 - side] = *slot;
    node->leaf = leaf;
    node->depth = (uint16_t)crit;
    node->dirty = 1;
    *slot = t->n_inner++;
    return 0;
}

static void own_hash(Tree *t, uint32_t ref, uint8_t out[32]);

/* The hash of the subtree `ref` seen from depth `from` (its parent's depth + 1): its own
 * hash, then one interior node a level up to `from` where its keys share more bits. */
static void top_hash(Tree *t, uint32_t ref, unsigned from, uint8_t out[32]) {
    own_hash(t, ref, out);
    if (IS_LEAF(ref)) return;
    const uint8_t *key = key_of(t, ref);
    for (int d = (int)t->inner[ref].depth - 1; d >= (int)from; d--) {
        if (bit_at(key, (unsigned)d))
            plant_node_hash(0x03, EMPTY, out, out);
        else
            plant_node_hash(0x03, out, EMPTY, out);
    }
}

static void own_hash(Tree *t, uint32_t ref, uint8_t out[32]) {
    if (IS_LEAF(ref)) {
        const Leaf *leaf = &t->leaves[LEAF_OF(ref)];
        plant_node_hash(0x02, leaf->key, leaf->value, out);
        return;
    }
    Inner *node = &t->inner[ref];
    if (node->dirty) {
        uint8_t left[32], right[32];
        unsigned below = node->depth + 1u;
        top_hash(t, node->child[0], below, left);
        top_hash(t, node->child[1], below, right);
        node = &t->inner[ref];
        plant_node_hash(0x03, left, right, node->hash);
        node->dirty = 0;
    }
    memcpy(out, node->hash, 32);
}

static PyObject *root_bytes(Tree *t) {
    uint8_t root[32];
    if (t->root == NONE)
        memset(root, 0, 32);
    else
        top_hash(t, t->root, 0, root);
    return PyBytes_FromStringAndSize((const char *)root, 32);
}

static PyObject *Tree_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Tree", kwlist)) return NULL;
    Tree *t = (Tree *)type->tp_alloc(type, 0);
    if (!t) return NULL;
    t->root = NONE;
    return (PyObject *)t;
}

static void Tree_dealloc(Tree *t) {
    PyMem_Free(t->leaves);
    PyMem_Free(t->inner);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static int by_key(const void *a, const void *b) {
    const uint8_t *x = *(const uint8_t *const *)a, *y = *(const uint8_t *const *)b;
    int c = memcmp(x, y, 32);
    return c ? c : (x > y) - (x < y);
}

/* Each record's key set to its value hash; 0, or -1 with an exception set. */
static int put_records(Tree *t, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return -1;
    if (view.len % 64) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "records are 64 bytes: a key, then its value's hash");
        return -1;
    }
    /* Put in key order: consecutive keys walk the same path (in cache), and the nodes of a
     * large batch are laid out as the hashing walks them. Equal keys stay in their order. */
    Py_ssize_t count = view.len / 64;
    const uint8_t **order = PyMem_Malloc((size_t)(count ? count : 1) * sizeof *order);
    if (!order) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) order[i] = (const uint8_t *)view.buf + 64 * i;
    qsort(order, (size_t)count, sizeof *order, by_key);
    t->version++;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (put(t, order[i], order[i] + 32) < 0) {
            PyMem_Free(order);
            PyBuffer_Release(&view);
            return -1;
        }
    }
    PyMem_Free(order);
    PyBuffer_Release(&view);
    return 0;
}

static PyObject *Tree_update(Tree *t, PyObject *arg) {
    return put_records(t, arg) < 0 ? NULL : root_bytes(t);
}

/* As update, the root left to the next update or root(): a batch put in parts hashes each
 * node once, as if put whole, and the caller holds a part's records at a time. */
static PyObject *Tree_put(Tree *t, PyObject *arg) {
    if (put_records(t, arg) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Tree_root(Tree *t, PyObject *unused) { return root_bytes(t); }

static Py_ssize_t Tree_len(Tree *t) { return (Py_ssize_t)t->n_leaves; }

/* ---- every node, a stratum at a time ---- */

/* The nodes in the order the stored map's strata are read (shared/storage/map_strata.py):
 * by stratum prefix (a stratum before those below it, siblings by their next key byte),
 * then by position inside the stratum (its 8 levels top-down, each in address order). The
 * audit streams the stored strata against these, holding neither. */

typedef struct {
    uint32_t ref;
    uint32_t chain;    /* the offset in `hashes` of its chain's hashes (the one at `base`
                          first) when it stands above its own depth; else NONE */
    uint16_t base;     /* the depth it stands at: its parent's + 1 */
    uint16_t position; /* in its stratum: 1 for the top, 2p and 2p + 1 for p's children */
} Item;

typedef struct {
    PyObject_HEAD Tree *tree;
    uint64_t version;
    Item *todo; /* the tops of the strata still to read, the next last */
    uint32_t n_todo;
    size_t cap_todo;
    uint8_t *hashes; /* the current stratum's chains' hashes, 32 bytes each */
    uint32_t n_hashes;
    size_t cap_hashes;
} Strata;

static PyTypeObject StrataType;

/* `ref` as it stands at depth `from` into `item`; its hash seen from there into `out` (its
 * chain's hashes kept in `hashes` for the depths below). */
static int stand(Strata *it, uint32_t ref, unsigned from, Item *item, uint8_t out[32]) {
    Tree *t = it->tree;
    item->ref = ref;
    item->chain = NONE;
    item->base = (uint16_t)from;
    if (IS_LEAF(ref) || t->inner[ref].depth == from) {
        own_hash(t, ref, out);
        return 0;
    }
    unsigned depth = t->inner[ref].depth, length = depth - from + 1;
    if (grow((void **)&it->hashes, &it->cap_hashes, 32, it->n_hashes + length)) return -1;
    uint8_t *chain = it->hashes + 32 * (size_t)it->n_hashes;
    item->chain = it->n_hashes;
    it->n_hashes += length;
    const uint8_t *key = key_of(t, ref);
    own_hash(t, ref, chain + 32 * (depth - from));
    for (int d = (int)depth - 1; d >= (int)from; d--) {
        uint8_t *below = chain + 32 * (d + 1 - from), *here = chain + 32 * (d - from);
        if (bit_at(key, (unsigned)d))
            plant_node_hash(0x03, EMPTY, below, here);
        else
            plant_node_hash(0x03, below, EMPTY, here);
    }
    memcpy(out, chain, 32);
    return 0;
}

static PyObject *Tree_strata(Tree *t, PyObject *unused) {
    Strata *it = PyObject_New(Strata, &StrataType);
    if (!it) return NULL;
    Py_INCREF(t);
    it->tree = t;
    it->version = t->version;
    it->todo = NULL;
    it->n_todo = it->cap_todo = 0;
    it->hashes = NULL;
    it->n_hashes = it->cap_hashes = 0;
    if (t->root != NONE) {
        if (grow((void **)&it->todo, &it->cap_todo, sizeof(Item), 1)) {
            Py_DECREF(it);
            return NULL;
        }
        it->todo[it->n_todo++] = (Item){t->root, NONE, 0, 1};
    }
    return (PyObject *)it;
}

static void Strata_dealloc(Strata *it) {
    Py_XDECREF(it->tree);
    PyMem_Free(it->todo);
    PyMem_Free(it->hashes);
    PyObject_Free(it);
}

#define STRATUM 8 /* levels a stratum spans (map_strata.HEIGHT) */

/* (prefix, row): the next stratum's prefix (the first depth / 8 bytes of its keys) and its
 * row as map_strata.encode writes it: each node present, in increasing position, as one
 * byte of position and its 65-byte preimage. */
static PyObject *Strata_next(Strata *it) {
    Tree *t = it->tree;
    if (it->version != t->version) {
        PyErr_SetString(PyExc_RuntimeError, "the map changed while its strata were read");
        return NULL;
    }
    if (it->n_todo == 0) return NULL; /* StopIteration */
    Item level[2][1 << STRATUM], top = it->todo[--it->n_todo];
    uint8_t row[((1 << STRATUM) - 1) * 66], unused[32];
    unsigned first = top.base, n_now = 1, n_next, now = 0;
    size_t used = 0;
    it->n_hashes = 0;
    if (stand(it, top.ref, first, &level[0][0], unused) < 0) return NULL;
    level[0][0].position = 1;
    for (unsigned depth = first; depth < first + STRATUM && n_now; depth++, now ^= 1) {
        n_next = 0;
        for (unsigned i = 0; i < n_now; i++) {
            Item item = level[now][i];
            uint8_t *record = row + used, *node = record + 1;
            const uint8_t *key = key_of(t, item.ref);
            record[0] = (uint8_t)item.position;
            used += 66;
            if (IS_LEAF(item.ref)) {
                const Leaf *leaf = &t->leaves[LEAF_OF(item.ref)];
                node[0] = 0x02;
                memcpy(node + 1, leaf->key, 32);
                memcpy(node + 33, leaf->value, 32);
                continue;
            }
            node[0] = 0x03;
            if (t->inner[item.ref].depth == depth) { /* a branching node: its two halves */
                Inner here = t->inner[item.ref];
                for (int side = 0; side < 2; side++) {
                    Item *child = &level[now ^ 1][n_next++];
                    if (stand(it, here.child[side], depth + 1, child, node + 1 + 32 * side) < 0)
                        return NULL;
                    child->position = (uint16_t)(2 * item.position + side);
                }
                continue;
            }
            /* a one-child node of a chain: the subtree one level down, and the empty half */
            const uint8_t *below = it->hashes + 32 * ((size_t)item.chain + depth + 1 - item.base);
            int bit = bit_at(key, depth);
            memcpy(node + 1 + 32 * bit, below, 32);
            memcpy(node + 1 + 32 * (1 - bit), EMPTY, 32);
            item.position = (uint16_t)(2 * item.position + bit);
            level[now ^ 1][n_next++] = item;
        }
        n_now = n_next;
    }
    /* what stands at the depth below: the tops of the strata under this one, read next in
     * address order (their chains' hashes are made again there) */
    if (grow((void **)&it->todo, &it->cap_todo, sizeof(Item), it->n_todo + n_now)) return NULL;
    for (unsigned i = n_now; i-- > 0;)
        it->todo[it->n_todo++] = (Item){level[now][i].ref, NONE, first + STRATUM, 1};
    return Py_BuildValue("(y#y#)", key_of(t, top.ref), (Py_ssize_t)(first / STRATUM), row,
                         (Py_ssize_t)used);
}

static PyTypeObject StrataType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "plant_map_native.Strata",
    .tp_basicsize = sizeof(Strata),
    .tp_dealloc = (destructor)Strata_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Strata_next,
};

static PyMethodDef Tree_methods[] = {
    {"update", (PyCFunction)Tree_update, METH_O,
     "update(records) -> root: set each key to its value hash (64-byte records, key then "
     "value hash; a key repeated keeps its last); the new root."},
    {"put", (PyCFunction)Tree_put, METH_O,
     "put(records): as update, no root made (the nodes above are hashed once, by the next "
     "update or root())."},
    {"root", (PyCFunction)Tree_root, METH_NOARGS, "root() -> the map's root (EMPTY if none)."},
    {"strata", (PyCFunction)Tree_strata, METH_NOARGS,
     "strata() -> iterator of (prefix, row): every node, a stratum of 8 levels at a time in "
     "prefix order, each row as map_strata.encode writes it (position byte, 65-byte preimage, "
     "in increasing position)."},
    {NULL}};

static PySequenceMethods Tree_as_sequence = {.sq_length = (lenfunc)Tree_len};

static PyTypeObject TreeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "plant_map_native.Tree",
    .tp_basicsize = sizeof(Tree),
    .tp_dealloc = (destructor)Tree_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The heads map in memory: a crit-bit tree with cached hashes.",
    .tp_new = Tree_new,
    .tp_methods = Tree_methods,
    .tp_as_sequence = &Tree_as_sequence,
};

/* ---- the changed heads' records (map_feed.head_records) ---- */

/* A kind or status as the value holds it: a length byte and the name, when it is
 * [a-z][a-z0-9_]{0,31}; 0 when it is not (the head has no value), -1 when it is no str. */
static int name_bytes(PyObject *text, uint8_t *out) {
    if (!PyUnicode_CheckExact(text)) return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n < 1 || n > 32 || !PyUnicode_IS_ASCII(text)) return 0;
    const char *c = (const char *)PyUnicode_DATA(text);
    if (c[0] < 'a' || c[0] > 'z') return 0;
    for (Py_ssize_t i = 1; i < n; i++)
        if (!((c[i] >= 'a' && c[i] <= 'z') || (c[i] >= '0' && c[i] <= '9') || c[i] == '_'))
            return 0;
    out[0] = (uint8_t)n;
    memcpy(out + 1, c, (size_t)n);
    return 1 + (int)n;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* An entity id in the database's canonical text (8-4-4-4-12 hex digits) as 16 bytes. */
static int uuid_bytes(PyObject *text, uint8_t out[16]) {
    if (!PyUnicode_CheckExact(text) || PyUnicode_GET_LENGTH(text) != 36 ||
        !PyUnicode_IS_ASCII(text))
        return 0;
    const char *c = (const char *)PyUnicode_DATA(text);
    int at = 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c[i] != '-') return 0;
            continue;
        }
        int hi = hex_digit(c[i]), lo = hex_digit(c[i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[at++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    return at == 16;
}

/* An int in [low, 2**64) into out (big-endian): 1; out of range: 0; no exact int: -1. */
static int u64_bytes(PyObject *number, uint64_t low, uint8_t out[8]) {
    if (!PyLong_CheckExact(number)) return -1;
    unsigned long long v = PyLong_AsUnsignedLongLong(number);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (v < low) return 0;
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (56 - 8 * i));
    return 1;
}

/* The head value of one entity, as map_feed.head_value gives it: its length (0: no value),
 * or -1 when an input is not of the plain shape handled here (the caller asks Python). */
static int head_value(PyObject *version, PyObject *entity, PyObject *certificate,
                      uint8_t value[160]) {
    if (!PyTuple_CheckExact(version) || PyTuple_GET_SIZE(version) != 5) return -1;
    PyObject *idx = PyTuple_GET_ITEM(version, 0), *kind = PyTuple_GET_ITEM(version, 1);
    PyObject *number = PyTuple_GET_ITEM(version, 2), *leaf = PyTuple_GET_ITEM(version, 3);
    PyObject *status = PyTuple_GET_ITEM(version, 4);
    if (!PyLong_CheckExact(idx) || !PyLong_CheckExact(number) || !PyUnicode_CheckExact(kind) ||
        !PyBytes_CheckExact(leaf) || (status != Py_None && !PyUnicode_CheckExact(status)) ||
        (certificate != NULL && !PyLong_CheckExact(certificate)))
        return -1;
    if (status == Py_None) return 0;
    uint8_t *p = value;
    *p++ = 0x01;
    if (!uuid_bytes(entity, p)) return -1;
    p += 16;
    uint8_t kind_lp[33], status_lp[33];
    int kind_len = name_bytes(kind, kind_lp), status_len = name_bytes(status, status_lp);
    if (kind_len == 0 || status_len == 0 || PyBytes_GET_SIZE(leaf) != 32) return 0;
    if (u64_bytes(number, 1, p) != 1 || u64_bytes(idx, 0, p + 8) != 1) return 0;
    p += 16;
    memcpy(p, PyBytes_AS_STRING(leaf), 32);
    p += 32;
    int certified = status_len == 10 && memcmp(status_lp + 1, "certified", 9) == 0;
    if (!certified || certificate == NULL) {
        memset(p, 0, 9);
    } else {
        p[0] = 0x01;
        if (u64_bytes(certificate, 0, p + 1) != 1) return 0;
    }
    p += 9;
    memcpy(p, kind_lp, (size_t)kind_len);
    p += kind_len;
    memcpy(p, status_lp, (size_t)status_len);
    p += status_len;
    return (int)(p - value);
}

static PyObject *mod_head_records(PyObject *self, PyObject *args) {
    PyObject *versions, *certificates, *entities, *slow;
    if (!PyArg_ParseTuple(args, "O!O!OO:head_records", &PyDict_Type, &versions, &PyDict_Type,
                          &certificates, &entities, &slow))
        return NULL;
    PyObject *iter = PyObject_GetIter(entities), *named = PyList_New(0), *entity;
    uint8_t *out = NULL;
    size_t used = 0, cap = 0;
    if (!iter || !named) goto fail;
    while ((entity = PyIter_Next(iter)) != NULL) {
        PyObject *version = PyDict_GetItemWithError(versions, entity);
        if (version == NULL) {
            Py_DECREF(entity);
            if (PyErr_Occurred()) goto fail;
            continue;
        }
        PyObject *certificate = PyDict_GetItemWithError(certificates, entity);
        if (certificate == NULL && PyErr_Occurred()) {
            Py_DECREF(entity);
            goto fail;
        }
        uint8_t value[160], record[64];
        int length;
        if (version == Py_None) { /* settled (head_digests): no value */
            Py_DECREF(entity);
            continue;
        } else if (PyBytes_CheckExact(version) && PyBytes_GET_SIZE(version) == 32 &&
                   uuid_bytes(entity, value)) { /* settled: the value's hash */
            sha256(value, 16, record);
            memcpy(record + 32, PyBytes_AS_STRING(version), 32);
            length = 1;
            goto made;
        }
        length = head_value(version, entity, certificate, value);
        if (length < 0) { /* not the plain shape: Python decides (its record, or None) */
            PyObject *made = PyObject_CallFunctionObjArgs(
                slow, version, entity, certificate ? certificate : Py_None, NULL);
            if (!made) {
                Py_DECREF(entity);
                goto fail;
            }
            length = 0;
            if (made != Py_None) {
                if (!PyBytes_Check(made) || PyBytes_GET_SIZE(made) != 64) {
                    Py_DECREF(made);
                    Py_DECREF(entity);
                    PyErr_SetString(PyExc_ValueError, "a record is 64 bytes");
                    goto fail;
                }
                memcpy(record, PyBytes_AS_STRING(made), 64);
                length = 1;
            }
            Py_DECREF(made);
        } else if (length > 0) {
            sha256(value + 1, 16, record); /* the key: SHA-256 of the id's 16 bytes */
            sha256(value, (size_t)length, record + 32);
        }
    made:
        if (length > 0) {
            if (used + 64 > cap) {
                size_t next = cap ? 2 * cap : 64 * 1024;
                uint8_t *moved = PyMem_Realloc(out, next);
                if (!moved) {
                    Py_DECREF(entity);
                    PyErr_NoMemory();
                    goto fail;
                }
                out = moved;
                cap = next;
            }
            memcpy(out + used, record, 64);
            used += 64;
            if (PyList_Append(named, entity) < 0) {
                Py_DECREF(entity);
                goto fail;
            }
        }
        Py_DECREF(entity);
    }
    if (PyErr_Occurred()) goto fail;
    Py_DECREF(iter);
    PyObject *records = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)used);
    PyMem_Free(out);
    if (!records) {
        Py_DECREF(named);
        return NULL;
    }
    return Py_BuildValue("(NN)", records, named);
fail:
    Py_XDECREF(iter);
    Py_XDECREF(named);
    PyMem_Free(out);
    return NULL;
}

/* Each version whose head value no certificate can change (its status is not "certified")
 * replaced, in place, by that value's SHA-256, or None where it has none: what the map takes
 * of it, ~100 bytes less an entity than the tuple (a full audit holds a million). */
static PyObject *mod_head_digests(PyObject *self, PyObject *args) {
    PyObject *versions, *slow, *entity, *version;
    if (!PyArg_ParseTuple(args, "O!O:head_digests", &PyDict_Type, &versions, &slow)) return NULL;
    Py_ssize_t pos = 0;
    while (PyDict_Next(versions, &pos, &entity, &version)) {
        if (PyTuple_CheckExact(version) && PyTuple_GET_SIZE(version) == 5) {
            PyObject *status = PyTuple_GET_ITEM(version, 4);
            if (PyUnicode_CheckExact(status) &&
                PyUnicode_CompareWithASCIIString(status, "certified") == 0)
                continue; /* its value waits for its certificate */
        }
        uint8_t value[160], digest[32];
        int length = head_value(version, entity, NULL, value);
        PyObject *settled;
        if (length < 0) { /* not the plain shape: Python decides */
            settled = PyObject_CallFunctionObjArgs(slow, version, entity, NULL);
        } else if (length == 0) {
            settled = Py_NewRef(Py_None);
        } else {
            sha256(value, (size_t)length, digest);
            settled = PyBytes_FromStringAndSize((const char *)digest, 32);
        }
        /* a value replaced, no key added: the walk goes on (PyDict_Next allows it) */
        if (!settled || PyDict_SetItem(versions, entity, settled) < 0) {
            Py_XDECREF(settled);
            return NULL;
        }
        Py_DECREF(settled);
    }
    Py_RETURN_NONE;
}

/* ---- module ---- */

static PyObject *mod_sha256(PyObject *self, PyObject *arg) {
    Py_buffer view;
    uint8_t out[32];
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    sha256(view.buf, (size_t)view.len, out);
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *mod_use_sha_extensions(PyObject *self, PyObject *arg) {
    int wanted = PyObject_IsTrue(arg);
    if (wanted < 0) return NULL;
    compress = blocks_portable;
#ifdef HAVE_SHA_NI_CODE
    if (wanted && cpu_has_sha_ni()) compress = blocks_sha_ni;
#endif
    return PyBool_FromLong(compress != blocks_portable);
}

static PyMethodDef module_methods[] = {
    {"sha256", mod_sha256, METH_O, "sha256(data) -> digest, by this module's own code."},
    {"head_records", mod_head_records, METH_VARARGS,
     "head_records(versions, certificates, entities, slow) -> (records, named): for each "
     "entity with a head value (map_feed.head_value), its key and its value's hash (64 "
     "bytes), and its id, in order; slow(version, id, certificate) gives the record (or None) "
     "where an input is not of the plain shape handled here."},
    {"head_digests", mod_head_digests, METH_VARARGS,
     "head_digests(versions, slow): each version (entity id -> map_feed.Version) whose head "
     "value no certificate changes replaced in place by its value's SHA-256, or None where "
     "it has none (map_feed.settled); slow(version, id) where it is not of the plain shape. "
     "head_records takes such a hash as the record's second half."},
    {"update_strata", plant_update_strata, METH_VARARGS,
     "update_strata(rows, records) -> (root, [(prefix, stored bytes), ...]): the map kept in "
     "the strata `rows` (prefix -> stored bytes: those on the keys' paths) with each record's "
     "key set to its value hash (64-byte records sorted by key, each key once); the new root "
     "and every stratum rewritten (strata_update.c; map_update's twin). LookupError((depth, "
     "key)) where a non-empty half has no stored node."},
    {"use_sha_extensions", mod_use_sha_extensions, METH_O,
     "use_sha_extensions(wanted) -> in use: the x86 SHA extensions where the CPU has them "
     "(the default), else the portable code (tests hold both to hashlib)."},
    {NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "plant_map_native",
                                    "The heads map's in-memory tree, in C.", -1,
                                    module_methods};

PyMODINIT_FUNC PyInit_plant_map_native(void) {
    if (PyType_Ready(&TreeType) < 0 || PyType_Ready(&StrataType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&TreeType);
    if (PyModule_AddObject(m, "Tree", (PyObject *)&TreeType) < 0) {
        Py_DECREF(&TreeType);
        Py_DECREF(m);
        return NULL;
    }
#ifdef HAVE_SHA_NI_CODE
    if (cpu_has_sha_ni()) compress = blocks_sha_ni;
#endif
    if (plant_audit_rows_add(m) < 0 || plant_head_checks_add(m) < 0 ||
        plant_map_rebuild_add(m) < 0 || plant_version_rows_add(m) < 0 ||
        plant_receipt_rows_add(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
