MODULE = "contacts"


def records(demo):
    c = demo["contacts"]
    return {"own": c["bruno"].id, "colleague": c["anna"].id, "other": c["carla"].id}


def marker(record_id, demo):
    """Text that identifies the record in list pages and CSV exports."""
    return next(c.email for c in demo["contacts"].values() if c.id == record_id)
