"""Scope-matrix cases, one file per module (see test_scope_matrix.py for the contract)."""
from crm_portal.testing import Route

__all__ = ["Route"]
