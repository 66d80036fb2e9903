"""The wire contract both ends import, in two parts.

Plain types, with no grpc or protobuf import, which the server's numpy core, its data plane and
batch jobs use: ``query`` (KnnQuery and the option names), ``errors``, ``limits`` (ServerLimits),
``results`` (ClassifyResult, SearchResult, HeadResult, Neighbors) and ``model_info`` (ModelInfo and
its parts).

One codec per protocol, each beside its generated modules: ``v1/`` (``knnserve.v1``: ``codec``,
``tensors``, ``enums``) and ``inference/`` (the Open Inference Protocol: ``codec``); and ``status``, the
one mapping between exceptions and gRPC status codes that both protocols' servicers and the client use.

Nothing here imports the server (``knnserve``), FAISS or scikit-learn.
"""
