MODULE = "deadlines"


def records(demo):
    from crm_portal.modules.deadlines.models import Deadline

    by_title = {d.title: d.id for d in Deadline.select()}
    return {"own": by_title["Scadenza licenze gestionale"], "colleague": by_title["Fine supporto firewall FW-200"],
            "other": by_title["Rinnovo Microsoft 365"]}


def marker(record_id, demo):
    from crm_portal.modules.deadlines.models import Deadline

    return Deadline.get_by_id(record_id).title
