#!/usr/bin/env python3
"""Does greedy text depend on load? (stdlib only; reuses load_test.py's server start and streaming client)

Starts `rocmforge serve` on a loopback port, sends a few temperature-0 probe prompts one at a time (alone), then
the same probes again while `--noise` other clients stream sampled completions, and compares the texts. Prints a
JSON summary; exits 1 when any probe's text differs.

  bench/load_independence.py --rocmforge build/bin/rocmforge --model m.gguf [--noise 31] [--max-tokens 64]
                             [--server-args "..."]
"""
import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_test import make_prompt, one_request, start_server  # noqa: E402

PROBE_LENGTHS = (7, 60, 150, 300)


def greedy(port, tokens, max_tokens):
    body = json.dumps({"model": "synth", "prompt": tokens, "max_tokens": max_tokens, "temperature": 0})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"status {resp.status}: {data[:200]!r}")
    return json.loads(data)["choices"][0]["text"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rocmforge", default="build/bin/rocmforge")
    ap.add_argument("--model")
    ap.add_argument("--noise", type=int, default=31, help="concurrent sampled streams while the probes run again")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--parallel", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--server-args", default="")
    args = ap.parse_args()
    model = args.model
    if not model:
        model = os.path.join(tempfile.mkdtemp(prefix="rf_indep_"), "synth.gguf")
        subprocess.run([args.rocmforge, "synth", "--n-embd", "512", "--n-ff", "1408", "--n-layer", "4", "--n-head", "8",
                        "--n-vocab", "2048", "--type", "Q4_0", "-o", model], check=True, stdout=subprocess.DEVNULL)
    probes = [[5 + (i * 37 + k * 13) % 900 for k in range(n)] for i, n in enumerate(PROBE_LENGTHS)]
    proc, port, log = start_server(args, model)
    try:
        alone = [greedy(port, p, args.max_tokens) for p in probes]
        loaded = [None] * len(probes)
        errors = []

        def noise(cid):
            try:
                one_request(port, make_prompt(cid, 0, 0, 40 + cid % 50), args.max_tokens + cid % 17, cid)
            except Exception as e:  # noqa: BLE001 - reported
                errors.append(str(e))

        def probe(i):
            try:
                loaded[i] = greedy(port, probes[i], args.max_tokens)
            except Exception as e:  # noqa: BLE001 - reported
                errors.append(str(e))

        threads = [threading.Thread(target=noise, args=(c,)) for c in range(args.noise)]
        for t in threads:
            t.start()
        time.sleep(0.05)  # the probes join a server that is already busy
        probe_threads = [threading.Thread(target=probe, args=(i,)) for i in range(len(probes))]
        for t in probe_threads:
            t.start()
        for t in threads + probe_threads:
            t.join(timeout=600)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    same = [a == b for a, b in zip(alone, loaded)]
    print(json.dumps({"server_args": args.server_args, "noise_clients": args.noise, "probe_prompt_tokens": PROBE_LENGTHS,
                      "identical": same, "errors": errors[:3],
                      "samples": [{"alone": a[:60], "loaded": (b or "")[:60]} for a, b in zip(alone, loaded)]},
                     indent=2))
    os.unlink(log)
    if errors or not all(same):
        sys.exit(1)


if __name__ == "__main__":
    main()
