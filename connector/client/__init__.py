"""Client-side commands of the CLI (`try`, `catalog`); never imported by the server."""
