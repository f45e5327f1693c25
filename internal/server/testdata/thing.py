"""A thing written with Eclipse Paho for Python, doing what Kii's MQTT
onboarding sample does (PROTOCOL.md section 8).

It onboards on the onboarding broker with an LF-only request published at
QoS 1 without any SUBSCRIBE, requires the answer on the same topic to start
with "200\\r\\n", connects to the API broker named by host + portTCP with
MQTT 3.1.1, subscribes to its mqttTopic at QoS 0 and prints "READY
{thingID}". For the first command pushed it PUTs the action results over MQTT,
requires a 204, prints the commandID and exits 0. Any failure exits 1 with a
message on stderr.

Works with paho-mqtt 1.x and 2.x.

Usage: thing.py HOST PORT APP_ID APP_KEY VENDOR_THING_ID THING_PASSWORD
"""

import json
import queue
import sys

import paho.mqtt.client as mqtt

TIMEOUT = 30  # seconds for every step


def fail(msg):
    print("thing.py: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def new_client(client_id):
    kw = dict(client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311)
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt 2.x
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, **kw)
    return mqtt.Client(**kw)


def connect(host, port, client_id, username, password):
    """Connects and returns the client and a queue of received messages
    (every topic, subscribed or not)."""
    c = new_client(client_id)
    c.username_pw_set(username, password)
    events = queue.Queue()
    c.on_connect = lambda cl, ud, flags, rc: events.put(("connack", rc))
    c.on_subscribe = lambda cl, ud, mid, granted: events.put(("suback", list(granted)))
    c.on_message = lambda cl, ud, msg: events.put(("message", (msg.topic, msg.payload)))
    c.on_disconnect = lambda cl, ud, rc: events.put(("disconnect", rc))
    c.connect(host, port, keepalive=60)
    c.loop_start()
    rc = next_event(events, "connack")
    if rc != 0:
        fail("CONNACK %d from %s:%d" % (rc, host, port))
    return c, events


def next_event(events, want, topic=None):
    while True:
        try:
            kind, value = events.get(timeout=TIMEOUT)
        except queue.Empty:
            fail("no %s within %d s" % (want, TIMEOUT))
        if kind == "disconnect":
            fail("disconnected (rc %d) while waiting for %s" % (value, want))
        if kind != want:
            continue
        if topic is not None and value[0] != topic:
            continue  # clients ignore topics they do not know
        return value


def http_answer(payload):
    """Splits an HTTP-over-MQTT answer into status line and body."""
    text = payload.decode("utf-8")
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        fail("answer without an empty line: %r" % text)
    return head.split("\r\n", 1)[0], text, body


def main():
    if len(sys.argv) != 7:
        fail("usage: thing.py HOST PORT APP_ID APP_KEY VENDOR_THING_ID THING_PASSWORD")
    host, port, app_id, app_key, vendor_thing_id, thing_password = sys.argv[1:]

    # Onboarding: no SUBSCRIBE; the answer comes on the request topic.
    onboard, events = connect(host, int(port), "anonymous",
                              "type=oauth2&client_id=" + app_id, "client_secret=" + app_key)
    topic = "p/anonymous/thing-if/apps/%s/onboardings" % app_id
    request = ("POST\n"
               "Content-type: application/vnd.kii.OnboardingWithVendorThingIDByThing+json\n"
               "\n"
               '{"vendorThingID": "%s","thingPassword": "%s"}' % (vendor_thing_id, thing_password))
    onboard.publish(topic, request, qos=1)
    _, payload = next_event(events, "message", topic)
    if not payload.startswith(b"200\r\n"):
        fail("onboarding answer: %r" % payload)
    _, _, body = http_answer(payload)
    answer = json.loads(body)
    onboard.disconnect()
    onboard.loop_stop()

    token = answer["accessToken"]
    thing_id = answer["thingID"]
    ep = answer["mqttEndpoint"]
    topic = ep["mqttTopic"]
    api, events = connect(ep["host"], int(ep["portTCP"]), topic, ep["username"], ep["password"])
    api.subscribe(topic, qos=0)
    granted = next_event(events, "suback")
    if granted != [0]:
        fail("SUBACK %r, want [0]" % granted)
    print("READY " + thing_id, flush=True)

    _, push = next_event(events, "message", topic)
    command = json.loads(push)
    command_id = command["commandID"]
    results = []
    for action in command["actions"]:
        for name in action:
            results.append({name: {"succeeded": True}})
    request_topic = "p/%s/thing-if/apps/%s/targets/thing:%s/commands/%s/action-results" % (
        topic, app_id, thing_id, command_id)
    request = ("PUT\n"
               "Authorization: Bearer %s\n"
               "Content-Type: application/json\n"
               "\n"
               "%s" % (token, json.dumps({"actionResults": results})))
    api.publish(request_topic, request, qos=1)
    _, payload = next_event(events, "message", request_topic)
    status, text, _ = http_answer(payload)
    if status != "204":
        fail("action results answer: %r" % text)
    api.disconnect()
    api.loop_stop()
    print(command_id, flush=True)


if __name__ == "__main__":
    main()
