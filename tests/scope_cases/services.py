MODULE = "services"

# Services belong to the company: both scopes show every service of the user's company.
EXPECTED = {
    "own": {"own": True, "colleague": True, "other": False},
    "company": {"own": True, "colleague": True, "other": False},
}


def records(demo):
    from crm_portal.modules.services import Service

    by_name = {s.name: s.id for s in Service.select()}
    return {"own": by_name["Assistenza sistemistica"], "colleague": by_name["Assistenza gestionale"],
            "other": by_name["Help desk"]}


def marker(record_id, demo):
    from crm_portal.modules.services import Service

    return Service.get_by_id(record_id).name
