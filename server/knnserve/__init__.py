"""knnserve: k-NN and linear image classification over FAISS, served over gRPC.

Importing the package has no side effects; the FAISS/OpenBLAS settings are made by
``knnserve.index.backend`` when it loads faiss.
"""

__version__ = "0.1.0"
