//! MQTT 3.1.1 and 5 device clients (rumqttc) against a test `Server`: connect with an
//! access token, publish at QoS 1 and wait for the PUBACK, subscribe, read the next
//! message; every wait is bounded by `WAIT`.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

use super::Server;

/// How long any one answer from the server may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// MQTT 3.1.1 with rumqttc.
pub mod v3 {
    use super::*;
    pub use rumqttc::{
        AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet,
        QoS, SubscribeReasonCode,
    };

    pub struct Client {
        pub client: AsyncClient,
        pub events: EventLoop,
    }

    /// Connects; the CONNACK's return code when refused.
    pub async fn connect(
        s: &Server,
        id: &str,
        token: Option<&str>,
    ) -> Result<Client, ConnectReturnCode> {
        let options = MqttOptions::new(id, "127.0.0.1", s.mqtt_addr.port());
        connect_with(options, token).await
    }

    /// Connects over TLS to the server's MQTT over TLS listener as `localhost`, trusting
    /// only the PEM certificate `ca`; panics when refused.
    pub async fn connected_tls(s: &Server, id: &str, token: &str, ca: &std::path::Path) -> Client {
        connect_tls(s, id, Some(token), ca, None)
            .await
            .expect("connected")
    }

    /// Connects over TLS, presenting the client certificate and key (PEM) `client` if
    /// given; the CONNACK's return code when refused.
    pub async fn connect_tls(
        s: &Server,
        id: &str,
        token: Option<&str>,
        ca: &std::path::Path,
        client: Option<(&str, &str)>,
    ) -> Result<Client, ConnectReturnCode> {
        let port = s.mqtts_addr.expect("TLS is on").port();
        let mut options = MqttOptions::new(id, "localhost", port);
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Simple {
                ca: std::fs::read(ca).unwrap(),
                alpn: None,
                client_auth: client.map(|(cert, key)| (cert.into(), key.into())),
            },
        ));
        connect_with(options, token).await
    }

    async fn connect_with(
        mut options: MqttOptions,
        token: Option<&str>,
    ) -> Result<Client, ConnectReturnCode> {
        options.set_keep_alive(Duration::from_secs(30));
        if let Some(token) = token {
            options.set_credentials(token, "");
        }
        let (client, mut events) = AsyncClient::new(options, 16);
        match tokio::time::timeout(WAIT, events.poll())
            .await
            .expect("a CONNACK")
        {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                assert_eq!(ack.code, ConnectReturnCode::Success);
                Ok(Client { client, events })
            }
            Err(ConnectionError::ConnectionRefused(code)) => Err(code),
            other => panic!("expected a CONNACK, got {other:?}"),
        }
    }

    /// Connects with `token`; panics when refused.
    pub async fn connected(s: &Server, id: &str, token: &str) -> Client {
        connect(s, id, Some(token)).await.expect("connected")
    }

    impl Client {
        /// The next incoming packet for which `f` says something.
        pub async fn until<T>(&mut self, mut f: impl FnMut(&Packet) -> Option<T>) -> T {
            loop {
                match tokio::time::timeout(WAIT, self.events.poll())
                    .await
                    .expect("an answer within 10 s")
                {
                    Ok(Event::Incoming(p)) => {
                        if let Some(t) = f(&p) {
                            return t;
                        }
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(e) => panic!("connection failed: {e}"),
                }
            }
        }

        /// Publishes at QoS 1 and waits for the PUBACK.
        pub async fn publish(&mut self, topic: &str, payload: &str) {
            self.client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
            self.until(|p| matches!(p, Packet::PubAck(_)).then_some(()))
                .await;
        }

        /// Publishes at QoS 1 and expects the server to close the connection.
        pub async fn publish_refused(&mut self, topic: &str, payload: &str) {
            self.client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
            loop {
                match tokio::time::timeout(WAIT, self.events.poll())
                    .await
                    .expect("the server closes within 10 s")
                {
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        panic!("{topic} {payload}: acknowledged as {a:?}")
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }

        /// Subscribes at `qos`; the SUBACK's return code.
        pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubscribeReasonCode {
            self.client.subscribe(filter, qos).await.unwrap();
            self.until(|p| match p {
                Packet::SubAck(a) => Some(a.return_codes[0]),
                _ => None,
            })
            .await
        }

        /// The next PUBLISH from the server: (topic, JSON payload).
        pub async fn message(&mut self) -> (String, Value) {
            self.until(|p| match p {
                Packet::Publish(m) => Some((
                    m.topic.clone(),
                    serde_json::from_slice(&m.payload).expect("JSON"),
                )),
                _ => None,
            })
            .await
        }
    }
}

/// MQTT 5 with rumqttc.
pub mod v5 {
    use super::*;
    pub use rumqttc::v5::mqttbytes::QoS;
    pub use rumqttc::v5::mqttbytes::v5::{
        ConnAckProperties, ConnectReturnCode, Packet, PubAckReason, SubscribeReasonCode,
    };
    pub use rumqttc::v5::{
        AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, StateError,
    };

    pub struct Client {
        pub client: AsyncClient,
        pub events: EventLoop,
        /// The CONNACK's properties.
        pub properties: Option<ConnAckProperties>,
    }

    /// Connects; the CONNACK's reason code when refused.
    pub async fn connect(
        s: &Server,
        id: &str,
        token: Option<&str>,
    ) -> Result<Client, ConnectReturnCode> {
        let mut options = MqttOptions::new(id, "127.0.0.1", s.mqtt_addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        if let Some(token) = token {
            options.set_credentials(token, "");
        }
        let (client, mut events) = AsyncClient::new(options, 16);
        match tokio::time::timeout(WAIT, events.poll())
            .await
            .expect("a CONNACK")
        {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                assert_eq!(ack.code, ConnectReturnCode::Success);
                Ok(Client {
                    client,
                    events,
                    properties: ack.properties,
                })
            }
            Err(ConnectionError::ConnectionRefused(code)) => Err(code),
            other => panic!("expected a CONNACK, got {other:?}"),
        }
    }

    /// Connects with `token`; panics when refused.
    pub async fn connected(s: &Server, id: &str, token: &str) -> Client {
        connect(s, id, Some(token)).await.expect("connected")
    }

    impl Client {
        async fn next(&mut self) -> Result<Event, ConnectionError> {
            tokio::time::timeout(WAIT, self.events.poll())
                .await
                .expect("an answer within 10 s")
        }

        /// The next incoming packet for which `f` says something.
        pub async fn until<T>(&mut self, mut f: impl FnMut(&Packet) -> Option<T>) -> T {
            loop {
                match self.next().await {
                    Ok(Event::Incoming(p)) => {
                        if let Some(t) = f(&p) {
                            return t;
                        }
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(e) => panic!("connection failed: {e}"),
                }
            }
        }

        /// Publishes at QoS 1 and waits for a successful PUBACK.
        pub async fn publish(&mut self, topic: &str, payload: &str) {
            self.client
                .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
                .await
                .unwrap();
            self.until(|p| match p {
                Packet::PubAck(a) => {
                    assert_eq!(a.reason, PubAckReason::Success, "{topic} {payload}");
                    Some(())
                }
                _ => None,
            })
            .await;
        }

        /// Publishes at QoS 1; the PUBACK's failure reason (rumqttc reports it as an error,
        /// after which the client reconnects).
        pub async fn publish_refused(&mut self, topic: &str, payload: &str) -> PubAckReason {
            self.client
                .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
                .await
                .unwrap();
            loop {
                match self.next().await {
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        panic!("{topic} {payload}: acknowledged as {a:?}")
                    }
                    Ok(_) => {}
                    Err(ConnectionError::MqttState(StateError::PubAckFail { reason })) => {
                        return reason;
                    }
                    Err(e) => panic!("expected a refusing PUBACK, got {e}"),
                }
            }
        }

        /// Subscribes at `qos`; the granted QoS, or `Err` with the reason when refused.
        pub async fn subscribe(
            &mut self,
            filter: &str,
            qos: QoS,
        ) -> Result<QoS, SubscribeReasonCode> {
            self.client.subscribe(filter, qos).await.unwrap();
            loop {
                match self.next().await {
                    Ok(Event::Incoming(Packet::SubAck(a))) => {
                        return match a.return_codes[0] {
                            SubscribeReasonCode::Success(qos) => Ok(qos),
                            other => Err(other),
                        };
                    }
                    Ok(_) => {}
                    Err(ConnectionError::MqttState(StateError::SubFail { reason })) => {
                        return Err(reason);
                    }
                    Err(e) => panic!("expected a SUBACK, got {e}"),
                }
            }
        }

        /// The next PUBLISH from the server: (topic, JSON payload).
        pub async fn message(&mut self) -> (String, Value) {
            self.until(|p| match p {
                Packet::Publish(m) => Some((
                    String::from_utf8(m.topic.to_vec()).unwrap(),
                    serde_json::from_slice(&m.payload).expect("JSON"),
                )),
                _ => None,
            })
            .await
        }
    }
}
