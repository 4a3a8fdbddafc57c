#!/usr/bin/env python3
"""Bounded loopback load test of `rocmforge serve` (stdlib only).

Starts the server on a free loopback port over a synth model, then measures streaming chat completions:
one client alone, then N concurrent clients. Reports aggregate generated tokens/s, p50/p99 time to first token,
failures, and leak checks (no running/queued sequences, no KV blocks held, RSS growth) after the load.

  bench/load_test.py --rocmforge build/bin/rocmforge [--model m.gguf] [--clients 32] [--requests 2]
                     [--max-tokens 64] [--prompt-words 45 | --prompt-tokens 60] [--parallel 32] [--threads 0]
                     [--server-args="--no-batch-invariant ..."] [--json out.json]
(--server-args takes its value after "=" when it starts with "--".)

Without --model, a synth model (llama shape, n_embd 512, 4 layers, Q4_0) is written to a temp dir first.
Everything is bounded: a fixed number of requests, per-request timeouts, and the server is always stopped.
"""
import argparse
import http.client
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time


def start_server(args, model):
    log = tempfile.NamedTemporaryFile(prefix="rf_load_", suffix=".log", delete=False)
    cmd = [args.rocmforge, "serve", "-m", model, "--port", "0", "--alias", "synth", "--parallel", str(args.parallel),
           "--ctx-size", "1024", "--queue", "1024"]
    if args.threads:
        cmd += ["-t", str(args.threads)]
    cmd += shlex.split(args.server_args)
    proc = subprocess.Popen(cmd, stderr=log, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    port = None
    while time.time() < deadline and port is None:
        time.sleep(0.1)
        text = open(log.name).read()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
        if m and "ready" in text:
            port = int(m.group(1))
        if proc.poll() is not None:
            break
    if port is None:
        proc.kill()
        sys.exit("server did not start:\n" + open(log.name).read())
    return proc, port, log.name


def rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def one_request(port, prompt, max_tokens, seed):
    """Streams one completion; returns (ttft_s, tokens, total_s, prompt_tokens) or raises. A string prompt goes to
    /v1/chat/completions as the user message, a list of token ids to /v1/completions as is."""
    req = {"model": "synth", "max_tokens": max_tokens, "temperature": 0.8, "seed": seed, "stream": True,
           "stream_options": {"include_usage": True}}
    if isinstance(prompt, list):
        path, req["prompt"] = "/v1/completions", prompt
    else:
        path, req["messages"] = "/v1/chat/completions", [{"role": "user", "content": prompt}]
    body = json.dumps(req)
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"status {resp.status}: {resp.read()[:200]!r}")
    ttft = None
    tokens = None
    prompt_tokens = None
    buf = b""
    done = False
    while not done:
        chunk = resp.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            if not event.startswith(b"data: "):
                raise RuntimeError("bad SSE framing: " + event[:80].decode(errors="replace"))
            payload = event[6:]
            if payload == b"[DONE]":
                done = True
                break
            j = json.loads(payload)
            if j.get("usage"):
                tokens = j["usage"]["completion_tokens"]
                prompt_tokens = j["usage"]["prompt_tokens"]
            for c in j.get("choices", []):
                if (c.get("delta", {}).get("content") or c.get("text")) and ttft is None:
                    ttft = time.perf_counter() - t0
    conn.close()
    if not done or tokens is None:
        raise RuntimeError("stream ended without [DONE] or usage")
    return (ttft if ttft is not None else time.perf_counter() - t0), tokens, time.perf_counter() - t0, prompt_tokens


def make_prompt(cid, r, prompt_words, prompt_tokens):
    """Client cid's request r: prompt_tokens > 0 gives that many token ids (distinct per request), else words."""
    if prompt_tokens > 0:
        return [3 + (cid * 7919 + r * 104729 + k * 31) % 1000 for k in range(prompt_tokens)]
    return " ".join(f"w{(cid * 131 + r * 17 + k) % 97}" for k in range(prompt_words))


def run_phase(port, clients, requests, max_tokens, prompt_words, prompt_tokens=0):
    results, failures = [], []
    lock = threading.Lock()

    def worker(cid):
        for r in range(requests):
            prompt = make_prompt(cid, r, prompt_words, prompt_tokens)
            try:
                res = one_request(port, prompt, max_tokens, cid * 1000 + r)
                with lock:
                    results.append(res)
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                with lock:
                    failures.append(str(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    wall = time.perf_counter() - t0
    tokens = sum(r[1] for r in results)
    ttfts = sorted(r[0] for r in results)

    def pct(p):
        return ttfts[min(len(ttfts) - 1, int(p / 100 * len(ttfts)))] if ttfts else float("nan")

    return {"clients": clients, "requests": len(results) + len(failures), "failures": len(failures),
            "failure_samples": failures[:3], "generated_tokens": tokens, "wall_s": round(wall, 3),
            "tokens_per_s": round(tokens / wall, 1) if wall > 0 else 0.0,
            "ttft_p50_s": round(pct(50), 4), "ttft_p99_s": round(pct(99), 4),
            "prompt_tokens_mean": round(sum(r[3] for r in results) / len(results), 1) if results else None}


def metrics(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    out = {}
    for key, pat in [("running", r"^rocmforge_running_sequences (\S+)"), ("queued", r"^rocmforge_queue_length (\S+)"),
                     ("kv_used", r'^rocmforge_kv_cache_blocks\{state="used"\} (\S+)'),
                     ("preemptions", r"^rocmforge_preemptions_total (\S+)"),
                     ("steps", r"^rocmforge_engine_steps_total (\S+)"),
                     ("schedule_s", r'^rocmforge_engine_step_seconds_total\{phase="schedule"\} (\S+)'),
                     ("forward_s", r'^rocmforge_engine_step_seconds_total\{phase="forward"\} (\S+)'),
                     ("after_s", r'^rocmforge_engine_step_seconds_total\{phase="after"\} (\S+)')]:
        m = re.search(pat, text, re.M)
        out[key] = float(m.group(1)) if m else None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rocmforge", default="build/bin/rocmforge")
    ap.add_argument("--model")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=2, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=45, help="prompt size (about 60 tokens with the template)")
    ap.add_argument("--parallel", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--server-args", default="", help="extra arguments for rocmforge serve (one string)")
    ap.add_argument("--prompt-tokens", type=int, default=0,
                    help="prompts of exactly this many token ids through /v1/completions (default: chat prompts of "
                         "--prompt-words words, whose token count depends on the model's tokenizer)")
    args = ap.parse_args()

    tmpdir = tempfile.mkdtemp(prefix="rf_load_")
    model = args.model
    if not model:
        model = os.path.join(tmpdir, "synth.gguf")
        subprocess.run([args.rocmforge, "synth", "--n-embd", "512", "--n-ff", "1408", "--n-layer", "4", "--n-head", "8",
                        "--n-vocab", "2048", "--type", "Q4_0", "-o", model], check=True, stdout=subprocess.DEVNULL)
    proc, port, log = start_server(args, model)
    try:
        run_phase(port, 1, 1, 8, args.prompt_words, args.prompt_tokens)  # warm-up
        rss_before = rss_kib(proc.pid)
        single = run_phase(port, 1, args.requests, args.max_tokens, args.prompt_words, args.prompt_tokens)
        multi = run_phase(port, args.clients, args.requests, args.max_tokens, args.prompt_words, args.prompt_tokens)
        time.sleep(0.5)
        after = metrics(port)
        rss_after = rss_kib(proc.pid)
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "model": model, "max_tokens": args.max_tokens,
              "single_client": single, "concurrent": multi,
              "speedup": round(multi["tokens_per_s"] / single["tokens_per_s"], 2) if single["tokens_per_s"] else None,
              "after_load": after, "rss_kib_before": rss_before, "rss_kib_after": rss_after,
              "server_exit_code": exit_code}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    leaked = after["running"] != 0 or after["queued"] != 0 or after["kv_used"] != 0
    failed = single["failures"] + multi["failures"]
    if leaked or failed or exit_code != 0:
        sys.exit(f"FAILED: failures={failed} leaked={leaked} exit={exit_code} (server log: {log})")
    os.unlink(log)


if __name__ == "__main__":
    main()
