#!/bin/bash
# Runs inside the controller after its first boot, like DevStack's stack.sh: databases, RabbitMQ
# users, Keystone bootstrap and catalog, schema syncs, then the control-plane units. Secrets come from
# /etc/butterfly/stack.env (mode 0600), never from the command line.
set -euo pipefail
. /etc/butterfly/stack.env
V=/opt/openstack/bin
CTL=$BFLY_CONTROLLER_IP
step() { printf 'stack: %s\n' "$*"; }
wait_http() {
  for _ in $(seq 1 480); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)
    case $code in 2*|3*|401) return 0 ;; esac
    sleep 0.25
  done
  echo "stack: $1 did not answer within 120 s (last HTTP code: ${code:-none})" >&2
  return 1
}
for _ in $(seq 1 240); do systemctl is-active -q mariadb && break; sleep 0.5; done
systemctl is-active -q mariadb || { echo "stack: mariadb is not active" >&2; exit 1; }
rabbitmqctl -q await_startup -t 120 >/dev/null
step "mariadb and rabbitmq active"
rabbitmqctl -q add_user openstack "$BFLY_RABBIT_PASSWORD" >/dev/null
rabbitmqctl -q set_permissions -p / openstack '.*' '.*' '.*'
# The tracer's user: it declares its own queue, binds it to the firehose exchange and consumes.
rabbitmqctl -q add_user butterfly-tracer "$BFLY_TRACER_PASSWORD" >/dev/null
rabbitmqctl -q set_user_tags butterfly-tracer monitoring
rabbitmqctl -q set_permissions -p / butterfly-tracer \
  '^(amq\.gen-.*|butterfly-.*)$' '^(amq\.gen-.*|butterfly-.*)$' '^(amq\.rabbitmq\.trace|amq\.gen-.*|butterfly-.*)$'
mysql <<SQL
CREATE DATABASE keystone; CREATE DATABASE placement; CREATE DATABASE nova_api; CREATE DATABASE nova;
CREATE DATABASE nova_cell0; CREATE DATABASE glance; CREATE DATABASE neutron; CREATE DATABASE cinder;
CREATE USER 'os'@'127.0.0.1' IDENTIFIED BY '$BFLY_DB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO 'os'@'127.0.0.1'; FLUSH PRIVILEGES;
SQL
mkdir -p /var/lib/glance/images /var/lib/glance/staging /var/lib/glance/tasks /var/lib/nova \
  /var/lib/neutron /var/lib/cinder /var/lib/openstack-locks /etc/keystone/fernet-keys /etc/keystone/credential-keys
step "rabbitmq users and databases"
K="$V/keystone-manage --config-file /etc/keystone/keystone.conf"
$K db_sync
$K fernet_setup --keystone-user root --keystone-group root
$K credential_setup --keystone-user root --keystone-group root
$K bootstrap --bootstrap-password "$BFLY_ADMIN_PASSWORD" --bootstrap-region-id RegionOne \
  --bootstrap-admin-url "http://$CTL:5000/v3/" --bootstrap-internal-url "http://$CTL:5000/v3/" \
  --bootstrap-public-url "http://$CTL:5000/v3/"
systemctl start devstack@keystone
wait_http "http://$CTL:5000/v3"
step "keystone bootstrapped and answering"
BFLY_CONTROLLER_IP=$CTL BFLY_ADMIN_PASSWORD=$BFLY_ADMIN_PASSWORD BFLY_SERVICE_PASSWORD=$BFLY_SERVICE_PASSWORD \
  $V/python /usr/local/lib/butterfly/catalog.py
$V/placement-manage --config-file /etc/placement/placement.conf db sync
$V/glance-manage --config-file /etc/glance/glance-api.conf db_sync >/dev/null
$V/neutron-db-manage --config-file /etc/neutron/neutron.conf \
  --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade heads >/dev/null
N="$V/nova-manage --config-file /etc/nova/nova.conf"
$N api_db sync
$N cell_v2 map_cell0
$N cell_v2 create_cell --name=cell1 >/dev/null
$N db sync
$V/cinder-manage --config-file /etc/cinder/cinder.conf db sync >/dev/null
step "schemas synced"
systemctl start devstack@placement-api devstack@g-api devstack@q-svc devstack@n-cond devstack@n-sch devstack@n-api \
  devstack@c-api devstack@c-sch devstack@c-vol
for port in 8778 9292 9696 8774 8776; do wait_http "http://$CTL:$port/"; done
step "control plane answering"
export OS_CLOUD=butterfly OS_CLIENT_CONFIG_FILE=/etc/openstack/clouds.yaml
head -c 1048576 /dev/zero > /run/fake.img
$V/openstack image create --disk-format raw --container-format bare --public --file /run/fake.img fake-img -f value -c id >/dev/null
rm -f /run/fake.img
$V/openstack flavor create --ram 64 --disk 1 --vcpus 1 m1.tiny -f value -c id >/dev/null
# The external network floating IPs come from, as DevStack's `public`.
$V/openstack network create --external --provider-network-type flat --provider-physical-network public \
  public -f value -c id >/dev/null
$V/openstack subnet create --network public --subnet-range 172.24.4.0/24 --no-dhcp public-subnet \
  -f value -c id >/dev/null
step "image fake-img, flavor m1.tiny and network public created"
