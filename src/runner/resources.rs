//! The workload's commands beyond servers: volumes, attachments and snapshots (Cinder), networks,
//! subnets, ports, routers, floating IPs and security group rules (Neutron), images with their
//! bytes (Glance) and tokens (Keystone). Each is a few REST calls, all under the command's one
//! global request id (its status polls too), so that the tracer stitches the whole transaction.
//!
//! What the commands create goes into [`Pools`]: the delete, attach and snapshot commands draw
//! from them, and the run's final clean-up empties them, in dependency order, whatever happened
//! in between. An entry is taken out of its pool while a command works on it, so that two
//! commands never act on one resource at once (a workload-made failure would look like a fault's).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::openstack::{Body, CloudError, Session, api_failure, new_request_id};

/// What the workload creates and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A server (`server create`).
    Server,
    /// A volume.
    Volume,
    /// A volume attached to a server: id is the volume, parents are `[server, volume]`.
    Attachment,
    /// A volume snapshot: parents are `[volume]`.
    Snapshot,
    /// A network.
    Network,
    /// A subnet not on a router: parents are `[network]`.
    Subnet,
    /// A port: parents are `[network]` when in a workload network.
    Port,
    /// A router.
    Router,
    /// A subnet on a router: id is the subnet, parents are `[router, network]`.
    RouterInterface,
    /// A floating IP.
    FloatingIp,
    /// An image.
    Image,
    /// A security group rule.
    SecurityGroupRule,
}

impl Kind {
    /// What it is called in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::Volume => "volume",
            Kind::Attachment => "volume attachment",
            Kind::Snapshot => "volume snapshot",
            Kind::Network => "network",
            Kind::Subnet => "subnet",
            Kind::Port => "port",
            Kind::Router => "router",
            Kind::RouterInterface => "router interface",
            Kind::FloatingIp => "floating IP",
            Kind::Image => "image",
            Kind::SecurityGroupRule => "security group rule",
        }
    }
}

/// The order the final clean-up deletes in: what depends on a resource goes before it. Servers
/// are last, after their volumes are detached.
const CLEANUP_ORDER: &[Kind] = &[
    Kind::Attachment,
    Kind::Snapshot,
    Kind::Volume,
    Kind::FloatingIp,
    Kind::RouterInterface,
    Kind::Router,
    Kind::Port,
    Kind::Subnet,
    Kind::Network,
    Kind::Image,
    Kind::SecurityGroupRule,
    Kind::Server,
];

/// One resource the workload made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id.
    pub id: String,
    /// The resources it hangs on (see [`Kind`]).
    pub parents: Vec<String>,
}

impl Entry {
    /// An entry without parents.
    pub fn new(id: impl Into<String>) -> Entry {
        Entry {
            id: id.into(),
            parents: Vec::new(),
        }
    }
}

/// The resources the workload made, by kind.
#[derive(Debug, Default)]
pub struct Pools {
    entries: Mutex<HashMap<Kind, Vec<Entry>>>,
    /// The next /24 `subnet create` uses.
    next_subnet: AtomicU32,
    /// The next port a `security group rule create` opens.
    next_rule_port: AtomicU32,
}

impl Pools {
    /// Adds a resource.
    pub fn add(&self, kind: Kind, entry: Entry) {
        self.entries
            .lock()
            .expect("pools lock")
            .entry(kind)
            .or_default()
            .push(entry);
    }

    /// Takes the oldest resource of `kind` that no entry of the `unless` kinds names as a parent.
    pub fn take(&self, kind: Kind, unless: &[Kind]) -> Option<Entry> {
        let mut entries = self.entries.lock().expect("pools lock");
        let blocked = |id: &str| {
            unless.iter().any(|other| {
                entries
                    .get(other)
                    .is_some_and(|list| list.iter().any(|e| e.parents.iter().any(|p| p == id)))
            })
        };
        let index = entries
            .get(&kind)?
            .iter()
            .position(|entry| !blocked(&entry.id))?;
        Some(entries.get_mut(&kind)?.remove(index))
    }

    /// Takes the resource of `kind` with this id, if it is in its pool.
    pub fn take_id(&self, kind: Kind, id: &str) -> Option<Entry> {
        let mut entries = self.entries.lock().expect("pools lock");
        let list = entries.get_mut(&kind)?;
        let index = list.iter().position(|e| e.id == id)?;
        Some(list.remove(index))
    }

    /// Every resource of `kind` whose first parent is `parent`, left in the pool: a router's
    /// interfaces stay visible while its delete removes them, so that their network does not
    /// look free to delete meanwhile.
    pub fn children(&self, kind: Kind, parent: &str) -> Vec<Entry> {
        let entries = self.entries.lock().expect("pools lock");
        entries
            .get(&kind)
            .map(|list| {
                list.iter()
                    .filter(|e| e.parents.first().map(String::as_str) == Some(parent))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many resources of `kind` there are.
    pub fn count(&self, kind: Kind) -> usize {
        self.entries
            .lock()
            .expect("pools lock")
            .get(&kind)
            .map_or(0, Vec::len)
    }

    /// Takes everything, in clean-up order.
    pub fn drain(&self) -> Vec<(Kind, Entry)> {
        let mut entries = std::mem::take(&mut *self.entries.lock().expect("pools lock"));
        CLEANUP_ORDER
            .iter()
            .flat_map(|kind| {
                entries
                    .remove(kind)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|entry| (*kind, entry))
            })
            .collect()
    }

    /// The CIDR of the next workload subnet: one /24 of 10.128.0.0/9 each, so that subnets on
    /// one router never overlap.
    fn next_cidr(&self) -> String {
        let n = self.next_subnet.fetch_add(1, Ordering::Relaxed) % 32768;
        format!("10.{}.{}.0/24", 128 + n / 256, n % 256)
    }

    /// The port of the next security group rule: distinct, as Neutron refuses a duplicate rule.
    fn next_rule_port(&self) -> u32 {
        1024 + self.next_rule_port.fetch_add(1, Ordering::Relaxed) % 64000
    }
}

/// What `image create` uploads: generated bytes of the campaign's size, declared in the given
/// formats (Glance checks the names, not the bytes).
#[derive(Debug, Clone)]
pub struct ImageUpload {
    /// The bytes.
    pub bytes: bytes::Bytes,
    /// `raw` unless the campaign says otherwise.
    pub disk_format: String,
    /// `bare` unless the campaign says otherwise.
    pub container_format: String,
}

/// What a poll of a resource saw.
enum Poll {
    /// The wanted state.
    Done,
    /// A state it will not leave by itself.
    Failed(String),
    /// Not yet.
    Pending,
}

/// How often the commands poll.
const POLL_EVERY: Duration = Duration::from_millis(250);

fn status(body: &Value, pointer: &str) -> String {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned()
}

fn id_at(body: &Value, pointer: &str, call: &str) -> Result<String, String> {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{call} returned no id"))
}

fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn endpoint<'a>(endpoint: &'a Option<String>, what: &str) -> Result<&'a str, String> {
    endpoint
        .as_deref()
        .ok_or_else(|| format!("the catalog has no {what} endpoint"))
}

impl Session {
    fn volume_url(&self, path: &str) -> Result<String, String> {
        Ok(format!(
            "{}{path}",
            endpoint(&self.endpoints.volume, "block-storage")?
        ))
    }

    fn network_url(&self, path: &str) -> Result<String, String> {
        Ok(format!(
            "{}/v2.0{path}",
            endpoint(&self.endpoints.network, "network")?
        ))
    }

    fn image_url(&self, path: &str) -> Result<String, String> {
        Ok(format!(
            "{}/v2{path}",
            endpoint(&self.endpoints.image, "image")?
        ))
    }

    /// One call that must succeed; returns the body.
    async fn expect_ok(
        &self,
        method: Method,
        url: &str,
        call: &str,
        request_id: &str,
        body: Body<'_>,
    ) -> Result<Value, String> {
        match self.call_with(method, url, request_id, body).await {
            Ok(response) if response.status.is_success() => Ok(response.body),
            Ok(response) => Err(api_failure(call, &response)),
            Err(error) => Err(error.to_string()),
        }
    }

    /// A DELETE that succeeds when the resource is gone, also if it was gone already.
    async fn delete_ok(&self, url: &str, call: &str, request_id: &str) -> Result<(), String> {
        match self.call(Method::DELETE, url, request_id, None).await {
            Ok(response)
                if response.status.is_success() || response.status == StatusCode::NOT_FOUND =>
            {
                Ok(())
            }
            Ok(response) => Err(api_failure(call, &response)),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Polls `url` until `judge` says done or failed, or the deadline passes. A failing poll (the
    /// API briefly down) is retried: the command fails only when the resource never gets there.
    async fn wait_for(
        &self,
        url: &str,
        request_id: &str,
        timeout: Duration,
        what: &str,
        mut judge: impl FnMut(StatusCode, &Value) -> Poll,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            tokio::time::sleep(POLL_EVERY).await;
            if let Ok(response) = self.call(Method::GET, url, request_id, None).await {
                match judge(response.status, &response.body) {
                    Poll::Done => return Ok(()),
                    Poll::Failed(why) => return Err(why),
                    Poll::Pending => last = format!("HTTP {}", response.status.as_u16()),
                }
            }
        }
        Err(format!(
            "not {what} within {}s (last poll: {last})",
            timeout.as_secs()
        ))
    }

    /// Waits until a GET answers 404; `error_status` names the states that end the wait.
    async fn wait_gone(
        &self,
        url: &str,
        pointer: &str,
        request_id: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        self.wait_for(url, request_id, timeout, "deleted", |code, body| {
            if code == StatusCode::NOT_FOUND {
                return Poll::Done;
            }
            match status(body, pointer).as_str() {
                s @ ("error" | "error_deleting") => Poll::Failed(format!("went to {s}")),
                _ => Poll::Pending,
            }
        })
        .await
    }

    /// `volume create`: POST /volumes, then waits for `available`.
    pub async fn create_volume(
        &self,
        size_gib: u32,
        name_prefix: &str,
        request_id: &str,
        timeout: Duration,
    ) -> (Option<String>, Result<(), String>) {
        let url = match self.volume_url("/volumes") {
            Ok(url) => url,
            Err(error) => return (None, Err(error)),
        };
        let body = json!({"volume": {"size": size_gib, "name": unique_name(name_prefix)}});
        let created = self
            .expect_ok(
                Method::POST,
                &url,
                "POST /volumes",
                request_id,
                Body::Json(&body),
            )
            .await;
        let id = match created.and_then(|b| id_at(&b, "/volume/id", "POST /volumes")) {
            Ok(id) => id,
            Err(error) => return (None, Err(error)),
        };
        let show = format!("{url}/{id}");
        let result = self
            .wait_for(
                &show,
                request_id,
                timeout,
                "available",
                |_, body| match status(body, "/volume/status").as_str() {
                    "available" => Poll::Done,
                    s @ "error" => Poll::Failed(format!("volume went to {s}")),
                    _ => Poll::Pending,
                },
            )
            .await;
        (Some(id), result)
    }

    /// `volume delete`: DELETE /volumes/{id}, then waits until gone.
    pub async fn delete_volume(
        &self,
        id: &str,
        request_id: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let url = self.volume_url(&format!("/volumes/{id}"))?;
        self.delete_ok(&url, "DELETE /volumes/{id}", request_id)
            .await?;
        self.wait_gone(&url, "/volume/status", request_id, timeout)
            .await
    }

    /// `server add volume`: POST /servers/{id}/os-volume_attachments, then waits for the volume
    /// to be `in-use`. Nova reserves the volume before it answers, so a volume back at
    /// `available` means the attach failed.
    pub async fn attach_volume(
        &self,
        server: &str,
        volume: &str,
        request_id: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let url = format!(
            "{}/servers/{server}/os-volume_attachments",
            self.endpoints.compute
        );
        let body = json!({"volumeAttachment": {"volumeId": volume}});
        self.expect_ok(
            Method::POST,
            &url,
            "POST /servers/{id}/os-volume_attachments",
            request_id,
            Body::Json(&body),
        )
        .await?;
        let show = self.volume_url(&format!("/volumes/{volume}"))?;
        self.wait_for(
            &show,
            request_id,
            timeout,
            "in-use",
            |_, body| match status(body, "/volume/status").as_str() {
                "in-use" => Poll::Done,
                s @ ("error" | "error_attaching" | "available") => {
                    Poll::Failed(format!("volume went to {s} instead of in-use"))
                }
                _ => Poll::Pending,
            },
        )
        .await
    }

    /// `server remove volume`: DELETE /servers/{id}/os-volume_attachments/{volume}, then waits
    /// for the volume to be `available`.
    pub async fn detach_volume(
        &self,
        server: &str,
        volume: &str,
        request_id: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        self.detach(server, volume, request_id, timeout, false)
            .await
    }

    /// Detaches; with `gone_ok`, an attachment Nova does not know is detached already (the
    /// clean-up of an attach that failed).
    async fn detach(
        &self,
        server: &str,
        volume: &str,
        request_id: &str,
        timeout: Duration,
        gone_ok: bool,
    ) -> Result<(), String> {
        let url = format!(
            "{}/servers/{server}/os-volume_attachments/{volume}",
            self.endpoints.compute
        );
        match self.call(Method::DELETE, &url, request_id, None).await {
            Ok(response) if response.status.is_success() => {}
            Ok(response) if gone_ok && response.status == StatusCode::NOT_FOUND => return Ok(()),
            Ok(response) => {
                return Err(api_failure(
                    "DELETE /servers/{id}/os-volume_attachments/{volume}",
                    &response,
                ));
            }
            Err(error) => return Err(error.to_string()),
        }
        let show = self.volume_url(&format!("/volumes/{volume}"))?;
        self.wait_for(
            &show,
            request_id,
            timeout,
            "available",
            |_, body| match status(body, "/volume/status").as_str() {
                "available" => Poll::Done,
                s @ ("error" | "error_detaching") => Poll::Failed(format!("volume went to {s}")),
                _ => Poll::Pending,
            },
        )
        .await
    }

    /// `volume snapshot create`: POST /snapshots, then waits for `available`.
    pub async fn create_snapshot(
        &self,
        volume: &str,
        name_prefix: &str,
        request_id: &str,
        timeout: Duration,
    ) -> (Option<String>, Result<(), String>) {
        let url = match self.volume_url("/snapshots") {
            Ok(url) => url,
            Err(error) => return (None, Err(error)),
        };
        let body = json!({"snapshot": {"volume_id": volume, "name": unique_name(name_prefix)}});
        let id = match self
            .expect_ok(
                Method::POST,
                &url,
                "POST /snapshots",
                request_id,
                Body::Json(&body),
            )
            .await
            .and_then(|b| id_at(&b, "/snapshot/id", "POST /snapshots"))
        {
            Ok(id) => id,
            Err(error) => return (None, Err(error)),
        };
        let show = format!("{url}/{id}");
        let result = self
            .wait_for(
                &show,
                request_id,
                timeout,
                "available",
                |_, body| match status(body, "/snapshot/status").as_str() {
                    "available" => Poll::Done,
                    s @ "error" => Poll::Failed(format!("snapshot went to {s}")),
                    _ => Poll::Pending,
                },
            )
            .await;
        (Some(id), result)
    }

    /// `volume snapshot delete`: DELETE /snapshots/{id}, then waits until gone.
    pub async fn delete_snapshot(
        &self,
        id: &str,
        request_id: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let url = self.volume_url(&format!("/snapshots/{id}"))?;
        self.delete_ok(&url, "DELETE /snapshots/{id}", request_id)
            .await?;
        self.wait_gone(&url, "/snapshot/status", request_id, timeout)
            .await
    }

    /// A Neutron create: POST /v2.0/{plural} with `{singular: attributes}`; returns the id.
    async fn neutron_create(
        &self,
        singular: &str,
        attributes: Value,
        request_id: &str,
    ) -> Result<String, String> {
        let plural = plural(singular);
        let call = format!("POST /v2.0/{plural}");
        let url = self.network_url(&format!("/{plural}"))?;
        let body = json!({ singular: attributes });
        let created = self
            .expect_ok(Method::POST, &url, &call, request_id, Body::Json(&body))
            .await?;
        id_at(&created, &format!("/{singular}/id"), &call)
    }

    /// A Neutron delete: DELETE /v2.0/{plural}/{id}.
    async fn neutron_delete(
        &self,
        singular: &str,
        id: &str,
        request_id: &str,
    ) -> Result<(), String> {
        let plural = plural(singular);
        let url = self.network_url(&format!("/{plural}/{id}"))?;
        self.delete_ok(&url, &format!("DELETE /v2.0/{plural}/{{id}}"), request_id)
            .await
    }

    /// `network create`.
    pub async fn create_network(
        &self,
        name_prefix: &str,
        request_id: &str,
    ) -> Result<String, String> {
        self.neutron_create(
            "network",
            json!({"name": unique_name(name_prefix)}),
            request_id,
        )
        .await
    }

    /// `subnet create` in `network`, with the next workload /24.
    pub async fn create_subnet(
        &self,
        network: &str,
        name_prefix: &str,
        pools: &Pools,
        request_id: &str,
    ) -> Result<String, String> {
        self.neutron_create(
            "subnet",
            json!({"name": unique_name(name_prefix), "network_id": network,
                   "ip_version": 4, "cidr": pools.next_cidr(), "enable_dhcp": false}),
            request_id,
        )
        .await
    }

    /// `port create` in `network`. Without fixed IPs: an address would tie the port to a subnet
    /// and make the workload's own `subnet delete` fail.
    pub async fn create_port(
        &self,
        network: &str,
        name_prefix: &str,
        request_id: &str,
    ) -> Result<String, String> {
        self.neutron_create(
            "port",
            json!({"name": unique_name(name_prefix), "network_id": network, "fixed_ips": []}),
            request_id,
        )
        .await
    }

    /// `router create`.
    pub async fn create_router(
        &self,
        name_prefix: &str,
        request_id: &str,
    ) -> Result<String, String> {
        self.neutron_create(
            "router",
            json!({"name": unique_name(name_prefix)}),
            request_id,
        )
        .await
    }

    /// `router add subnet` (and, with `add` false, its removal).
    pub async fn router_interface(
        &self,
        router: &str,
        subnet: &str,
        add: bool,
        request_id: &str,
    ) -> Result<(), String> {
        let action = if add {
            "add_router_interface"
        } else {
            "remove_router_interface"
        };
        let url = self.network_url(&format!("/routers/{router}/{action}"))?;
        let body = json!({"subnet_id": subnet});
        match self.call(Method::PUT, &url, request_id, Some(&body)).await {
            Ok(response) if response.status.is_success() => Ok(()),
            // Removing an interface that is gone already is done.
            Ok(response) if !add && response.status == StatusCode::NOT_FOUND => Ok(()),
            Ok(response) => Err(api_failure(
                &format!("PUT /v2.0/routers/{{id}}/{action}"),
                &response,
            )),
            Err(error) => Err(error.to_string()),
        }
    }

    /// `router delete`: removes the given subnets from the router first, as Neutron refuses to
    /// delete a router with interfaces. Returns the subnets it removed.
    pub async fn delete_router(
        &self,
        router: &str,
        subnets: &[String],
        request_id: &str,
    ) -> (Vec<String>, Result<(), String>) {
        let mut removed = Vec::new();
        for subnet in subnets {
            if let Err(error) = self
                .router_interface(router, subnet, false, request_id)
                .await
            {
                return (removed, Err(error));
            }
            removed.push(subnet.clone());
        }
        (
            removed,
            self.neutron_delete("router", router, request_id).await,
        )
    }

    /// `floating ip create` on the external network `network`.
    pub async fn create_floating_ip(
        &self,
        network: &str,
        request_id: &str,
    ) -> Result<String, String> {
        self.neutron_create(
            "floatingip",
            json!({"floating_network_id": network}),
            request_id,
        )
        .await
    }

    /// `security group rule create`: an ingress TCP rule on the next workload port.
    pub async fn create_security_group_rule(
        &self,
        group: &str,
        pools: &Pools,
        request_id: &str,
    ) -> Result<String, String> {
        let port = pools.next_rule_port();
        self.neutron_create(
            "security_group_rule",
            json!({"security_group_id": group, "direction": "ingress", "ethertype": "IPv4",
                   "protocol": "tcp", "port_range_min": port, "port_range_max": port}),
            request_id,
        )
        .await
    }

    /// The id of the Neutron resource named `name` (a network, a security group), looked up
    /// once at the start of the workload.
    pub async fn find_neutron(&self, singular: &str, name: &str) -> Result<String, CloudError> {
        let plural = plural(singular);
        let url = self
            .network_url(&format!("/{plural}?name={name}"))
            .map_err(CloudError::Api)?;
        let found = self
            .call(Method::GET, &url, &new_request_id(), None)
            .await?;
        // The URL's collection is `security-groups`, the body's key `security_groups`.
        found
            .body
            .get(plural.replace('-', "_"))
            .and_then(Value::as_array)
            .and_then(|list| list.first())
            .and_then(|item| item.get("id")?.as_str().map(str::to_owned))
            .ok_or_else(|| {
                CloudError::Api(format!(
                    "{} \"{name}\" not found",
                    singular.replace('_', " ")
                ))
            })
    }

    /// `image create`: POST /v2/images, PUT its bytes, then waits for `active`.
    pub async fn create_image(
        &self,
        image: &ImageUpload,
        name_prefix: &str,
        request_id: &str,
        timeout: Duration,
    ) -> (Option<String>, Result<(), String>) {
        let url = match self.image_url("/images") {
            Ok(url) => url,
            Err(error) => return (None, Err(error)),
        };
        let body = json!({"name": unique_name(name_prefix), "disk_format": image.disk_format,
                          "container_format": image.container_format, "visibility": "private"});
        let bytes = &image.bytes;
        let id = match self
            .expect_ok(
                Method::POST,
                &url,
                "POST /v2/images",
                request_id,
                Body::Json(&body),
            )
            .await
            .and_then(|b| id_at(&b, "/id", "POST /v2/images"))
        {
            Ok(id) => id,
            Err(error) => return (None, Err(error)),
        };
        let show = format!("{url}/{id}");
        if let Err(error) = self
            .expect_ok(
                Method::PUT,
                &format!("{show}/file"),
                "PUT /v2/images/{id}/file",
                request_id,
                Body::Bytes(bytes),
            )
            .await
        {
            return (Some(id), Err(error));
        }
        let result = self
            .wait_for(
                &show,
                request_id,
                timeout,
                "active",
                |_, body| match status(body, "/status").as_str() {
                    "active" => Poll::Done,
                    s @ ("killed" | "deleted") => Poll::Failed(format!("image went to {s}")),
                    _ => Poll::Pending,
                },
            )
            .await;
        (Some(id), result)
    }

    /// `image delete`.
    pub async fn delete_image(&self, id: &str, request_id: &str) -> Result<(), String> {
        let url = self.image_url(&format!("/images/{id}"))?;
        self.delete_ok(&url, "DELETE /v2/images/{id}", request_id)
            .await
    }

    /// Deletes one resource the workload left behind (the final clean-up), under a fresh
    /// request id.
    pub async fn purge(&self, kind: Kind, entry: &Entry, timeout: Duration) -> Result<(), String> {
        let rid = new_request_id();
        match kind {
            Kind::Server => self.purge_server(&entry.id, timeout).await,
            Kind::Attachment => {
                self.detach(&entry.parents[0], &entry.id, &rid, timeout, true)
                    .await
            }
            Kind::Snapshot => self.delete_snapshot(&entry.id, &rid, timeout).await,
            Kind::Volume => self.delete_volume(&entry.id, &rid, timeout).await,
            Kind::RouterInterface => {
                self.router_interface(&entry.parents[0], &entry.id, false, &rid)
                    .await
            }
            Kind::Router => self.neutron_delete("router", &entry.id, &rid).await,
            Kind::FloatingIp => self.neutron_delete("floatingip", &entry.id, &rid).await,
            Kind::Port => self.neutron_delete("port", &entry.id, &rid).await,
            Kind::Subnet => self.neutron_delete("subnet", &entry.id, &rid).await,
            Kind::Network => self.neutron_delete("network", &entry.id, &rid).await,
            Kind::SecurityGroupRule => {
                self.neutron_delete("security_group_rule", &entry.id, &rid)
                    .await
            }
            Kind::Image => self.delete_image(&entry.id, &rid).await,
        }
    }

    /// Deletes a workload port, network, subnet or floating IP (their delete commands).
    pub async fn delete_network_resource(
        &self,
        kind: Kind,
        id: &str,
        request_id: &str,
    ) -> Result<(), String> {
        let singular = match kind {
            Kind::Port => "port",
            Kind::Network => "network",
            Kind::Subnet => "subnet",
            Kind::FloatingIp => "floatingip",
            other => return Err(format!("{other:?} is not a Neutron resource")),
        };
        self.neutron_delete(singular, id, request_id).await
    }
}

/// Neutron's collection name of a resource.
fn plural(singular: &str) -> String {
    match singular {
        "security_group" => "security-groups".to_owned(),
        "security_group_rule" => "security-group-rules".to_owned(),
        other => format!("{other}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::openstack::tests::{fake_http, session_at};
    use super::*;

    #[test]
    fn a_resource_with_dependants_is_not_taken_for_deletion() {
        let pools = Pools::default();
        pools.add(Kind::Volume, Entry::new("v1"));
        pools.add(Kind::Volume, Entry::new("v2"));
        pools.add(
            Kind::Attachment,
            Entry {
                id: "v1".into(),
                parents: vec!["s1".into(), "v1".into()],
            },
        );
        let taken = pools.take(Kind::Volume, &[Kind::Attachment, Kind::Snapshot]);
        assert_eq!(taken, Some(Entry::new("v2")));
        assert_eq!(pools.take(Kind::Volume, &[Kind::Attachment]), None);
        // Without the blocking kinds the attached volume can be leased (e.g. to snapshot it).
        assert_eq!(pools.take(Kind::Volume, &[]), Some(Entry::new("v1")));
        // A detach leases its volume by id.
        pools.add(Kind::Volume, Entry::new("v1"));
        assert_eq!(pools.take_id(Kind::Volume, "v1"), Some(Entry::new("v1")));
        assert_eq!(pools.take_id(Kind::Volume, "v1"), None);
    }

    #[test]
    fn the_clean_up_goes_from_dependants_to_what_they_hang_on() {
        let pools = Pools::default();
        pools.add(Kind::Network, Entry::new("n"));
        pools.add(Kind::Server, Entry::new("s"));
        pools.add(
            Kind::RouterInterface,
            Entry {
                id: "sub".into(),
                parents: vec!["r".into(), "n".into()],
            },
        );
        pools.add(Kind::Router, Entry::new("r"));
        pools.add(Kind::Attachment, Entry::new("v"));
        pools.add(Kind::Volume, Entry::new("v"));
        let order: Vec<Kind> = pools.drain().into_iter().map(|(kind, _)| kind).collect();
        assert_eq!(
            order,
            [
                Kind::Attachment,
                Kind::Volume,
                Kind::RouterInterface,
                Kind::Router,
                Kind::Network,
                Kind::Server
            ]
        );
        assert_eq!(pools.count(Kind::Network), 0);
    }

    #[test]
    fn a_routers_interfaces_are_found_by_their_router() {
        let pools = Pools::default();
        for (subnet, router) in [("a", "r1"), ("b", "r2"), ("c", "r1")] {
            pools.add(
                Kind::RouterInterface,
                Entry {
                    id: subnet.into(),
                    parents: vec![router.into(), "n".into()],
                },
            );
        }
        let ids: Vec<String> = pools
            .children(Kind::RouterInterface, "r1")
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(pools.count(Kind::RouterInterface), 3);
    }

    #[test]
    fn workload_subnets_and_rules_never_repeat() {
        let pools = Pools::default();
        let cidrs: Vec<String> = (0..300).map(|_| pools.next_cidr()).collect();
        assert_eq!(cidrs[0], "10.128.0.0/24");
        assert_eq!(cidrs[256], "10.129.0.0/24");
        let unique: std::collections::HashSet<&String> = cidrs.iter().collect();
        assert_eq!(unique.len(), cidrs.len());
        assert_ne!(pools.next_rule_port(), pools.next_rule_port());
    }

    /// A Cinder that makes a volume `creating`, then `available` on the second poll; every call
    /// must carry the command's request id.
    #[tokio::test]
    async fn volume_create_polls_until_available_under_one_request_id() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicUsize;
        let polls = Arc::new(AtomicUsize::new(0));
        let seen = polls.clone();
        let url = fake_http(move |request| {
            let text = String::from_utf8_lossy(request);
            assert!(
                text.to_ascii_lowercase()
                    .contains("x-openstack-request-id: req-test"),
                "{text}"
            );
            if text.starts_with("POST /volumes") {
                assert!(text.contains(r#""size":2"#), "{text}");
                return (
                    "202 Accepted",
                    r#"{"volume":{"id":"v1","status":"creating"}}"#.into(),
                );
            }
            let status = if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                "creating"
            } else {
                "available"
            };
            (
                "200 OK",
                format!(r#"{{"volume":{{"id":"v1","status":"{status}"}}}}"#),
            )
        })
        .await;
        let mut session = session_at(url.clone());
        session.endpoints.volume = Some(url);
        let (id, result) = session
            .create_volume(2, "bfly", "req-test", Duration::from_secs(10))
            .await;
        assert_eq!(id.as_deref(), Some("v1"));
        result.expect("available");
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    /// Nova reserves the volume before it answers; a volume back at `available` is a failed
    /// attach, reported at once rather than after the timeout.
    #[tokio::test]
    async fn an_attach_whose_volume_falls_back_to_available_fails() {
        let url = fake_http(|request| {
            let text = String::from_utf8_lossy(request);
            if text.starts_with("POST /servers/s1/os-volume_attachments") {
                return ("200 OK", r#"{"volumeAttachment":{"id":"v1"}}"#.into());
            }
            (
                "200 OK",
                r#"{"volume":{"id":"v1","status":"available"}}"#.into(),
            )
        })
        .await;
        let mut session = session_at(url.clone());
        session.endpoints.volume = Some(url);
        let error = session
            .attach_volume("s1", "v1", "req-test", Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(error, "volume went to available instead of in-use");
    }

    #[tokio::test]
    async fn a_refused_port_create_names_the_call_and_neutrons_message() {
        let url = fake_http(|_| {
            (
                "409 Conflict",
                r#"{"NeutronError":{"message":"quota exceeded"}}"#.into(),
            )
        })
        .await;
        let mut session = session_at(url.clone());
        session.endpoints.network = Some(url);
        let error = session
            .create_port("n1", "bfly", "req-test")
            .await
            .unwrap_err();
        assert_eq!(error, "POST /v2.0/ports: HTTP 409 quota exceeded");
    }
}
