"""A node pack for engine tests: tiny nodes that exercise every ABI feature without models.

Loaded like `nodes/` through app.bootstrap.create_runtime(extra_node_packages=...). Nodes
record their calls in `basic.CALLS`, which tests clear before use (test-only state).
"""
