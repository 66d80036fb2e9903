"""Systems under test, each behind the one interface of ``base.System``: knnserve in this process
(``inprocess``), over gRPC (``remote``), bare FAISS (``inprocess.FaissFlat``), and the baselines
(``baselines``: scikit-learn and the GEMM bound in a child process, the naive numpy loop)."""
