"""Generated retryd.v1 protobuf and gRPC modules (see gen_proto.py; never edited by hand)."""
