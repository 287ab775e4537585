# Points the Keystone catalog at the recording REST proxies: every endpoint whose port is one of
# the given UPSTREAM=PROXY pairs moves to the proxy's port on the same host, so user -> API and
# service -> service calls go through the proxies. Runs once after butterfly-stack.sh.
import os
import sys
import urllib.parse

import openstack

ports = dict(pair.split("=", 1) for pair in sys.argv[1:])
c = openstack.connect(auth_url="http://%s:5000/v3" % os.environ["BFLY_CONTROLLER_IP"],
                      username="admin", password=os.environ["BFLY_ADMIN_PASSWORD"],
                      project_name="admin", user_domain_name="Default",
                      project_domain_name="Default", region_name="RegionOne")
moved = 0
for endpoint in c.identity.endpoints():
    url = urllib.parse.urlsplit(endpoint.url)
    proxy = ports.get(str(url.port))
    if proxy is None:
        continue
    url = url._replace(netloc="%s:%s" % (url.hostname, proxy))
    c.identity.update_endpoint(endpoint, url=urllib.parse.urlunsplit(url))
    moved += 1
# catalog.py registers public, internal and admin endpoints for every service.
expected = 3 * len(ports)
if moved != expected:
    sys.exit("route_catalog: moved %d endpoints, expected %d" % (moved, expected))
print("catalog routed through %d proxies (%d endpoints)" % (len(ports), moved), flush=True)
