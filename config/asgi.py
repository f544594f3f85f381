from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Web processes pool their PostgreSQL connections; see settings._database.
os.environ.setdefault("DB_POOL", "1")

application = get_asgi_application()
