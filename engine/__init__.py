"""The graph engine: node registry, validation, scheduling, caching, events and folder paths.

Free of HTTP and of diffusion imports; see docs/ARCHITECTURE.md §1 for the contracts.
"""
