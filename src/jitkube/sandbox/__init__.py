"""A local EKS-like world for tests and the demo: simulated cluster, STS emulator, IdP.

Optional extra: `pip install 'jitkube[sandbox]'`. Never imported by the hot path.
"""
