"""A sensor, as the MQTT suites drive one: the Eclipse paho-mqtt client
(PyPI, installed by tests/mqtt/install.sh), MQTT 5, QoS 1.

    python device.py --port P --username U --password W --topic T \
        [--expect-rejected N] [--timeout S] PAYLOAD...

Subscribes to T/rejected first (if N > 0), publishes each PAYLOAD to T with
QoS 1, waits for each PUBACK and for N messages on T/rejected, then prints
one JSON object: {"connected": reason, "pubacks": [reason, ...],
"rejected": [payload, ...]}. Exits 0 unless the client itself failed.
"""
import argparse
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--client-id", default="")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--expect-rejected", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("payloads", nargs="*")
    args = parser.parse_args()

    result = {"connected": None, "pubacks": {}, "rejected": []}
    connected = threading.Event()
    subscribed = threading.Event()
    lock = threading.Lock()

    def on_connect(client, userdata, flags, reason_code, properties):
        result["connected"] = str(reason_code)
        connected.set()

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        subscribed.set()

    def on_publish(client, userdata, mid, reason_code, properties):
        with lock:
            result["pubacks"][mid] = str(reason_code)

    def on_message(client, userdata, message):
        with lock:
            result["rejected"].append(json.loads(message.payload))

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=args.client_id,
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(args.username, args.password)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_message = on_message
    client.connect(args.host, args.port)
    client.loop_start()
    deadline = time.monotonic() + args.timeout
    if not connected.wait(args.timeout):
        sys.exit("device: no CONNACK")
    if result["connected"] != "Success":
        print(json.dumps({"connected": result["connected"], "pubacks": [], "rejected": []}))
        return
    if args.expect_rejected:
        client.subscribe(args.topic + "/rejected", qos=1)
        if not subscribed.wait(args.timeout):
            sys.exit("device: no SUBACK")
    mids = []
    for payload in args.payloads:
        info = client.publish(args.topic, payload.encode(), qos=1)
        mids.append(info.mid)
    while time.monotonic() < deadline:
        with lock:
            acked = all(mid in result["pubacks"] for mid in mids)
            enough = len(result["rejected"]) >= args.expect_rejected
        if acked and enough:
            break
        time.sleep(0.02)
    client.disconnect()
    client.loop_stop()
    with lock:
        pubacks = [result["pubacks"].get(mid, "no PUBACK") for mid in mids]
        print(json.dumps({
            "connected": result["connected"],
            "pubacks": pubacks,
            "rejected": result["rejected"],
        }, ensure_ascii=False))


if __name__ == "__main__":
    main()
