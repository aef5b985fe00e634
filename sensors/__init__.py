"""The sensor catalog: plain async sensor classes, no gRPC inside."""
