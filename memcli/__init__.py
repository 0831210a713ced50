"""memcli: a local language model with an explicit, editable memory of facts (MemLLM)."""

__version__ = "0.1.0"
