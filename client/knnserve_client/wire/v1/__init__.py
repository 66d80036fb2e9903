"""Generated protobuf and gRPC modules of the knnserve.v1 wire contract (scripts/gen_proto.py; do not edit)."""
