"""The service: gRPC (servicers, interceptors, auth, health, metrics, bootstrap) and, in rest/, the Open Inference
Protocol over HTTP/REST."""
