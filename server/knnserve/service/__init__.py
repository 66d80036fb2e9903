"""gRPC service: servicer, server bootstrap, batching, errors -> status, auth, metrics, model registry."""
