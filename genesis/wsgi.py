"""WSGI entry point."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genesis.settings")
application = get_wsgi_application()

# Everything loaded at start-up (Django, the apps, templates) lives as long as the process: moving it out of the
# collector's sight keeps full collections, which a large page triggers, from rescanning it on every request
# (measured on a 500-task cockpit: about a third of the render time). See the gc.freeze() documentation.
gc.collect()
gc.freeze()
