"""A node pack for engine tests: tiny nodes that exercise every ABI feature without models.

Nodes record their calls in a `CallLog` passed through nothing global: each node appends to
`CALLS`, a list tests clear before use (test-only state; production code has none).
"""
