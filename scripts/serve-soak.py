#!/usr/bin/env python3
"""Soak test of a running mt-serve: CLIENTS threads for SECONDS seconds, each sending in turn good
requests (a line whose translation is known), bad ones (malformed JSON, wrong types, an unknown pair,
an empty q) and abandoned ones (the connection closed before the answer). Checks that every good answer
is the expected translation, that every bad request gets its 400 and nothing else, that nothing gets a
5xx, and that the server's memory stays flat after the warm-up (its resident set at the end within 10 %
and 32 MiB of the set after the first quarter). Prints a JSON summary; exits 1 on any violation.
Standard library only; loopback only.

Usage: serve-soak.py URL PID EXPECTED_TSV [--clients 64] [--seconds 60]
EXPECTED_TSV: lines "source<TAB>translation" (mt-translate's translations).
"""
import argparse
import http.client
import json
import random
import socket
import threading
import time
import urllib.parse


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("pid", type=int)
    parser.add_argument("expected")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    url = urllib.parse.urlparse(args.url)
    assert url.hostname in ("127.0.0.1", "localhost", "::1"), "load goes to loopback only"
    pairs = [line.rstrip("\n").split("\t") for line in open(args.expected, encoding="utf-8") if line.strip()]

    bad_requests = [
        b'{"q": "a dog", "source": ',                                     # malformed JSON
        b'{"q": 17, "source": "en", "target": "de"}',                     # wrong type
        b'{"q": ["a", 3], "source": "en", "target": "de"}',              # wrong item type
        b'{"q": "a dog", "source": "en", "target": "xx"}',                # unknown pair
        b'{"q": "", "source": "en", "target": "de"}',                     # empty
        b'{"source": "en", "target": "de"}',                              # missing q
        b'[1, 2, 3]',                                                      # not an object
    ]
    counts = {"good": 0, "bad": 0, "abandoned": 0}
    violations = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds
    warm = {}

    def post(body):
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        try:
            connection.request("POST", "/translate", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def client(seed):
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            kind = rng.choices(["good", "bad", "abandoned"], [6, 2, 2])[0]
            try:
                if kind == "good":
                    source, expected = rng.choice(pairs)
                    status, data = post(json.dumps({"q": source, "source": "en", "target": "de"}).encode())
                    answer = json.loads(data).get("translatedText") if status == 200 else None
                    if status != 200 or answer != expected:
                        with lock:
                            violations.append(f"good request {source!r}: {status} {data[:200]!r}")
                elif kind == "bad":
                    body = rng.choice(bad_requests)
                    status, data = post(body)
                    if status != 400 or "error" not in json.loads(data):
                        with lock:
                            violations.append(f"bad request {body!r}: {status} {data[:200]!r}")
                else:
                    source, _ = rng.choice(pairs)
                    body = json.dumps({"q": [source] * 8, "source": "en", "target": "de"}).encode()
                    s = socket.create_connection((url.hostname, url.port))
                    s.sendall(b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                    time.sleep(rng.uniform(0, 0.05))
                    s.close()
            except Exception as error:  # a refused or reset connection is a violation too
                with lock:
                    violations.append(f"{kind} request: {type(error).__name__}: {error}")
            with lock:
                counts[kind] += 1

    def sample_memory():
        time.sleep(args.seconds / 4)
        warm["rss"] = rss_mib(args.pid)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    sampler = threading.Thread(target=sample_memory)
    sampler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sampler.join()
    end = rss_mib(args.pid)
    flat = end <= warm["rss"] * 1.10 + 32
    if not flat:
        violations.append(f"memory grew after warm-up: {warm['rss']:.0f} MiB at a quarter, {end:.0f} MiB at the end")
    print(json.dumps({"clients": args.clients, "seconds": args.seconds, "requests": counts,
                      "rss_after_warmup_mib": round(warm["rss"]), "rss_end_mib": round(end),
                      "violations": violations[:20], "violation_count": len(violations)}))
    raise SystemExit(1 if violations else 0)


if __name__ == "__main__":
    main()
