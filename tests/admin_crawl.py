"""Helpers of the admin tests that walk every registered view: rows of any model made up from its
fields, and the list of the admin's model views (those registered by modules later included)."""
from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import peewee as pw
from flask import Flask
from flask_admin.contrib.peewee import ModelView

_serial = itertools.count(1)


def model_views(app: Flask) -> list[ModelView]:
    """Every model view registered in the admin, built-in and modules', in menu order."""
    admin = app.extensions["admin"][0]
    return [view for view in admin._views if isinstance(view, ModelView)]


def _unique_fields(model: type[pw.Model]) -> set[str]:
    names = {f.name for f in model._meta.sorted_fields if f.unique}
    for index in model._meta.indexes:
        if isinstance(index, (list, tuple)) and len(index) == 2 and index[1]:
            names.update(index[0])
    return names


def _text(field: pw.Field, unique: bool) -> str:
    n = next(_serial)
    value = f"r{n}" if unique or not field.choices else field.choices[0][0]
    if field.choices and not unique:
        return value
    limit = getattr(field, "max_length", None) or 255
    return (f"x{n}@example.com" if "email" in field.name else value)[:limit]


def make_row(model: type[pw.Model], **given: Any) -> pw.Model:
    """A row of ``model`` with every column filled (unique ones with fresh values, foreign keys
    pointing at existing rows, or at new ones where the key must be unique)."""
    unique = _unique_fields(model)
    data: dict[str, Any] = {}
    for field in model._meta.sorted_fields:
        if field.name in given or isinstance(field, pw.AutoField) or field.primary_key:
            continue
        is_unique = field.name in unique
        if isinstance(field, pw.ForeignKeyField):
            target = None if is_unique else field.rel_model.select().order_by(field.rel_model._meta.primary_key).first()
            data[field.name] = target if target is not None else make_row(field.rel_model)
        elif field.choices and not is_unique:
            data[field.name] = field.choices[0][0]
        elif isinstance(field, (pw.CharField, pw.TextField)):
            data[field.name] = _text(field, is_unique)
        elif isinstance(field, pw.BooleanField):
            data[field.name] = False
        elif isinstance(field, pw.DateTimeField):
            data[field.name] = dt.datetime(2026, 3, 14, 15, 9, 26, 535897)
        elif isinstance(field, pw.DateField):
            data[field.name] = dt.date(2026, 3, 14)
        elif isinstance(field, pw.DecimalField):
            data[field.name] = Decimal("1.00")
        elif isinstance(field, pw.FloatField):
            data[field.name] = 1.0
        elif isinstance(field, pw.IntegerField):
            data[field.name] = 100000 + next(_serial) if is_unique else 1
    data.update(given)
    return model.create(**data)
