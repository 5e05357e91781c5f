"""CUDA C++ sources compiled at run time by ``cupy.RawModule`` (installed as
``gpuvec.kernels``). Each ``.cu`` file's header states its signature, launch shape and the
NumPy reference it must match (DESIGN §5). Today there is one, ``topk.cu`` (row-wise top-k
selection after a cuBLAS GEMM, used by :mod:`gpuvec.ops.gpu`); the GPU index kernels (IVF
list scans, PQ, CAGRA) are not written yet."""
