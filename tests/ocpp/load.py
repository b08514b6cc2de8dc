"""Many real OCPP 1.6 charge points at once, for the gateway's benchmark.

Each station (PyPI `ocpp`, which checks every answer against the official
schemas) connects, boots and reports its connectors; once all are connected
the steady phase runs for --duration seconds: half the stations charge
(StartTransaction, then MeterValues every --meter-every seconds), the others
send MeterValues of their idle meter at the same rate; every station
heartbeats every --heartbeat-every seconds and flips a connector's status
every --status-every seconds. The gateway's and ingest's CPU (from
/proc/PID/stat) and memory (/proc/PID/status) are read at the start and end
of the steady phase. Prints one JSON object with the figures.

usage: load.py URL PASSWORD --stations N --gateway-pid P --ingest-pid P [...]
"""

import argparse
import asyncio
import base64
import json
import os
import random
import time
from datetime import datetime, timezone

import websockets
from ocpp.exceptions import OCPPError
from ocpp.v16 import ChargePoint
from ocpp.v16 import call

TICKS = os.sysconf("SC_CLK_TCK")


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory_mb(pid):
    values = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


class Stats:
    def __init__(self):
        self.calls = 0
        self.results = 0
        self.errors = {}
        self.latencies = []
        self.steady = False


async def timed(cp, stats, payload):
    started = time.monotonic()
    stats.calls += 1
    try:
        answer = await cp.call(payload, suppress=False)
    except OCPPError as err:
        stats.errors[err.code] = stats.errors.get(err.code, 0) + 1
        return None
    stats.results += 1
    if stats.steady:
        stats.latencies.append(time.monotonic() - started)
    return answer


async def station(i, args, stats, connected, steady, done, handshakes):
    ident = f"LOAD-CP-{i:03d}"
    token = base64.b64encode(f"{ident}:{args.password}".encode()).decode()
    # At most --connecting stations handshake at once (a town's chargers do
    # not all power up in the same millisecond either).
    await handshakes.acquire()
    async with websockets.connect(f"{args.url}/{ident}", subprotocols=["ocpp1.6"],
                                  additional_headers={"Authorization": f"Basic {token}"},
                                  open_timeout=60, ping_interval=None) as ws:
        cp = ChargePoint(ident, ws, response_timeout=60)
        router = asyncio.create_task(cp.start())
        await timed(cp, stats, call.BootNotification(charge_point_model="AC-7", charge_point_vendor="load"))
        for c in range(1, args.connectors + 1):
            await timed(cp, stats, call.StatusNotification(connector_id=c, error_code="NoError",
                                                           status="Available", timestamp=now()))
        handshakes.release()
        connected.append(ident)
        await steady.wait()
        rng = random.Random(i)
        register = rng.randint(100_000, 4_000_000)
        charging = i % 2 == 0
        tx = None
        if charging:
            answer = await timed(cp, stats, call.StartTransaction(connector_id=1, id_tag=f"LOAD-{i}",
                                                                  meter_start=register, timestamp=now()))
            tx = answer.transaction_id if answer else None
        # Spread the stations over the intervals.
        loop = asyncio.get_running_loop()
        next_meter = loop.time() + rng.uniform(0, args.meter_every)
        next_beat = loop.time() + rng.uniform(0, args.heartbeat_every)
        next_status = loop.time() + rng.uniform(0, args.status_every)
        flip = False
        while not done.is_set():
            at = min(next_meter, next_beat, next_status)
            try:
                await asyncio.wait_for(done.wait(), max(0.0, at - loop.time()))
                break
            except asyncio.TimeoutError:
                pass
            t = loop.time()
            if t >= next_meter:
                power = 7100 if charging else 0
                register += power * args.meter_every // 3600
                values = [{"value": str(register), "unit": "Wh", "measurand": "Energy.Active.Import.Register"},
                          {"value": str(power), "unit": "W", "measurand": "Power.Active.Import"},
                          {"value": "230.4", "unit": "V", "measurand": "Voltage"}]
                await timed(cp, stats, call.MeterValues(connector_id=1, transaction_id=tx,
                                                        meter_value=[{"timestamp": now(), "sampledValue": values}]))
                next_meter += args.meter_every
            if t >= next_beat:
                await timed(cp, stats, call.Heartbeat())
                next_beat += args.heartbeat_every
            if t >= next_status:
                flip = not flip
                await timed(cp, stats, call.StatusNotification(
                    connector_id=args.connectors, error_code="NoError",
                    status="Preparing" if flip else "Available", timestamp=now()))
                next_status += args.status_every
        if tx is not None:
            await timed(cp, stats, call.StopTransaction(meter_stop=register, timestamp=now(), transaction_id=tx,
                                                        reason="Local"))
        router.cancel()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("password")
    parser.add_argument("--stations", type=int, default=500)
    parser.add_argument("--connectors", type=int, default=2)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--meter-every", type=int, default=10)
    parser.add_argument("--heartbeat-every", type=int, default=30)
    parser.add_argument("--status-every", type=int, default=60)
    parser.add_argument("--connecting", type=int, default=25)
    parser.add_argument("--gateway-pid", type=int, required=True)
    parser.add_argument("--ingest-pid", type=int, required=True)
    args = parser.parse_args()

    stats = Stats()
    connected, steady, done = [], asyncio.Event(), asyncio.Event()
    started = time.monotonic()
    handshakes = asyncio.Semaphore(args.connecting)
    tasks = [asyncio.create_task(station(i, args, stats, connected, steady, done, handshakes))
             for i in range(1, args.stations + 1)]
    while len(connected) < args.stations:
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise failed[0].exception()
        await asyncio.sleep(0.05)
    connect_s = time.monotonic() - started
    connect_calls = stats.results

    pids = {"gateway": args.gateway_pid, "ingest": args.ingest_pid}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    client_before = sum(os.times()[:2])
    steady_started = time.monotonic()
    stats.steady = True
    steady.set()
    await asyncio.sleep(args.duration)
    steady_s = time.monotonic() - steady_started
    cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    client_after = sum(os.times()[:2])
    memory = {name: memory_mb(pid) for name, pid in pids.items()}
    steady_results = stats.results - connect_calls
    stats.steady = False
    done.set()
    await asyncio.gather(*tasks)

    latencies = sorted(stats.latencies)
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1) if latencies else None
    print(json.dumps({
        "stations": args.stations,
        "connectors": args.connectors,
        "meter_every_s": args.meter_every,
        "heartbeat_every_s": args.heartbeat_every,
        "status_every_s": args.status_every,
        "connecting": args.connecting,
        "connect_s": round(connect_s, 2),
        "steady_s": round(steady_s, 2),
        "calls": stats.calls,
        "results": stats.results,
        "errors": stats.errors,
        "steady_results": steady_results,
        "steady_per_s": round(steady_results / steady_s, 1),
        "latency_p50_ms": pick(0.50),
        "latency_p99_ms": pick(0.99),
        "cpu_cores": {name: round((cpu_after[name] - cpu_before[name]) / steady_s, 3) for name in pids},
        "client_cpu_cores": round((client_after - client_before) / steady_s, 3),
        "rss_mb": {name: round(memory[name].get("VmRSS", 0), 1) for name in pids},
        "peak_rss_mb": {name: round(memory[name].get("VmHWM", 0), 1) for name in pids},
    }))


if __name__ == "__main__":
    asyncio.run(main())
