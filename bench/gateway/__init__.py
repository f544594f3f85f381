"""Gateway performance benchmarks: our worker against nginx, LiteLLM and Portkey (bench/README.md)."""
