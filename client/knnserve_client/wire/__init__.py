"""The wire contract both ends import: generated stubs (``v1``), the tensor codec, enum tables, the
query type, result types mirrored from the proto messages, limits, and the error/status mapping.

Nothing here imports the server (``knnserve``), FAISS or scikit-learn; the modules without gRPC in
them (``errors``, ``query``) import neither grpc nor protobuf, so the server's numpy core can use them.
"""
