"""jitkube: just-in-time, guarded, audited kubectl access for agents, engineers and CI.

Keep this module import-free: `jitkube kubectl` imports it on every call.
"""

__version__ = "0.1.0.dev0"
