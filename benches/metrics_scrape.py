#!/usr/bin/env python3
"""The size and CPU cost of one Health Proxy `/metrics` scrape with many targets (docs/benchmarks.md,
"Metrics cardinality").

Runs the real hale binary with N HTTP targets (`svc-00001`, ... as `hale history generate` names them), each
checked every 10 s against a cheap local responder (asyncio, 4 ports, `200 ok` to any path, keep-alive, in a
process of its own). After a warm-up of checks it reports:

- the size in bytes of one `/metrics` answer of the Health Proxy, and its series (sample lines);
- hale's CPU per scrape: utime+stime from /proc/PID/stat before and after S scrapes, divided by S, raw and
  with hale's background CPU (measured over an idle window of the same length just before) taken out;
- the wall time per scrape.

Usage:
    cargo build --release
    python3 benches/metrics_scrape.py --hale target/release/hale [--targets 10000] [--warmup-s 180] [--scrapes 20]

Python 3.11, standard library only. Temp files are removed at the end; hale and the responder are stopped
on exit.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serve(ports: list[int]) -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    servers = [await asyncio.start_server(handle, "127.0.0.1", p, backlog=4096) for p in ports]
    await asyncio.gather(*(s.serve_forever() for s in servers))


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the line; after the command (field 2) the list starts at field 3.
    return int(fields[11]) + int(fields[12])


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as answer:
        return answer.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hale", required=True, help="the hale binary")
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--interval-s", type=int, default=10)
    parser.add_argument("--warmup-s", type=int, default=180)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--idle-s", type=float, help="the idle window for the background CPU (default: as long "
                        "as the scrapes, at least 5 s)")
    parser.add_argument("--responder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.responder:
        asyncio.run(serve([int(p) for p in args.responder.split(",")]))
        return 0

    ports = [free_port() for _ in range(4)]
    responder = subprocess.Popen([sys.executable, __file__, "--hale", "-", "--responder", ",".join(map(str, ports))])
    hale = None
    with tempfile.TemporaryDirectory(prefix="hale-metrics-") as tmp:
        try:
            listen = {k: f"127.0.0.1:{free_port()}" for k in ("health_proxy", "mcp_bridge", "boss_api")}
            width = 5 if args.targets >= 1000 else 3
            services = [
                {
                    "name": f"svc-{i + 1:0{width}d}",
                    "url": f"http://127.0.0.1:{ports[i % len(ports)]}/svc-{i + 1:0{width}d}",
                    "interval_s": args.interval_s,
                }
                for i in range(args.targets)
            ]
            config = {"listen": listen, "services": services}
            config_path = os.path.join(tmp, "config.json")
            with open(config_path, "w") as f:
                json.dump(config, f)
            hale = subprocess.Popen(
                [args.hale, "serve", "--config", config_path, "--db", os.path.join(tmp, "hale.db")],
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(tmp, "hale.log"), "w"),
            )
            base = f"http://{listen['health_proxy']}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    get(f"{base}/health")
                    break
                except OSError:
                    if hale.poll() is not None or time.monotonic() > deadline:
                        print(open(os.path.join(tmp, "hale.log")).read()[-3000:], file=sys.stderr)
                        raise SystemExit("hale did not start")
                    time.sleep(0.5)
            print(f"hale {args.hale} with {args.targets} targets every {args.interval_s} s; warming up {args.warmup_s} s",
                  flush=True)
            time.sleep(args.warmup_s)

            text = get(f"{base}/metrics")
            lines = text.decode().splitlines()
            samples = sum(1 for l in lines if l and not l.startswith("#"))
            per_target = sum(1 for l in lines if 'target="svc-' in l)

            # Background CPU over an idle window as long as the scrapes are expected to take, then the scrapes.
            scrape_start = time.monotonic()
            get(f"{base}/metrics")
            one = time.monotonic() - scrape_start
            idle_s = args.idle_s or max(5.0, one * args.scrapes)
            t0, c0 = time.monotonic(), cpu_ticks(hale.pid)
            time.sleep(idle_s)
            t1, c1 = time.monotonic(), cpu_ticks(hale.pid)
            background = (c1 - c0) / TICK / (t1 - t0)
            t2, c2 = time.monotonic(), cpu_ticks(hale.pid)
            for _ in range(args.scrapes):
                get(f"{base}/metrics")
            t3, c3 = time.monotonic(), cpu_ticks(hale.pid)
            raw = (c3 - c2) / TICK / args.scrapes
            net = ((c3 - c2) / TICK - background * (t3 - t2)) / args.scrapes
            wall = (t3 - t2) / args.scrapes
            result = {
                "targets": args.targets,
                "bytes": len(text),
                "samples": samples,
                "samples_with_a_target": per_target,
                "cpu_ms_per_scrape_raw": round(raw * 1000, 1),
                "cpu_ms_per_scrape_net": round(net * 1000, 1),
                "background_cpu_percent": round(background * 100, 1),
                "wall_ms_per_scrape": round(wall * 1000, 1),
            }
            print(json.dumps(result), flush=True)
        finally:
            for child in (hale, responder):
                if child is not None and child.poll() is None:
                    child.send_signal(signal.SIGTERM)
                    try:
                        child.wait(timeout=40)
                    except subprocess.TimeoutExpired:
                        child.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
