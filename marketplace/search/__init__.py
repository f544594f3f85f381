"""Catalog search: keyword (full-text) search, and semantic search over products and MCP
tools with a small local embedding model. See docs/search.md.

- :mod:`marketplace.search.query`: the searches (``keyword_search``, ``semantic_search``,
  ``hybrid_search``).
- :mod:`marketplace.search.index`: keeping the stored embeddings up to date.
- :mod:`marketplace.search.embeddings`: the model behind semantic search, when installed.
"""
