"""Change environments: staging, locks and rollback, the installers (uv, pip), the install
transaction.
"""
