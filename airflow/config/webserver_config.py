"""Flask-AppBuilder settings for the Airflow UI and REST API (FAB auth manager).

Read by the FAB auth manager from `[fab] config_file` (airflow.cfg points it at
/opt/airflow/config/webserver_config.py). Users log in with a user name and a
password kept, hashed, in Airflow's metadata database; airflow-init creates the
admin from AIRFLOW_ADMIN_USER / AIRFLOW_ADMIN_PASSWORD in .env. There is no self
registration: an admin adds users under Security -> List Users, or with
`airflow users create`.
"""

from __future__ import annotations

import os

from flask_appbuilder.const import AUTH_DB

basedir = os.path.abspath(os.path.dirname(__file__))

# Database authentication: no external identity provider is needed on one machine.
# Switch to AUTH_OAUTH or AUTH_LDAP here (with their settings) to use one.
AUTH_TYPE = AUTH_DB

# Nobody gets in without logging in; a logged-in user with no role assigned can
# only look (Viewer), never trigger DAGs or edit connections.
AUTH_ROLE_PUBLIC = None
AUTH_USER_REGISTRATION = False
AUTH_USER_REGISTRATION_ROLE = "Viewer"

# CSRF protection for the forms FAB still renders (login, user management).
WTF_CSRF_ENABLED = True
# The session cookie: not readable from JavaScript, not sent cross-site. Set
# SESSION_COOKIE_SECURE (AIRFLOW__FAB__COOKIE_SECURE=True) behind HTTPS.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
