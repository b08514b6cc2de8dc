"""Real OCPP charge points for the gateway's end-to-end tests.

Runs one scenario as one charger with the PyPI `ocpp` library (which checks
every answer of the central system against the official JSON schemas and
raises on one that does not fit) over `websockets`, and prints what happened
as JSON lines on stdout, for the test to compute the rows and answers it
expects:

  {"type": "connect", "n": 1, "subprotocol": "ocpp1.6"}
  {"type": "call", "action": "StartTransaction", "request": {...}, "response": {...}}
  {"type": "call", "action": "MeterValues", "request": {...}, "error": {"code": "InternalError", ...}}
  {"type": "dropped", "action": "StopTransaction", "request": {...}}   # sent, connection closed unanswered
  {"type": "triggered", "requested": "StatusNotification"}
  {"type": "pause", "name": "ingest-down"}                           # waits for a line on stdin
  {"type": "disconnect", "n": 1}

Requests and responses are written as on the wire (camelCase).

usage: charger.py URL ID PASSWORD {1.6,2.0.1} SCENARIO
"""

import asyncio
import base64
import dataclasses
import json
import sys
import time
import uuid
from datetime import datetime, timezone

import websockets
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.exceptions import OCPPError
from ocpp.messages import Call
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201


def emit(record):
    print(json.dumps(record, ensure_ascii=False), flush=True)


def wire(payload):
    return remove_nones(snake_to_camel_case(serialize_as_dict(payload)))


def at(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now():
    """The current time to the millisecond: two reports of one status a
    moment apart are two observations, not a resend of one."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Recorder:
    """Calls the central system and records each call and its outcome."""

    def __init__(self, cp):
        self.cp = cp

    async def call(self, payload, retry_internal=False, deadline_s=60):
        action = type(payload).__name__
        request = wire(payload)
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                response = await self.cp.call(payload, suppress=False)
            except OCPPError as err:
                emit({"type": "call", "action": action, "request": request,
                      "error": {"code": err.code, "description": err.description}})
                # A transaction message the central system could not store now:
                # keep it and send it again, as OCPP 1.6 section 4.7 says.
                if retry_internal and err.code == "InternalError" and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    continue
                return None
            body = snake_to_camel_case(dataclasses.asdict(response))
            emit({"type": "call", "action": action, "request": request, "response": body})
            return body


def mixin(base, result):
    """A charge point that answers TriggerMessage(StatusNotification) by
    reporting every connector's status, as a real one does."""

    class Charger(base):
        statuses = {}
        version = base

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Set once the statuses a TriggerMessage asked for were reported.
            self.reported = asyncio.Event()

        @on("TriggerMessage")
        def on_trigger(self, requested_message, **_):
            return result.TriggerMessage(status="Accepted")

        @after("TriggerMessage")
        async def after_trigger(self, requested_message, **_):
            emit({"type": "triggered", "requested": requested_message})
            if requested_message == "StatusNotification":
                for payload in self.report_statuses():
                    await Recorder(self).call(payload)
            self.reported.set()

    return Charger


class Charger16(mixin(ChargePoint16, result16)):
    def report_statuses(self):
        return [call16.StatusNotification(connector_id=c, error_code="NoError", status=s, timestamp=now())
                for c, s in sorted(self.statuses.items())]


class Charger201(mixin(ChargePoint201, result201)):
    def report_statuses(self):
        return [call201.StatusNotification(timestamp=now(), connector_status=s, evse_id=c, connector_id=1)
                for c, s in sorted(self.statuses.items())]


class Session:
    """Connections of one charger, numbered, each with its routing task."""

    def __init__(self, url, ident, password, version):
        self.url, self.ident, self.version = url, ident, version
        token = base64.b64encode(f"{ident}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}
        self.n = 0
        self.ws = None
        self.task = None
        self.cp = None
        self.statuses = {}

    async def connect(self, trigger_within=0.0):
        """Opens connection n+1. With `trigger_within`, waits that long for
        the central system to ask for the statuses (it does after it saw an
        outage) and for them to be reported, so the scenario's next call
        does not race them."""
        self.n += 1
        subprotocol = "ocpp1.6" if self.version == "1.6" else "ocpp2.0.1"
        self.ws = await websockets.connect(f"{self.url}/{self.ident}", subprotocols=[subprotocol],
                                           additional_headers=self.headers, open_timeout=10)
        emit({"type": "connect", "n": self.n, "subprotocol": self.ws.subprotocol})
        cls = Charger16 if self.version == "1.6" else Charger201
        self.cp = cls(self.ident, self.ws, response_timeout=20)
        self.cp.statuses = self.statuses
        self.task = asyncio.create_task(self.cp.start())
        if trigger_within:
            try:
                await asyncio.wait_for(self.cp.reported.wait(), trigger_within)
            except asyncio.TimeoutError:
                pass
        return Recorder(self.cp)

    async def close(self):
        if self.task:
            self.task.cancel()
        await self.ws.close()
        emit({"type": "disconnect", "n": self.n})

    async def reconnect(self):
        """Connects again a moment later, as a charger does after a lost link."""
        await asyncio.sleep(0.5)
        return await self.connect(trigger_within=3.0)

    async def drop_after_sending(self, payload):
        """Sends a CALL and closes the connection before its answer can be
        read: the answer is lost, as when a link fails."""
        self.task.cancel()
        request = wire(payload)
        message = Call(unique_id=str(uuid.uuid4()), action=type(payload).__name__, payload=request)
        await self.ws.send(message.to_json())
        emit({"type": "dropped", "action": type(payload).__name__, "request": request})
        await self.ws.close()
        emit({"type": "disconnect", "n": self.n})


def pause(name):
    emit({"type": "pause", "name": name})
    sys.stdin.readline()


def meter16(ts, wh, power_w, amps, soc):
    return {"timestamp": at(ts), "sampledValue": [
        {"value": f"{wh / 1000:.3f}", "unit": "kWh", "measurand": "Energy.Active.Import.Register",
         "context": "Sample.Periodic"},
        {"value": f"{power_w:.0f}", "unit": "W", "measurand": "Power.Active.Import"},
        {"value": f"{amps:.1f}", "unit": "A", "measurand": "Current.Import", "phase": "L1"},
        {"value": "229.8", "unit": "V", "measurand": "Voltage", "phase": "L1-N"},
        {"value": f"{soc}", "unit": "Percent", "measurand": "SoC", "location": "EV"},
    ]}


async def session16(s, base):
    """Boot, statuses, authorise, a transaction with meter values, stop."""
    cp = await s.connect()
    boot = await cp.call(call16.BootNotification(charge_point_model="AC-7", charge_point_vendor="Lucheng EV",
                                                 firmware_version="1.4.2"))
    assert boot["status"] == "Accepted", boot
    await cp.call(call16.Heartbeat())
    for c, status in [(0, "Available"), (1, "Available"), (2, "Available")]:
        s.statuses[c] = status
        await cp.call(call16.StatusNotification(connector_id=c, error_code="NoError", status=status,
                                                timestamp=at(base)))
    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing",
                                            timestamp=at(base + 600)))
    auth = await cp.call(call16.Authorize(id_tag="LC-RFID-0042"))
    assert auth["idTagInfo"]["status"] == "Accepted", auth
    start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="LC-RFID-0042", meter_start=1_250_000,
                                                  timestamp=at(base + 660)))
    tx = start["transactionId"]
    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging",
                                            timestamp=at(base + 661)))
    for i, (wh, power, amps, soc) in enumerate([(1_251_200, 7150, 31.1, 41), (1_254_800, 7180, 31.2, 47),
                                                (1_258_400, 7090, 30.8, 53)]):
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx,
                                         meter_value=[meter16(base + 700 + i * 1800, wh, power, amps, soc)]))
    await cp.call(call16.StopTransaction(meter_stop=1_260_500, timestamp=at(base + 6060), transaction_id=tx,
                                         reason="EVDisconnected", id_tag="LC-RFID-0042"))
    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Finishing",
                                            timestamp=at(base + 6061)))
    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available",
                                            timestamp=at(base + 6300)))
    s.statuses[1] = "Available"
    await cp.call(call16.DataTransfer(vendor_id="com.lucheng", message_id="ping", data="{}"))
    await cp.call(call16.FirmwareStatusNotification(status="Idle"))
    await cp.call(call16.DiagnosticsStatusNotification(status="Idle"))
    await s.close()


def energy201(ts, wh, context, power_w=None):
    values = [{"value": wh, "context": context, "measurand": "Energy.Active.Import.Register",
               "unitOfMeasure": {"unit": "Wh"}}]
    if power_w is not None:
        values.append({"value": power_w / 1000, "context": context, "measurand": "Power.Active.Import",
                       "unitOfMeasure": {"unit": "kW"}})
    return {"timestamp": at(ts), "sampledValue": values}


async def session201(s, base):
    """Boot, statuses, authorise, a transaction Started / Updated / Ended."""
    cp = await s.connect()
    boot = await cp.call(call201.BootNotification(
        charging_station={"model": "DC-60", "vendorName": "Lucheng EV", "firmwareVersion": "2.0.7"},
        reason="PowerUp"))
    assert boot["status"] == "Accepted", boot
    await cp.call(call201.Heartbeat())
    for evse in (1, 2):
        s.statuses[evse] = "Available"
        await cp.call(call201.StatusNotification(timestamp=at(base), connector_status="Available", evse_id=evse,
                                                 connector_id=1))
    await cp.call(call201.StatusNotification(timestamp=at(base + 600), connector_status="Occupied", evse_id=2,
                                             connector_id=1))
    token = {"idToken": "LC-APP-7f3a", "type": "Central"}
    auth = await cp.call(call201.Authorize(id_token=token))
    assert auth["idTokenInfo"]["status"] == "Accepted", auth
    tx = {"transactionId": "9c1e4b2a-tx"}
    await cp.call(call201.TransactionEvent(
        event_type="Started", timestamp=at(base + 620), trigger_reason="Authorized", seq_no=0,
        transaction_info={**tx, "chargingState": "EVConnected"}, evse={"id": 2, "connectorId": 1},
        id_token=token, meter_value=[energy201(base + 620, 880_000, "Transaction.Begin")]))
    await cp.call(call201.TransactionEvent(
        event_type="Updated", timestamp=at(base + 640), trigger_reason="ChargingStateChanged", seq_no=1,
        transaction_info={**tx, "chargingState": "Charging"},
        meter_value=[energy201(base + 640, 880_100, "Sample.Periodic", power_w=58_000)]))
    await cp.call(call201.TransactionEvent(
        event_type="Updated", timestamp=at(base + 2440), trigger_reason="MeterValuePeriodic", seq_no=2,
        transaction_info={**tx, "chargingState": "Charging"}, offline=True,
        meter_value=[energy201(base + 2440, 908_500, "Sample.Periodic", power_w=56_500)]))
    await cp.call(call201.TransactionEvent(
        event_type="Ended", timestamp=at(base + 4240), trigger_reason="StopAuthorized", seq_no=3,
        transaction_info={**tx, "chargingState": "EVConnected", "stoppedReason": "Local"},
        meter_value=[energy201(base + 4240, 935_200, "Transaction.End")]))
    await cp.call(call201.StatusNotification(timestamp=at(base + 4500), connector_status="Available", evse_id=2,
                                             connector_id=1))
    s.statuses[2] = "Available"
    await cp.call(call201.MeterValues(evse_id=0, meter_value=[energy201(base + 4500, 12_400_000,
                                                                         "Sample.Periodic")]))
    await cp.call(call201.NotifyEvent(generated_at=at(base + 4600), seq_no=0, event_data=[{
        "eventId": 17, "timestamp": at(base + 4600), "trigger": "Alerting", "actualValue": "true",
        "techCode": "HighTemperature", "techInfo": "cable 81 C", "eventNotificationType": "HardWiredNotification",
        "component": {"name": "ChargingCable", "evse": {"id": 1}}, "variable": {"name": "Problem"}}]))
    await cp.call(call201.SecurityEventNotification(type="StartupOfTheDevice", timestamp=at(base + 4601)))
    await s.close()


async def resend16(s, base):
    """StartTransaction, MeterValues and StopTransaction each sent, their
    connection dropped before the answer, and sent again after reconnecting."""
    cp = await s.connect()
    await cp.call(call16.BootNotification(charge_point_model="AC-7", charge_point_vendor="Lucheng EV"))
    s.statuses[1] = "Charging"
    start = call16.StartTransaction(connector_id=1, id_tag="LC-RFID-0077", meter_start=40_000,
                                    timestamp=at(base))
    await s.drop_after_sending(start)
    cp = await s.reconnect()
    tx = (await cp.call(start))["transactionId"]
    values = call16.MeterValues(connector_id=1, transaction_id=tx,
                                meter_value=[meter16(base + 900, 41_800, 7200, 31.3, 50)])
    await s.drop_after_sending(values)
    cp = await s.reconnect()
    await cp.call(values)
    stop = call16.StopTransaction(meter_stop=43_600, timestamp=at(base + 1800), transaction_id=tx,
                                  reason="Local")
    await s.drop_after_sending(stop)
    s.statuses[1] = "Available"
    cp = await s.reconnect()
    await cp.call(stop)
    await s.close()


async def outage16(s, base):
    """A transaction during which ingest goes down: the charger is told to
    resend (InternalError) and resends until it is stored."""
    cp = await s.connect()
    await cp.call(call16.BootNotification(charge_point_model="AC-7", charge_point_vendor="Lucheng EV"))
    start = await cp.call(call16.StartTransaction(connector_id=2, id_tag="LC-RFID-0099", meter_start=7_000,
                                                  timestamp=at(base)), retry_internal=True)
    tx = start["transactionId"]
    pause("ingest-down")
    await cp.call(call16.MeterValues(connector_id=2, transaction_id=tx,
                                     meter_value=[meter16(base + 600, 8_000, 7000, 30.4, 30)]),
                  retry_internal=True)
    await cp.call(call16.StopTransaction(meter_stop=9_500, timestamp=at(base + 1200), transaction_id=tx),
                  retry_internal=True)
    await s.close()


SCENARIOS = {("1.6", "session"): session16, ("2.0.1", "session"): session201,
             ("1.6", "resend"): resend16, ("1.6", "outage"): outage16}


async def main():
    url, ident, password, version, scenario = sys.argv[1:6]
    # Whole seconds, two hours ago: inside ingest's window, in the past.
    base = int(time.time()) - 7200
    await SCENARIOS[(version, scenario)](Session(url, ident, password, version), base)


if __name__ == "__main__":
    asyncio.run(main())
