"""knnserve: k-NN and linear image classification over FAISS, served over gRPC."""

from knnserve.blas import select_openblas_coretype

__version__ = "0.1.0"

# Must run before faiss's bundled OpenBLAS loads (see knnserve/blas.py); sets nothing the user set.
select_openblas_coretype()
