"""kubectl's grammar, as measured: flag tables, resource names, the argv parser, manifests.

Pure and stdlib-only (manifest reading imports PyYAML lazily, only when -f/-k is used).
"""
