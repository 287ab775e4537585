//! Canonical service names, and how oslo.messaging topics and notification publishers map to them.
//!
//! The whole project names services the same way (`nova-conductor`, `placement-api`, …), so that a
//! fault campaign's target, a trace event and a diagnosis can be compared as plain strings.

/// The canonical service names used across the project.
pub const CANONICAL_SERVICES: &[&str] = &[
    "keystone",
    "placement-api",
    "glance-api",
    "neutron-api",
    "nova-api",
    "nova-conductor",
    "nova-scheduler",
    "nova-compute",
    "cinder-api",
    "cinder-scheduler",
    "cinder-volume",
    "rabbitmq",
    "mariadb",
];

/// The service that consumes an oslo.messaging RPC topic, e.g. `conductor` → `nova-conductor`.
///
/// Unknown topics map to themselves so that nothing is lost; the caller can still tell them apart.
pub fn service_for_topic(topic: &str) -> String {
    let known = match topic {
        "conductor" => "nova-conductor",
        "scheduler" | "scheduler_fanout" => "nova-scheduler",
        "compute" | "compute_fanout" => "nova-compute",
        // Cinder's topics are its binaries' names; the volume service's server is
        // `host@backend` (`cinder-volume.controller@fake`).
        "cinder-scheduler" | "cinder-scheduler_fanout" => "cinder-scheduler",
        "cinder-volume" | "cinder-volume_fanout" => "cinder-volume",
        // Neutron's server consumes the plugin topics; agents are not part of the canonical set.
        "q-plugin" | "q-reports-plugin" | "q-l3-plugin" | "q-server-resource-versions" => {
            "neutron-api"
        }
        _ => return topic.to_owned(),
    };
    known.to_owned()
}

/// Splits an RPC routing key `topic` or `topic.server` into topic and server.
///
/// oslo.messaging builds the key as `"%s.%s" % (topic, server)`; topics carry no dot in OpenStack
/// while host names may (FQDNs), so the first dot separates them.
pub fn split_routing_key(routing_key: &str) -> (&str, Option<&str>) {
    match routing_key.split_once('.') {
        Some((topic, server)) if !server.is_empty() => (topic, Some(server)),
        Some((topic, _)) => (topic, None),
        None => (routing_key, None),
    }
}

/// Service and host of a notification's `publisher_id`.
///
/// Versioned notifications use `service:host` (`nova-compute:osbed`); legacy ones use
/// `topic.host` (`compute.osbed`), whose topic is mapped like an RPC topic.
pub fn service_for_publisher(publisher_id: &str) -> (String, Option<String>) {
    if let Some((service, host)) = publisher_id.split_once(':') {
        let host = (!host.is_empty()).then(|| host.to_owned());
        return (canonical_publisher(service), host);
    }
    let (topic, host) = split_routing_key(publisher_id);
    (service_for_topic(topic), host.map(str::to_owned))
}

fn canonical_publisher(service: &str) -> String {
    match service {
        "nova-osapi_compute" | "nova-api-os-compute" => "nova-api".to_owned(),
        "placement" => "placement-api".to_owned(),
        "glance" => "glance-api".to_owned(),
        "neutron" | "neutron-server" => "neutron-api".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_map_to_canonical_services() {
        assert_eq!(service_for_topic("conductor"), "nova-conductor");
        assert_eq!(service_for_topic("scheduler"), "nova-scheduler");
        assert_eq!(service_for_topic("scheduler_fanout"), "nova-scheduler");
        assert_eq!(service_for_topic("compute"), "nova-compute");
        assert_eq!(service_for_topic("mystery"), "mystery");
        assert_eq!(service_for_topic("cinder-volume"), "cinder-volume");
        assert_eq!(
            service_for_topic("cinder-scheduler_fanout"),
            "cinder-scheduler"
        );
        let (topic, server) = split_routing_key("cinder-volume.controller@fake");
        assert_eq!(
            (service_for_topic(topic).as_str(), server),
            ("cinder-volume", Some("controller@fake"))
        );
        for name in [
            "nova-conductor",
            "nova-scheduler",
            "nova-compute",
            "neutron-api",
            "cinder-scheduler",
            "cinder-volume",
        ] {
            assert!(CANONICAL_SERVICES.contains(&name));
        }
    }

    #[test]
    fn routing_keys_split_at_the_first_dot() {
        assert_eq!(
            split_routing_key("compute.osbed"),
            ("compute", Some("osbed"))
        );
        assert_eq!(
            split_routing_key("compute.node1.example.org"),
            ("compute", Some("node1.example.org"))
        );
        assert_eq!(split_routing_key("conductor"), ("conductor", None));
        assert_eq!(split_routing_key("conductor."), ("conductor", None));
    }

    #[test]
    fn publishers_map_to_service_and_host() {
        assert_eq!(
            service_for_publisher("nova-compute:osbed"),
            ("nova-compute".to_owned(), Some("osbed".to_owned()))
        );
        assert_eq!(
            service_for_publisher("compute.osbed"),
            ("nova-compute".to_owned(), Some("osbed".to_owned()))
        );
        assert_eq!(
            service_for_publisher("nova-scheduler:"),
            ("nova-scheduler".to_owned(), None)
        );
    }
}
