"""The module's own tests, on the portal's testing kit: installing crm-portal brings its pytest
plugin (fixtures ``app``, ``demo``, ``client``, ``queries``, ``frozen_clock``)."""
import datetime as dt

from crm_portal.testing import Route, assert_scope_matrix, login

from crm_portal_visits.models import Visit


def three_visits(demo):
    """bruno's visit, his colleague anna's (Acme) and one of carla's (Globex)."""
    carla = demo["contacts"]["carla"]
    Visit.create(number="V0900", company=carla.company_id, contact=carla, date=dt.date.today(),
                 technician="Marco Tecnico", summary="Sala server Globex.")
    number = {v.number: v.id for v in Visit.select()}
    return {"own": number["V0001"], "colleague": number["V0002"], "other": number["V0900"]}


def visit_number(visit_id, demo):
    return Visit.get_by_id(visit_id).number


def noted(response, visit_id):
    assert Visit.get_by_id(visit_id).customer_notes == "Tutto ok"


def test_each_customer_sees_the_visits_of_their_scope(app):
    assert_scope_matrix(app, "visits", records=three_visits, marker=visit_number,
                        routes=[Route("POST", "/visits/{id}/edit", 302, {"customer_notes": "Tutto ok"},
                                      check=noted)])


def test_notes_are_required(app, demo, client):
    from crm_portal.models import ProfileModule

    bruno = demo["contacts"]["bruno"]
    with app.app_context():
        ProfileModule.create(profile=bruno.profile_id, module="visits", scope="own", actions="view,edit")
        visit = Visit.get(Visit.number == "V0001")
    login(client, "bruno@acme.example")
    page = client.post(f"/visits/{visit.id}/edit", data={"customer_notes": ""})
    assert page.status_code == 200 and "is-invalid" in page.text
