"""knnserve: k-NN and linear image classification over FAISS, served over gRPC."""

__version__ = "0.1.0"
