"""Generic portal views built from a module's declaration: list, CSV and .xlsx export, detail, create, edit.

Each enabled module gets a blueprint named after it, mounted at ``/<name>/``: the module's own
:class:`~crm_portal.api.ModuleBlueprint` (its ``views.py``) or, for a module with no views of its
own, one made here. The generic views find their module at request time (:func:`current_module`),
so one blueprint serves every application. Every record read goes through the scoping gate.
"""
from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.routing import IntegerConverter

from .. import exports, signals
from ..api import Module, ModuleBlueprint, current_module
from ..audit import audit
from ..db import db
from ..listing import ListQuery, ListRequest, cell_value
from ..scoping import get_or_404, require, visible
from ..uploads import content_disposition


def list_view():
    module = current_module()
    grant = require(module, "view")
    req = ListRequest.parse(module, request.args)
    listing = ListQuery(module, visible(module))
    page = listing.page(req)
    columns = list(module.list_columns(current_user))
    return render_template(module.list_template, module=module, page=page, req=req, grant=grant,
                           columns=columns, cell_value=cell_value,
                           searchable=[c for c in columns if c.search],
                           filterable=[c for c in columns if c.filter],
                           **module.list_context(page, current_user))


def _export_rows(module: Module) -> tuple[list[str], Any]:
    """Header and rows of the module's export: the list's columns over the scoped, filtered query
    (permission ``export``, through the gate)."""
    require(module, "export")
    req = ListRequest.parse(module, request.args)
    query = ListQuery(module, visible(module, action="export"))
    columns = list(module.list_columns(current_user))
    header = [str(col.title) for col in columns]

    def rows() -> Any:
        # Run when the response is written (the CSV streams it), not when the view returns.
        for row in query.all(req):
            yield [cell_value(col, row) for col in columns]

    return header, rows()


def export_view():
    """The list as CSV in the user's language, for their Excel (:mod:`crm_portal.exports`)."""
    module = current_module()
    header, rows = _export_rows(module)
    response = Response(stream_with_context(exports.csv_chunks(header, rows)), mimetype="text/csv")
    response.headers["Content-Disposition"] = content_disposition(f"{module.name}.csv")
    return response


def export_xlsx_view():
    """The list as an Excel workbook (.xlsx), from the same rows as the CSV."""
    module = current_module()
    header, rows = _export_rows(module)
    data = exports.xlsx_bytes(str(module.label or module.name), header, rows)
    response = Response(data, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response.headers["Content-Disposition"] = content_disposition(f"{module.name}.xlsx")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def detail_view(record_id: int):
    module = current_module()
    grant = require(module, "view")
    record = get_or_404(module, record_id)
    return render_template(module.detail_template, module=module, record=record, grant=grant,
                           **module.detail_context(record, current_user))


def _changes(form: Any, record: Any) -> dict[str, tuple[Any, Any]]:
    changes = {}
    for name in form.data:
        if name in record._meta.fields:
            old = getattr(record, name)
            new = form.data[name]
            if old != new:
                changes[name] = (old, new)
    return changes


def create_view():
    module = current_module()
    grant = require(module, "create")
    form = module.create_form()
    if form.validate_on_submit():
        record = module.record()
        form.populate_obj(record)
        module.prepare_new(record, current_user)
        with db.atomic():
            record.save()
            signals.record_created.send(module.name, module=module, record=record, user=current_user)
            audit("created", record)
        flash(_("Saved."), "success")
        return redirect(url_for(f"{module.name}.detail", record_id=record.get_id()))
    return render_template(module.form_template, module=module, form=form, record=None, grant=grant)


def edit_view(record_id: int):
    module = current_module()
    grant = require(module, "view")
    record = get_or_404(module, record_id, action="edit")
    form = module.edit_form(obj=record)
    if form.validate_on_submit():
        changes = _changes(form, record)
        form.populate_obj(record)
        with db.atomic():
            record.save()
            signals.record_updated.send(module.name, module=module, record=record, user=current_user,
                                        changes=changes)
            audit("updated", record, details={k: [str(a), str(b)] for k, (a, b) in changes.items()})
        flash(_("Saved."), "success")
        return redirect(url_for(f"{module.name}.detail", record_id=record.get_id()))
    return render_template(module.form_template, module=module, form=form, record=record, grant=grant)


def _gate():
    # The whole module is invisible (404) to anyone whose profile does not enable it.
    if request.endpoint and request.endpoint.endswith(".static"):
        return
    require(current_module(), "view")
    return


def _add_generic_views(bp: Blueprint, module: Module) -> None:
    """The gate and the generic views the module's declaration asks for (once per blueprint)."""
    bp.before_request(login_required(_gate))
    if module.record is not None:
        bp.add_url_rule("/", "list", list_view)
        bp.add_url_rule("/export.csv", "export", export_view)
        bp.add_url_rule("/export.xlsx", "export_xlsx", export_xlsx_view)
        bp.add_url_rule("/<int:record_id>", "detail", detail_view)
        if module.create_form is not None:
            bp.add_url_rule("/new", "create", create_view, methods=["GET", "POST"])
        if module.edit_form is not None:
            bp.add_url_rule("/<int:record_id>/edit", "edit", edit_view, methods=["GET", "POST"])


def module_blueprint(module: Module) -> Blueprint:
    """The blueprint of one module: its own :class:`ModuleBlueprint` (the same object in every
    application, completed once) or a new one, with the generic views and the gate."""
    declared = type(module).blueprint
    if declared is not None:
        if declared.name != module.name:
            raise ValueError(f"blueprint {declared.name!r} must be named like the module ({module.name!r})")
        if not declared.generic_views_added:
            _add_generic_views(declared, module)
            module.register_views(declared)
            declared.generic_views_added = True
        return declared
    bp = ModuleBlueprint(module.name, type(module).__module__)  # its package's templates/ and static/
    _add_generic_views(bp, module)
    module.register_views(bp)
    return bp


class IdConverter(IntegerConverter):
    """``<int:…>`` in URLs: at most the largest id an id column holds, so ``/quotes/<20 digits>``
    is a URL we do not have (404) instead of a number the database refuses."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


#: The largest value of an ``integer`` id column (PostgreSQL ``serial``).
MAX_ID = 2**31 - 1


def init_app(app: Flask) -> None:
    # Before any module or admin rule is bound: every later ``<int:…>`` converter is bounded.
    app.url_map.converters["int"] = IdConverter
    registry = app.extensions["crm_portal"]
    for module in list(registry.modules.values()):
        try:
            blueprint = module_blueprint(module)
        except Exception as exc:  # a broken plugin is named and skipped, the portal still starts
            registry.fail(module.name, exc, app.config["MODULES_STRICT"])
            continue
        app.register_blueprint(blueprint)
        module.init_app(app)

    @app.context_processor
    def _module_helpers():
        return {"module_entry_endpoint": entry_endpoint}


def entry_endpoint(module: Module) -> str | None:
    """Where the menu link of a module points: its list, else a view named ``index``."""
    from flask import current_app

    for endpoint in (f"{module.name}.list", f"{module.name}.index"):
        if endpoint in current_app.view_functions:
            return endpoint
    return None


