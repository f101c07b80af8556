"""The HTTP API service (aiohttp): submit runs, read their state, history and logs."""
