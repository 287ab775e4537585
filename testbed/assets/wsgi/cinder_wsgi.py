# butterfly wrapper: oslo.config parses sys.argv, so hide gunicorn's CLI args from it
import sys
sys.argv = sys.argv[:1]
from cinder.wsgi.api import application  # noqa
