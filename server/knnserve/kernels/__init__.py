"""Search kernels past FAISS for uint8 data: exact integer Flat search and batched IVF, planned per model.

``choice`` plans a kernel from an index's facts, ``dispatch`` runs it for large enough batches
(FAISS otherwise), ``exact_int`` and ``ivf_gemm`` are the kernels, ``runtime`` and ``onnx_proto``
their onnxruntime plumbing. No module here imports faiss: what they read of an index comes
through ``knnserve.index.backend``.
"""

from knnserve.kernels.choice import EXACT_INT8, FAISS, IVF_GEMM_INT8, POLICIES, KernelPlan, plan_kernel

__all__ = ["EXACT_INT8", "FAISS", "IVF_GEMM_INT8", "POLICIES", "KernelPlan", "plan_kernel"]
