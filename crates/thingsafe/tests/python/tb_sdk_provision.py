"""ThingsBoard's own Python SDK (tb-mqtt-client), unmodified: provisioning, then telemetry
with the credentials it got.

Usage: tb_sdk_provision.py HOST PORT KEY SECRET DEVICE_NAME
Prints one JSON line: the provisioning answer and the telemetry publish result.
"""
import json
import sys
import time

from tb_device_mqtt import TBDeviceMqttClient, TBPublishInfo

host, port, key, secret, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
seen = {"success_code": TBPublishInfo.TB_ERR_SUCCESS}
credentials = TBDeviceMqttClient.provision(host, key, secret, port=port, device_name=name)
seen["credentials"] = credentials
if credentials and credentials.get("status") == "SUCCESS":
    client = TBDeviceMqttClient(host, port=port, username=credentials["credentialsValue"])
    client.connect()
    deadline = time.time() + 20
    while not client.is_connected() and time.time() < deadline:
        time.sleep(0.05)
    seen["telemetry_rc"] = client.send_telemetry({"provisioned": True}).get()
    client.disconnect()
print(json.dumps(seen), flush=True)
