"""The wire: gRPC in and out (call admission: rpc.py; flyteidl servicers, error -> status: services.py)."""
