# Service project, users, roles, services, endpoints, a fake image and a flavor, in one openstacksdk
# process (the CLI costs about 2 s per command).
import os
import openstack

CTL = os.environ["BFLY_CONTROLLER_IP"]
SERVICE_PASSWORD = os.environ["BFLY_SERVICE_PASSWORD"]
c = openstack.connect(auth_url="http://%s:5000/v3" % CTL, username="admin",
                      password=os.environ["BFLY_ADMIN_PASSWORD"], project_name="admin",
                      user_domain_name="Default", project_domain_name="Default",
                      region_name="RegionOne")
idn = c.identity
proj = idn.create_project(name="service", domain_id="default")
admin = idn.find_role("admin")
service = idn.find_role("service") or idn.create_role(name="service")
for name in ("placement", "nova", "glance", "neutron", "cinder"):
    user = idn.create_user(name=name, password=SERVICE_PASSWORD, domain_id="default")
    idn.assign_project_role_to_user(proj, user, admin)
    idn.assign_project_role_to_user(proj, user, service)
for name, kind, url in (("placement", "placement", "http://%s:8778" % CTL),
                        ("nova", "compute", "http://%s:8774/v2.1" % CTL),
                        ("glance", "image", "http://%s:9292" % CTL),
                        ("neutron", "network", "http://%s:9696" % CTL),
                        # Keystone fills in the project id; one service of the official type
                        # (clients find it by its aliases volumev3 and volume too).
                        ("cinder", "block-storage", "http://%s:8776/v3/$(project_id)s" % CTL)):
    svc = idn.create_service(name=name, type=kind)
    for interface in ("public", "internal", "admin"):
        idn.create_endpoint(service_id=svc.id, interface=interface, url=url, region_id="RegionOne")
print("catalog done", flush=True)
