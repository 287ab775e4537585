//! The local RabbitMQ (127.0.0.1:5672, guest/guest) for the live capture test and bench: a vhost
//! of their own, and a channel with an exchange to publish to.

use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

/// Runs `rabbitmqctl -q ARGS`, which must succeed, and returns what it printed.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let output = std::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl must be installed (the local RabbitMQ is required)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The AMQP URL of a vhost of the local RabbitMQ, as guest.
pub fn amqp_url(vhost: &str) -> String {
    format!("amqp://guest:guest@127.0.0.1:5672/{vhost}")
}

/// A vhost of its own (`butterfly-tracer-<name>-<pid>`, guest may use it), deleted on drop.
pub struct TestVhost(pub String);

impl TestVhost {
    pub fn new(name: &str) -> TestVhost {
        let vhost = format!("butterfly-tracer-{name}-{}", std::process::id());
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &vhost])
            .output();
        rabbitmqctl(&["add_vhost", &vhost]);
        rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
        TestVhost(vhost)
    }

    /// The AMQP URL of the vhost, as guest.
    pub fn url(&self) -> String {
        amqp_url(&self.0)
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.0])
            .output();
    }
}

/// A connection to `url` and a channel on it, with the topic exchange `exchange` declared
/// (non-durable, as oslo.messaging declares its control exchange).
pub async fn channel_with_topic_exchange(url: &str, exchange: &str) -> (Connection, Channel) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (connection, channel)
}
