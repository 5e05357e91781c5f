// cagra_search.cu — CAGRA graph search, one thread block per query (CAGRA's single-CTA
// kernel shape, arXiv 2308.15136 §4): an internal top-itopk buffer, search_width parents
// per iteration, their graph neighbours scored by warps, a visited hash set in shared
// memory, buffer and candidates merged by a bitonic sort in shared memory.
//
// Compiled at run time by cupy.RawModule (NVRTC) from gpuvec/ops/kernels.py; launched only
// by gpuvec/ops/cagra_gpu.py. Its NumPy twin is gpuvec.index.cagra_walk.search (same seeds,
// same graph, same walk; sums run in another order, so near-equal scores may swap).
//
// SIGNATURE
//   extern "C" __global__ void cagra_search_f32(
//       const float* x,                 // [n, dim] rows
//       const int* graph,               // [n, degree] neighbours (-1: none)
//       const float* queries,           // [nq, dim]
//       const long long* seeds,         // [nq, nseeds] rows the walk starts from
//       const unsigned char* valid,     // [n] nonzero = may be returned, or NULL
//       int n, int dim, int degree, int itopk, int width, int nseeds,
//       int min_iter, int max_iter, int k, int ip, int hash_bits, int sort_len,
//       float* out_d,                   // [nq, k]  reported: L2 squared / -key for IP
//       long long* out_i)               // [nq, k]  -1 where fewer than k valid rows
//
// LAUNCH SHAPE
//   grid = (nq, 1, 1); block = (256, 1, 1) (any multiple of 32 up to 1024)
//   sort_len = next power of two >= itopk + width * degree (<= 2048)
//   dynamic shared memory = dim * 4 (the query) + sort_len * 8 (keys, ids)
//                           + (1 << hash_bits) * 4 (visited) + width * 4 (parents)
//
// KEYS
//   key = squared L2 distance, or -inner product (ip = 1); smaller is better. An id's
//   bit 31 marks "expanded" (a parent already); empty slots have key +inf and id -1.
//   Ties are broken by the row id, so the order is deterministic.

#define CAGRA_EXPANDED 0x80000000u

__device__ __forceinline__ bool cagra_less(float ka, unsigned int ia, float kb, unsigned int ib) {
    if (ka < kb) return true;
    if (ka > kb) return false;
    return (ia & 0x7fffffffu) < (ib & 0x7fffffffu);
}

// Insert row into the visited set: true when it was not there (the caller scores it).
__device__ __forceinline__ bool cagra_visit(int* table, int mask, int row) {
    unsigned int h = ((unsigned int)row * 2654435761u) & (unsigned int)mask;
    for (int probe = 0; probe <= mask && probe < 64; ++probe) {
        int old = atomicCAS(&table[h], -1, row);
        if (old == -1) return true;
        if (old == row) return false;
        h = (h + 1u) & (unsigned int)mask;
    }
    return false;  // a full neighbourhood of the table: treat as visited (never loops)
}

// Bitonic sort of sort_len (key, id) pairs in shared memory, ascending by (key, id).
__device__ void cagra_sort(float* keys, unsigned int* ids, int len) {
    for (int size = 2; size <= len; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < len; i += blockDim.x) {
                int j = i ^ stride;
                if (j > i) {
                    bool up = (i & size) == 0;
                    bool swap = up ? cagra_less(keys[j], ids[j], keys[i], ids[i])
                                   : cagra_less(keys[i], ids[i], keys[j], ids[j]);
                    if (swap) {
                        float tk = keys[i]; keys[i] = keys[j]; keys[j] = tk;
                        unsigned int ti = ids[i]; ids[i] = ids[j]; ids[j] = ti;
                    }
                }
            }
            __syncthreads();
        }
    }
}

// Score the candidate slots [itopk, itopk + count) whose id is set (warp per row).
__device__ void cagra_score(const float* __restrict__ x, const float* q, float* keys,
                            const unsigned int* ids, int from, int count, int dim, int ip) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    for (int c = warp; c < count; c += warps) {
        unsigned int id = ids[from + c];
        if (id == 0xffffffffu) continue;
        const float* row = x + (long long)(id & 0x7fffffffu) * dim;
        float acc = 0.0f;
        for (int d = lane; d < dim; d += 32) {
            float v = row[d];
            acc += ip ? v * q[d] : (v - q[d]) * (v - q[d]);
        }
        for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
        if (lane == 0) keys[from + c] = ip ? -acc : acc;
    }
}

// The candidates in [itopk, itopk + cand) are set: clear the rest, score them, and sort
// buffer and candidates together (the best itopk come first).
__device__ void cagra_merge(const float* __restrict__ x, const float* q, float* keys,
                            unsigned int* ids, int itopk, int cand, int sort_len, int dim,
                            int ip) {
    for (int i = itopk + cand + threadIdx.x; i < sort_len; i += blockDim.x) {
        keys[i] = __int_as_float(0x7f800000);
        ids[i] = 0xffffffffu;
    }
    __syncthreads();
    cagra_score(x, q, keys, ids, itopk, cand, dim, ip);
    __syncthreads();
    cagra_sort(keys, ids, sort_len);
}

extern "C" __global__ void cagra_search_f32(
    const float* __restrict__ x, const int* __restrict__ graph,
    const float* __restrict__ queries, const long long* __restrict__ seeds,
    const unsigned char* __restrict__ valid, int n, int dim, int degree, int itopk, int width,
    int nseeds, int min_iter, int max_iter, int k, int ip, int hash_bits, int sort_len,
    float* __restrict__ out_d, long long* __restrict__ out_i) {
    extern __shared__ unsigned char smem[];
    float* q = (float*)smem;
    float* keys = q + dim;
    unsigned int* ids = (unsigned int*)(keys + sort_len);
    int* table = (int*)(ids + sort_len);
    int* parents = table + (1 << hash_bits);
    __shared__ int n_parents;

    const int r = blockIdx.x;
    const int cand = width * degree;
    const int mask = (1 << hash_bits) - 1;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) q[d] = queries[(long long)r * dim + d];
    for (int i = threadIdx.x; i <= mask; i += blockDim.x) table[i] = -1;
    for (int i = threadIdx.x; i < sort_len; i += blockDim.x) {
        keys[i] = __int_as_float(0x7f800000);  // +inf
        ids[i] = 0xffffffffu;
    }
    __syncthreads();

    // the seeds, cand at a time, through the candidate region
    for (int s0 = 0; s0 < nseeds; s0 += cand) {
        for (int c = threadIdx.x; c < cand; c += blockDim.x) {
            int s = s0 + c;
            unsigned int id = 0xffffffffu;
            if (s < nseeds) {
                int row = (int)seeds[(long long)r * nseeds + s];
                if (row >= 0 && row < n && cagra_visit(table, mask, row)) id = (unsigned int)row;
            }
            ids[itopk + c] = id;
            keys[itopk + c] = __int_as_float(0x7f800000);
        }
        cagra_merge(x, q, keys, ids, itopk, cand, sort_len, dim, ip);
    }

    for (int it = 0; it < max_iter; ++it) {
        if (threadIdx.x == 0) {  // the width best entries not expanded yet
            int got = 0;
            for (int i = 0; i < itopk && got < width; ++i) {
                if (ids[i] != 0xffffffffu && !(ids[i] & CAGRA_EXPANDED)) {
                    parents[got++] = (int)ids[i];
                    ids[i] |= CAGRA_EXPANDED;
                }
            }
            n_parents = got;
        }
        __syncthreads();
        if (n_parents == 0 && it >= min_iter) break;
        for (int c = threadIdx.x; c < cand; c += blockDim.x) {
            int p = c / degree;
            unsigned int id = 0xffffffffu;
            if (p < n_parents) {
                int row = graph[(long long)parents[p] * degree + (c % degree)];
                if (row >= 0 && row < n && cagra_visit(table, mask, row)) id = (unsigned int)row;
            }
            ids[itopk + c] = id;
            keys[itopk + c] = __int_as_float(0x7f800000);
        }
        cagra_merge(x, q, keys, ids, itopk, cand, sort_len, dim, ip);
    }

    if (threadIdx.x == 0) {  // the best k valid rows of the buffer
        int got = 0;
        for (int i = 0; i < itopk && got < k; ++i) {
            if (ids[i] == 0xffffffffu) continue;
            int row = (int)(ids[i] & 0x7fffffffu);
            if (valid != nullptr && !valid[row]) continue;
            out_d[(long long)r * k + got] = ip ? -keys[i] : keys[i];
            out_i[(long long)r * k + got] = row;
            ++got;
        }
        for (; got < k; ++got) {
            out_d[(long long)r * k + got] =
                ip ? __int_as_float(0xff800000) : __int_as_float(0x7f800000);
            out_i[(long long)r * k + got] = -1;
        }
    }
}
