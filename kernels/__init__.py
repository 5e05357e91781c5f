"""CUDA C++ sources compiled at run time by ``cupy.RawModule`` (installed as
``gpuvec.kernels``). Each ``.cu`` file's header states its signature, launch shape and the
NumPy reference it must match (DESIGN §5). Kernels arrive with the engine issues."""
