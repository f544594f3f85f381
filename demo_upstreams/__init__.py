"""Local servers that stand in for the outside world: the upstreams of the demo products and
real HTTP peers for tests and benchmarks (``echo``, ``mock_llm``, ``demo_mcp``; see
docs/demo-upstreams.md). Pure Python: nothing here imports Django."""
