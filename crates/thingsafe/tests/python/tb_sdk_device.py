"""A device written with ThingsBoard's own Python SDK (tb-mqtt-client), unmodified.

Usage: tb_sdk_device.py HOST PORT TOKEN
Prints "READY" once it has sent telemetry and attributes and waits for a shared attribute
update and a server-side RPC; then prints one JSON line with what it saw and exits.
"""
import json
import sys
import threading
import time

from tb_device_mqtt import TBDeviceMqttClient, TBPublishInfo

host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen = {}
shared_update = threading.Event()
rpc_handled = threading.Event()
attributes_answered = threading.Event()

client = TBDeviceMqttClient(host, port=port, username=token)


def on_rpc(request_id, body):
    seen["rpc"] = {"id": request_id, "method": body.get("method"), "params": body.get("params")}
    client.send_rpc_reply(request_id, {"handledBy": "tb-mqtt-client", "echo": body.get("params")})
    rpc_handled.set()


def on_target(content, _exception):
    seen["shared_update"] = content
    shared_update.set()


def on_attributes(content, exception):
    seen["attribute_response"] = content
    seen["attribute_error"] = str(exception) if exception else None
    attributes_answered.set()


client.set_server_side_rpc_request_handler(on_rpc)
client.connect()
deadline = time.time() + 20
while not client.is_connected() and time.time() < deadline:
    time.sleep(0.05)
seen["connected"] = client.is_connected()

seen["telemetry_rc"] = client.send_telemetry({"temperature": 21.5, "humidity": 40}).get()
seen["telemetry_ts_rc"] = client.send_telemetry({"ts": 1700000000000, "values": {"temperature": 19.0}}).get()
seen["attributes_rc"] = client.send_attributes({"firmware": "1.0.3", "model": "tb-sdk"}).get()
seen["success_code"] = TBPublishInfo.TB_ERR_SUCCESS
client.subscribe_to_attribute("target", on_target)
client.request_attributes(client_keys=["firmware"], callback=on_attributes)
attributes_answered.wait(10)
limits_answered = threading.Event()


def on_limits(_request_id, content, _exception):
    seen["session_limits"] = content
    limits_answered.set()


client.send_rpc_call("getSessionLimits", {"timeout": 5000}, on_limits)
limits_answered.wait(10)

print("READY", flush=True)
shared_update.wait(30)
rpc_handled.wait(30)
time.sleep(0.5)  # let the RPC reply leave before disconnecting
client.disconnect()
print(json.dumps(seen), flush=True)
