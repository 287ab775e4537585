# Shared gunicorn settings for the devstack@ WSGI units.
import sys
sys.path.insert(0, '/opt/devstack-wsgi')
workers = 1
threads = 4
worker_class = "gthread"
timeout = 120
# Clients (openstack --wait polls) reuse connections; gunicorn's 2 s default closed them under the
# client now and then ("Remote end closed connection without response").
keepalive = 75
accesslog = "-"
errorlog = "-"
