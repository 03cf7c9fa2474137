-- Gateways (ThingsBoard's gateway MQTT API): a device flagged as a gateway speaks for its
-- sub-devices over `v1/gateway/*`, creating them on first sight. `gateway_id` names the
-- gateway that created a sub-device: the only one that may reach it.

ALTER TABLE device ADD COLUMN gateway INTEGER NOT NULL DEFAULT 0 CHECK (gateway IN (0, 1));
ALTER TABLE device ADD COLUMN gateway_id TEXT REFERENCES device (id) ON DELETE SET NULL;
CREATE INDEX device_by_gateway ON device (gateway_id) WHERE gateway_id IS NOT NULL;
