"""Generated protobuf modules (see connector/protogen.py)."""
