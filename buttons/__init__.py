"""Default dashboard buttons shipped with CRM Portal (data files, read through importlib.resources)."""
