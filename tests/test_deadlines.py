"""Deadlines: ordering and highlighting, the private calendar feed, reminders, admin."""
from __future__ import annotations

import datetime as dt
import re

from conftest import login, staff_login
from icalendar import Calendar

from crm_portal.db import db
from crm_portal.models import Contact, OutboxMessage, ProfileModule
from crm_portal.modules.deadlines.jobs import queue_due_reminders
from crm_portal.modules.deadlines.models import CalendarToken, Deadline, DeadlineReminder


def _feed_path(client) -> str:
    client.post("/deadlines/calendar/regenerate")
    page = client.get("/deadlines/calendar")
    match = re.search(r'value="(http[^"]+\.ics)" data-testid="feed-url"', page.text)
    assert match, "no feed address on the page"
    return match.group(1).split("portal.test", 1)[1]


def _summaries(data: bytes) -> list[str]:
    cal = Calendar.from_ical(data)
    return [str(e.get("summary")) for e in cal.walk("VEVENT")]


def test_list_sorted_by_date_with_highlights(app, demo, client):
    login(client, "anna@acme.example")
    page = client.get("/deadlines/")
    text = page.text
    assert text.index("Fattura 2025/118") < text.index("Scadenza licenze gestionale") < text.index(
        "Rinnovo contratto di assistenza")
    assert "badge text-bg-danger" in text  # the overdue invoice
    assert "badge text-bg-warning" in text  # within 30 days
    row = text[text.index("Verifica annuale backup") - 600:text.index("Verifica annuale backup")]
    assert "badge" not in row.rsplit("<tr", 1)[-1]  # 90 days away: no highlight


def test_own_scope_sees_own_and_company_wide(app, demo, client):
    login(client, "bruno@acme.example")
    text = client.get("/deadlines/").text
    assert "Scadenza licenze gestionale" in text and "Rinnovo contratto di assistenza" in text
    assert "Fine supporto firewall FW-200" not in text and "Rinnovo Microsoft 365" not in text


def test_calendar_feed_contains_only_the_gate(app, demo, client):
    login(client, "bruno@acme.example")
    path = _feed_path(client)
    client.post("/logout")
    anonymous = app.test_client()
    response = anonymous.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/calendar")
    assert response.headers["Content-Disposition"].startswith('inline; filename="deadlines.ics"')
    assert response.headers["Cache-Control"] == "private, no-store"
    summaries = _summaries(response.data)
    assert any("Scadenza licenze gestionale" in s for s in summaries)
    assert any("Rinnovo contratto di assistenza" in s for s in summaries)
    assert not any("firewall" in s or "Microsoft" in s or "Fattura" in s for s in summaries)
    cal = Calendar.from_ical(response.data)
    event = next(e for e in cal.walk("VEVENT") if "licenze" in str(e.get("summary")))
    assert event.decoded("dtstart") == dt.date.today() + dt.timedelta(days=12)
    assert "Scadenza licenza" in str(event.get("summary"))  # bruno's language: Italian


def test_feed_event_ids_name_the_portal_not_the_requested_host(app, demo, client):
    login(client, "bruno@acme.example")
    path = _feed_path(client)
    client.post("/logout")
    response = app.test_client().get(path, headers={"Host": "evil.example"})
    uids = [str(e.get("uid")) for e in Calendar.from_ical(response.data).walk("VEVENT")]
    assert uids and all(uid.endswith("@portal.test") for uid in uids), uids


def test_feed_follows_profile_changes(app, demo, client):
    login(client, "bruno@acme.example")
    path = _feed_path(client)
    anonymous = app.test_client()
    with app.app_context(), db.connection_context():
        bruno = Contact.get(Contact.email == "bruno@acme.example")
        ProfileModule.update(scope="company").where((ProfileModule.profile == bruno.profile_id)
                                                   & (ProfileModule.module == "deadlines")).execute()
    assert any("firewall" in s for s in _summaries(anonymous.get(path).data))
    with app.app_context(), db.connection_context():
        ProfileModule.delete().where((ProfileModule.profile == bruno.profile_id)
                                     & (ProfileModule.module == "deadlines")).execute()
    assert anonymous.get(path).status_code == 404
    with app.app_context(), db.connection_context():
        ProfileModule.create(profile=bruno.profile_id, module="deadlines", scope="own", actions="view")
        Contact.update(portal_access=False).where(Contact.id == bruno.id).execute()
    assert anonymous.get(path).status_code == 404


def test_regenerate_and_revoke(app, demo, client):
    login(client, "bruno@acme.example")
    first = _feed_path(client)
    second = _feed_path(client)
    assert first != second
    anonymous = app.test_client()
    assert anonymous.get(first).status_code == 404
    assert anonymous.get(second).status_code == 200
    client.post("/deadlines/calendar/revoke")
    assert anonymous.get(second).status_code == 404
    assert "value=\"http" not in client.get("/deadlines/calendar").text
    with app.app_context(), db.connection_context():
        assert CalendarToken.select().count() == 0


def test_wrong_tokens_are_404(app, demo, client):
    anonymous = app.test_client()
    for token in ("x", "a" * 43, "a" * 100, "%27%20OR%201=1--aaaaaaaaaaaaaaaaaaaaaa"):
        assert anonymous.get(f"/deadlines-feed/{token}.ics").status_code == 404


def test_reminders_once_per_deadline(app, demo):
    with app.test_request_context(), db.connection_context():
        before = OutboxMessage.select().count()
        queued = queue_due_reminders()
        mails = list(OutboxMessage.select().where(OutboxMessage.template == "deadlines_reminder"))
        # within 7 days: bruno's licences (12 days) no; "Aggiornamento server di posta" (3 days, bruno) yes
        assert queued == len(mails) == OutboxMessage.select().count() - before
        recipients = {m.to_address for m in mails}
        assert "bruno@acme.example" in recipients and "anna@acme.example" in recipients  # anna: company scope
        assert "chiara@acme.example" not in recipients  # own scope: not her deadline
        assert "carla@globex.example" not in recipients
        bruno_mail = next(m for m in mails if m.to_address == "bruno@acme.example")
        assert "Aggiornamento server di posta" in bruno_mail.body_text
        assert "Promemoria" in bruno_mail.subject  # Italian
        assert "Fattura" not in bruno_mail.body_text  # overdue: not a reminder
        assert queue_due_reminders() == 0  # remembered
        assert DeadlineReminder.select().count() >= 2
        # moving the date reminds again
        deadline = Deadline.get(Deadline.title == "Aggiornamento server di posta")
        deadline.due_date = deadline.due_date + dt.timedelta(days=1)
        deadline.save()
        assert queue_due_reminders() == 2  # bruno and anna


def test_reminder_days_setting(app, demo):
    app.config["DEADLINES_REMIND_DAYS"] = 15
    with app.test_request_context(), db.connection_context():
        queue_due_reminders()
        bruno_mail = (OutboxMessage.select().where(OutboxMessage.to_address == "bruno@acme.example")
                      .order_by(OutboxMessage.id.desc()).first())
        assert "Scadenza licenze gestionale" in bruno_mail.body_text


def test_periodic_task_and_cli(app, demo):
    module = app.extensions["crm_portal"].modules["deadlines"]
    tasks = list(module.periodic_tasks())
    assert [name for name, _, _ in tasks] == ["remind"] and tasks[0][2] is queue_due_reminders
    result = app.test_cli_runner().invoke(args=["deadlines-remind"])
    assert result.exit_code == 0, result.output
    assert "reminder email(s) queued" in result.output
    with app.app_context(), db.connection_context():
        assert OutboxMessage.select().where(OutboxMessage.template == "deadlines_reminder").count() >= 2


def test_list_query_count_is_constant(app, demo, client, queries):
    login(client, "anna@acme.example")
    client.get("/deadlines/?per_page=100")  # the first request fills the process's caches (profiles)
    with queries:
        client.get("/deadlines/?per_page=100")
    few = queries.count
    with app.app_context(), db.connection_context():
        for n in range(30):
            Deadline.create(company=demo["companies"]["acme"], title=f"Extra {n}", kind="invoice",
                            due_date=dt.date.today() + dt.timedelta(days=n))
    with queries:
        page = client.get("/deadlines/?per_page=100")
    assert "Extra 29" in page.text
    assert queries.count == few


def test_admin_crud(app, demo, client):
    staff_login(client)
    acme = demo["companies"]["acme"]
    form = {"company": str(acme.id), "contact": "__None", "title": "Audit GDPR", "kind": "intervention",
            "due_date": "2031-05-01", "description": "", "reference": "", "done": ""}
    assert client.post("/admin/deadlines_deadline/new/", data=form).status_code == 302
    with app.app_context(), db.connection_context():
        deadline = Deadline.get(Deadline.title == "Audit GDPR")
    form["title"] = "Audit GDPR 2031"
    assert client.post(f"/admin/deadlines_deadline/edit/?id={deadline.id}", data=form).status_code == 302
    with app.app_context(), db.connection_context():
        assert Deadline.get_by_id(deadline.id).title == "Audit GDPR 2031"
    assert client.post("/admin/deadlines_deadline/delete/", data={"id": str(deadline.id)}).status_code == 302
    with app.app_context(), db.connection_context():
        assert Deadline.get_or_none(Deadline.id == deadline.id) is None
    assert client.get("/admin/deadlines_calendartoken/").status_code == 200
