MODULE = "products"


def records(demo):
    from crm_portal.modules.products.models import Product

    by_code = {p.code: p.id for p in Product.select()}
    return {"own": by_code["GES-USR"], "colleague": by_code["FW-200"], "other": by_code["M365-BS"]}


def marker(record_id, demo):
    from crm_portal.modules.products.models import Product

    return Product.get_by_id(record_id).name
