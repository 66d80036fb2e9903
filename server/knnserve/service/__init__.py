"""The service: gRPC on one asyncio loop (servicers, the RPC wrapper, auth, health, metrics, bootstrap) and, in rest/, the Open Inference
Protocol over HTTP/REST."""
