"""The themes shipped with CRM Portal (data files, read through importlib.resources)."""
