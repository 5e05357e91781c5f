// ivf_flat.cu — IVF-Flat list scan: fused distance + top-k per (query, list segment).
//
// Compiled at run time by cupy.RawModule (NVRTC) from gpuvec/ops/kernels.py; launched only
// by gpuvec/ops/ivf_gpu.py. Its NumPy twin is gpuvec.index.ivf_lists.IvfLists.search.
//
// SIGNATURES (the two differ only in the stored row type)
//   extern "C" __global__ void ivf_flat_scan_f32(
//       const float* vecs,              // [n, dim] rows, packed list after list
//       const long long* ids,           // [n] each stored row's number
//       const long long* offsets,       // [nlist + 1] list l = rows offsets[l] .. offsets[l+1]
//       const float* queries,           // [rows, dim]
//       const int* probes,              // [rows, nprobe] the lists each query scans
//       const unsigned char* valid,     // [row numbers] nonzero = may be returned, or NULL
//       int dim, int nprobe, int segs, int seg_len, int k, int ip,
//       float* out_d,                   // [rows, nprobe * segs * k]
//       long long* out_i)               // [rows, nprobe * segs * k]
//   extern "C" __global__ void ivf_flat_scan_f16(const unsigned short* vecs, ...same...)
//       (IEEE half-precision bit patterns, widened with the PTX cvt.f32.f16 instruction)
//
// LAUNCH SHAPE
//   grid  = (nprobe * segs, rows, 1)   (rows <= 65535: the caller splits larger batches)
//   block = (256, 1, 1)                (any multiple of 32 up to 1024)
//   dynamic shared memory = seg_len * 4 bytes (the segment's scores); segs * seg_len must
//   cover the longest list.
//
// WHAT IT COMPUTES
//   Block (x, r): query r, probe p = x / segs, segment s = x % segs of list l = probes[r, p]:
//   the stored rows offsets[l] + s*seg_len + j, 0 <= j < len (len = what is left of the
//   list, at most seg_len, possibly 0). For each: v = sum_d (x_d - q_d)^2 (ip = 0) or
//   v = -sum_d x_d * q_d (ip = 1: the caller negates back); rows whose number is not
//   valid are not eligible. Out slots [x*k, x*k + k) of row r get the want = min(k, eligible)
//   eligible (v, id) pairs first in the order (v ascending, position ascending), the rest
//   (+inf, -1) — exactly the contract of topk_select_f32 in topk.cu, whose rounds then merge
//   the nprobe * segs * k candidates of a row into its top k.
//   Sums run lane-strided over dimensions, then a warp shuffle reduction: deterministic for
//   a given dim, but not the twin's summation order (tests compare with a tolerance).
//
// ALGORITHM
//   Phase 1: each warp scores rows (lanes read consecutive dimensions: coalesced), lane 0
//   stores the score (NaN = not eligible) in shared memory. Phase 2: the radix select and
//   ordered compaction of topk.cu over the shared scores.

__device__ __forceinline__ unsigned int ivf_order_key(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u << 1) == 0u) {
        u = 0u;  // -0.0 -> +0.0
    }
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float ivf_load(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float ivf_load(const unsigned short* p, long long i) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i]));
    return f;
}

template <typename T>
__device__ void ivf_flat_scan(
    const T* __restrict__ vecs, const long long* __restrict__ ids,
    const long long* __restrict__ offsets, const float* __restrict__ queries,
    const int* __restrict__ probes, const unsigned char* __restrict__ valid,
    int dim, int nprobe, int segs, int seg_len, int k, int ip,
    float* __restrict__ out_d, long long* __restrict__ out_i) {
    extern __shared__ float sd[];
    __shared__ unsigned int hist[256];
    __shared__ unsigned int s_prefix;
    __shared__ unsigned int s_mask;
    __shared__ int s_remaining;
    __shared__ int s_want;
    __shared__ int s_take_all;
    __shared__ int s_base_lt;
    __shared__ int s_base_eq;
    __shared__ int warp_lt[32];
    __shared__ int warp_eq[32];

    const int tid = threadIdx.x;
    const int nthreads = blockDim.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int nwarps = (nthreads + 31) >> 5;

    const long long row = blockIdx.y;
    const int p = blockIdx.x / segs;
    const int seg = blockIdx.x - p * segs;
    const int lst = probes[row * nprobe + p];
    const long long start = offsets[lst] + (long long)seg * seg_len;
    const long long end = offsets[lst + 1];
    const int len = (start < end) ? (int)min((long long)seg_len, end - start) : 0;
    const float* q = queries + row * dim;
    const long long width = (long long)nprobe * segs * k;
    float* od = out_d + row * width + (long long)blockIdx.x * k;
    long long* oi = out_i + row * width + (long long)blockIdx.x * k;

    // ---- phase 1: scores into shared memory ------------------------------------------------
    for (int j = warp; j < len; j += nwarps) {
        const long long base = (start + j) * (long long)dim;
        float acc = 0.0f;
        for (int d = lane; d < dim; d += 32) {
            const float x = ivf_load(vecs, base + d);
            if (ip) {
                acc = __fmaf_rn(x, q[d], acc);
            } else {
                const float diff = x - q[d];
                acc = __fmaf_rn(diff, diff, acc);
            }
        }
        for (int off = 16; off > 0; off >>= 1) {
            acc += __shfl_down_sync(0xffffffffu, acc, off);
        }
        if (lane == 0) {
            const bool ok = valid == nullptr || valid[ids[start + j]] != 0;
            sd[j] = ok ? (ip ? -acc : acc) : __int_as_float(0x7fc00000);  // NaN: not eligible
        }
    }
    __syncthreads();

    // ---- phase 2: radix select over the eligible scores -------------------------------------
    const int kc = min(k, len);
    if (tid == 0) {
        s_prefix = 0u;
        s_mask = 0u;
        s_remaining = 0;
        s_want = 0;
        s_take_all = 0;
    }
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int j = tid; j < 256; j += nthreads) {
            hist[j] = 0u;
        }
        __syncthreads();
        const unsigned int prefix = s_prefix;
        const unsigned int mask = s_mask;
        for (int j = tid; j < len; j += nthreads) {
            const float v = sd[j];
            if (v == v) {
                const unsigned int key = ivf_order_key(v);
                if ((key & mask) == prefix) {
                    atomicAdd(&hist[(key >> shift) & 0xFFu], 1u);
                }
            }
        }
        __syncthreads();
        if (warp == 0) {
            int local[8];
            int s = 0;
            for (int b = 0; b < 8; ++b) {
                local[b] = (int)hist[lane * 8 + b];
                s += local[b];
            }
            int incl = s;
            for (int off = 1; off < 32; off <<= 1) {
                const int v = __shfl_up_sync(0xffffffffu, incl, off);
                if (lane >= off) {
                    incl += v;
                }
            }
            int rem = s_remaining;
            bool decided = false;
            if (shift == 24) {
                const int total = __shfl_sync(0xffffffffu, incl, 31);
                rem = min(kc, total);
                if (rem == total) {
                    decided = true;
                    if (lane == 0) {
                        s_want = rem;
                        s_take_all = 1;
                    }
                } else if (lane == 0) {
                    s_want = rem;
                }
            }
            if (!decided) {
                const unsigned int ballot = __ballot_sync(0xffffffffu, incl >= rem);
                const int first = (ballot != 0u) ? (__ffs((int)ballot) - 1) : 31;
                if (lane == first) {
                    int r = rem - (incl - s);
                    int dsel = lane * 8 + 7;
                    for (int b = 0; b < 8; ++b) {
                        if (r <= local[b]) {
                            dsel = lane * 8 + b;
                            break;
                        }
                        r -= local[b];
                    }
                    s_prefix = prefix | ((unsigned int)dsel << shift);
                    s_mask = mask | (0xFFu << shift);
                    s_remaining = r;
                }
            }
        }
        __syncthreads();
        if (s_take_all) {
            break;
        }
    }

    // ---- padding and ordered compaction -----------------------------------------------------
    const bool take_all = s_take_all != 0;
    const int want = s_want;
    const unsigned int kth = s_prefix;
    const int need_eq = take_all ? 0 : s_remaining;
    const int n_lt = want - need_eq;
    for (int j = want + tid; j < k; j += nthreads) {
        od[j] = __int_as_float(0x7f800000);
        oi[j] = -1;
    }
    if (want == 0) {
        return;
    }
    if (tid == 0) {
        s_base_lt = 0;
        s_base_eq = 0;
    }
    __syncthreads();
    const unsigned int lanes_below = (1u << lane) - 1u;
    for (int t0 = 0; t0 < len; t0 += nthreads) {
        const int j = t0 + tid;
        float v = 0.0f;
        bool lt = false;
        bool eq = false;
        if (j < len) {
            v = sd[j];
            if (v == v) {
                const unsigned int key = ivf_order_key(v);
                lt = take_all || key < kth;
                eq = !take_all && key == kth;
            }
        }
        const unsigned int blt = __ballot_sync(0xffffffffu, lt);
        const unsigned int beq = __ballot_sync(0xffffffffu, eq);
        if (lane == 0) {
            warp_lt[warp] = __popc(blt);
            warp_eq[warp] = __popc(beq);
        }
        __syncthreads();
        int off_lt = 0;
        int off_eq = 0;
        int tot_lt = 0;
        int tot_eq = 0;
        for (int w = 0; w < nwarps; ++w) {
            const int a = warp_lt[w];
            const int b = warp_eq[w];
            if (w < warp) {
                off_lt += a;
                off_eq += b;
            }
            tot_lt += a;
            tot_eq += b;
        }
        const int base_lt = s_base_lt;
        const int base_eq = s_base_eq;
        if (lt) {
            const int pos = base_lt + off_lt + __popc(blt & lanes_below);
            od[pos] = v;
            oi[pos] = ids[start + j];
        } else if (eq) {
            const int qn = base_eq + off_eq + __popc(beq & lanes_below);
            if (qn < need_eq) {
                const int pos = n_lt + qn;
                od[pos] = v;
                oi[pos] = ids[start + j];
            }
        }
        __syncthreads();
        if (tid == 0) {
            s_base_lt = base_lt + tot_lt;
            s_base_eq = base_eq + tot_eq;
        }
        __syncthreads();
        if (s_base_lt >= n_lt && s_base_eq >= need_eq) {
            break;
        }
    }
}

extern "C" __global__ void ivf_flat_scan_f32(
    const float* __restrict__ vecs, const long long* __restrict__ ids,
    const long long* __restrict__ offsets, const float* __restrict__ queries,
    const int* __restrict__ probes, const unsigned char* __restrict__ valid,
    int dim, int nprobe, int segs, int seg_len, int k, int ip,
    float* __restrict__ out_d, long long* __restrict__ out_i) {
    ivf_flat_scan<float>(vecs, ids, offsets, queries, probes, valid, dim, nprobe, segs,
                         seg_len, k, ip, out_d, out_i);
}

extern "C" __global__ void ivf_flat_scan_f16(
    const unsigned short* __restrict__ vecs, const long long* __restrict__ ids,
    const long long* __restrict__ offsets, const float* __restrict__ queries,
    const int* __restrict__ probes, const unsigned char* __restrict__ valid,
    int dim, int nprobe, int segs, int seg_len, int k, int ip,
    float* __restrict__ out_d, long long* __restrict__ out_i) {
    ivf_flat_scan<unsigned short>(vecs, ids, offsets, queries, probes, valid, dim, nprobe, segs,
                          seg_len, k, ip, out_d, out_i);
}
