"""The memory behind the Model Context Protocol (`memcli mcp`): another front end.

`tools` holds the operations as plain functions over a `TripleStore` (testable in
process); `server` puts them behind the official `mcp` SDK, over stdio or streamable
HTTP. Nothing here imports the model runtime until `memory_ingest` is first called.
"""
