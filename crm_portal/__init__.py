"""CRM Portal: a plugin-based customer portal beside a CRM and helpdesk."""
from __future__ import annotations

import os
from typing import Any

from flask import Flask

#: The release (semantic versioning: a schema step or an incompatible change of the plugin API
#: raises the minor number while the major is 0). CHANGELOG.md says what each release changed.
__version__ = "0.2.0"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Application factory. ``config`` overrides every other source (see crm_portal.config)."""
    from . import account, admin, auth, cli, db, i18n, jobs, registry, rest, security, theming, viewas, webhooks
    from . import config as config_mod
    from .views import auth as auth_views
    from .views import errors, portal, records
    from .views import second_factor as second_factor_views

    instance_path = (config or {}).get("INSTANCE_PATH") or os.environ.get("CRM_PORTAL_INSTANCE_PATH")
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    config_mod.load(app, config)
    if app.config["PROXY_FIX"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["PROXY_FIX"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    db.init_app(app)
    i18n.init_app(app)
    auth.init_app(app)
    security.init_app(app)
    theming.init_app(app)
    errors.init_app(app)
    viewas.init_app(app)        # before any hook that reads the current user
    auth_views.init_app(app)
    second_factor_views.init_app(app)
    account.init_app(app)
    portal.init_app(app)
    registry.init_app(app)      # discovers modules
    records.init_app(app)       # one blueprint per enabled module
    rest.init_app(app)          # /api/v1: routes per enabled module
    admin.init_app(app)
    webhooks.init_app(app)      # webhook events of the enabled modules
    jobs.init_app(app)          # huey: email delivery and periodic jobs of the core and modules
    cli.init_app(app)
    return app
