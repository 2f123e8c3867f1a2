MODULE = "companies"

# A company is "my company" under both scopes: the colleague's record is bruno's own company.
EXPECTED = {
    "own": {"own": True, "colleague": True, "other": False},
    "company": {"own": True, "colleague": True, "other": False},
}


def records(demo):
    co = demo["companies"]
    return {"own": co["acme"].id, "colleague": co["acme"].id, "other": co["globex"].id}


def marker(record_id, demo):
    return next(c.vat_number for c in demo["companies"].values() if c.id == record_id)
