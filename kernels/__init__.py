"""CUDA C++ sources compiled at run time by ``cupy.RawModule`` (installed as
``gpuvec.kernels``). Each ``.cu`` file's header states its signature, launch shape and the
NumPy reference it must match (DESIGN §5): ``topk.cu`` (row-wise top-k selection after a
cuBLAS GEMM, used by :mod:`gpuvec.ops.gpu`) and ``ivf_flat.cu`` (the IVF-Flat list scan with
fused distance and top-k, used by :mod:`gpuvec.ops.ivf_gpu`; its twin is
``gpuvec.index.ivf_lists.IvfLists.search``). PQ and CAGRA kernels are not written yet."""
