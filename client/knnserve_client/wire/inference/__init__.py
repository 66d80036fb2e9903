"""Generated protobuf and gRPC modules of the inference wire contract (scripts/gen_proto.py; do not edit)."""
