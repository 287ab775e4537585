# butterfly wrapper: oslo.config parses sys.argv, so hide gunicorn's CLI args from it
import sys
sys.argv = sys.argv[:1]
from neutron.wsgi.api import application  # noqa
# Workaround: with SQLAlchemy 2.1.x the ORM mappers are not yet configured
# when the first GET /v2.0/ports arrives, so backref-created attributes such
# as Port.port_forwardings do not exist yet -> AttributeError / HTTP 500.
from sqlalchemy import orm  # noqa
orm.configure_mappers()
