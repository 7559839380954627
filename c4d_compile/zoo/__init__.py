"""Model zoo: tiny, randomly initialised diffusion transformers for tests, the CLI and benchmarks."""
