"""Scope-matrix cases, one file per module (see test_scope_matrix.py for the contract)."""

