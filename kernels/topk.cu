// topk.cu — per-row top-k selection (smallest values) over blocks of a distance matrix.
//
// Compiled at run time by cupy.RawModule (NVRTC) from gpuvec/ops/kernels.py; loaded and
// launched only by gpuvec/ops/gpu.py.
//
// SIGNATURE
//   extern "C" __global__ void topk_select_f32(
//       const float* d,            // [rows, ld] row-major; columns [0, ncols) are read
//       long long ld,              // row stride of d and of in_idx, in elements
//       int ncols,                 // columns of each row to select from
//       const long long* in_idx,   // [rows, ld] index of each column, or NULL
//       long long col_offset,      // when in_idx is NULL, column j has index col_offset + j
//       const float* col_scale,    // [ncols] per-column factor, or NULL (= 1)
//       const float* col_bias,     // [ncols] per-column addend, or NULL (= 0)
//       const float* row_tau,      // [rows] per-row bound (only v < tau is eligible), or NULL
//       int k,                     // slots per chunk in the output (k >= 1)
//       int chunk,                 // columns per CUDA block (chunk >= 1)
//       float* out_d,              // [rows, out_ld]
//       long long* out_i,          // [rows, out_ld]
//       long long out_ld)          // row stride of out_d/out_i, >= gridDim.x * k
//   Pointers may be NULL only where stated (pass a 64-bit 0 from Python, not None).
//
// LAUNCH SHAPE
//   grid  = (ceil(ncols / chunk), rows, 1)      (rows <= 65535: split larger launches)
//   block = (256, 1, 1)                         (any multiple of 32 up to 1024)
//   no dynamic shared memory; about 1.3 KiB static shared memory.
//
// WHAT IT COMPUTES (the NumPy reference it must match; tests/gpu/test_ops_gpu.py has it)
//   v[r, j] = d[r, j] * col_scale[j] + col_bias[j]        (factors absent = 1 / 0; the
//             multiply and the add are separately rounded, never fused)
//   id[r, j] = in_idx[r, j] if in_idx else col_offset + j
//   eligible[r, j] = v[r, j] < row_tau[r]                  (every element if row_tau NULL)
//   For every row r and chunk c (columns [c*chunk, min(ncols, (c+1)*chunk)), length L):
//     m = number of eligible columns of the chunk; want = min(k, L, m)
//     sel = the `want` eligible columns that come first in the order
//           (v ascending, column ascending), with -0.0 treated as +0.0
//     out slots [c*k, c*k + want) receive (v, id) of sel: first those with v below the
//     want-th value, then those equal to it, each group in column order (when all m
//     eligible columns are taken: simply in column order); slots [c*k + want, c*k + k)
//     receive (+inf, -1).
//   So a stable sort of each output row by v yields (v, column) order, which is what makes
//   chained rounds (chunk results concatenated in column order, selected again with
//   in_idx) deterministic with ties broken by lower column / lower index.
//   NaN sorts after +inf. +inf is a normal value (masked rows are +inf by construction).
//   row_tau lets a caller that already holds k candidates of lower index with k-th value
//   tau skip everything that cannot beat them (v >= tau loses to all k on value or index).
//
// ALGORITHM
//   One CUDA block per (chunk, row). Radix select on an order-preserving uint32 key of v
//   over the eligible elements: up to four passes of 8 bits each build a 256-bin histogram
//   in shared memory of the keys matching the prefix fixed so far; warp 0 scans it to fix
//   the next digit. The first pass also counts the eligible elements: if there are at most
//   k, all are taken and the other passes are skipped. The result is the want-th key and
//   how many elements equal to it must be taken. A final ordered compaction pass (warp
//   ballots + block scan, tile by tile in column order) writes the elements below that
//   key and the first `need_eq` elements equal to it.

__device__ __forceinline__ unsigned int gv_order_key(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u << 1) == 0u) {
        u = 0u;  // -0.0 -> +0.0
    }
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float gv_value(const float* __restrict__ drow,
                                          const float* __restrict__ scale,
                                          const float* __restrict__ bias, int j) {
    // explicit round-to-nearest ops: never contracted into an FMA, so every pass (and the
    // NumPy twin, which multiplies then adds) computes bit-identical values
    float v = drow[j];
    if (scale != nullptr) {
        v = __fmul_rn(v, scale[j]);
    }
    if (bias != nullptr) {
        v = __fadd_rn(v, bias[j]);
    }
    return v;
}

extern "C" __global__ void topk_select_f32(
    const float* __restrict__ d, long long ld, int ncols,
    const long long* __restrict__ in_idx, long long col_offset,
    const float* __restrict__ col_scale, const float* __restrict__ col_bias,
    const float* __restrict__ row_tau,
    int k, int chunk,
    float* __restrict__ out_d, long long* __restrict__ out_i, long long out_ld) {
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
    const int c0 = blockIdx.x * chunk;
    if (c0 >= ncols) {
        return;  // whole block: uniform exit
    }
    const int len = min(ncols - c0, chunk);
    const int kc = min(k, len);

    const float* drow = d + row * ld + c0;
    const long long* irow = (in_idx != nullptr) ? (in_idx + row * ld + c0) : nullptr;
    const float* scale = (col_scale != nullptr) ? (col_scale + c0) : nullptr;
    const float* bias = (col_bias != nullptr) ? (col_bias + c0) : nullptr;
    const bool has_tau = row_tau != nullptr;
    const float tau = has_tau ? row_tau[row] : 0.0f;
    float* od = out_d + row * out_ld + (long long)blockIdx.x * k;
    long long* oi = out_i + row * out_ld + (long long)blockIdx.x * k;

    // ---- radix select: the want-th smallest key among eligible elements -----------------
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
            const float v = gv_value(drow, scale, bias, j);
            if (!has_tau || v < tau) {
                const unsigned int key = gv_order_key(v);
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
                const int total = __shfl_sync(0xffffffffu, incl, 31);  // eligible count
                rem = min(kc, total);
                if (rem == total) {  // take every eligible element (or none)
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
            break;  // uniform: every thread reads the same shared value
        }
    }

    // ---- padding and ordered compaction ---------------------------------------------------
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
        return;  // uniform
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
            v = gv_value(drow, scale, bias, j);
            if (!has_tau || v < tau) {
                const unsigned int key = gv_order_key(v);
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
            const int p = base_lt + off_lt + __popc(blt & lanes_below);
            od[p] = v;
            oi[p] = (irow != nullptr) ? irow[j] : (col_offset + c0 + j);
        } else if (eq) {
            const int q = base_eq + off_eq + __popc(beq & lanes_below);
            if (q < need_eq) {
                const int p = n_lt + q;
                od[p] = v;
                oi[p] = (irow != nullptr) ? irow[j] : (col_offset + c0 + j);
            }
        }
        __syncthreads();  // everyone has read warp_* and s_base_*
        if (tid == 0) {
            s_base_lt = base_lt + tot_lt;
            s_base_eq = base_eq + tot_eq;
        }
        __syncthreads();
        if (s_base_lt >= n_lt && s_base_eq >= need_eq) {
            break;  // uniform: every thread reads the same shared values
        }
    }
}
