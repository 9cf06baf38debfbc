"""The judge's two sides against hostile clients on its socket, with real processes.

One judge server (the trusted side, as the worker runs it) is started in a process of its own,
with its sandboxed side behind it under the grading sandbox; a test client then speaks to its
socket as student code could: an over-long line, garbage, a slow-loris, an .npy header of 100 KB,
an array that claims 10^12 elements, thousands of requests, and a .keras file whose config asks for
Dense(1_000_000). At the end the server reports its own peak memory, which must stay within
300 MB of where it started.
"""
from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from conftest import ROOT, needs_root
from convae.bounded import MAX_REQUEST_BYTES, Refused, decode, model_problems_before_building
from convae.grading.corpus import OVERSIZED_KERAS
from convae.judge import encode

REQUEST_TIMEOUT = 3
JUDGE_UID = 71999  # what the worker would give the judge of the kernel uid 61999

SERVER = """
import json, sys
from pathlib import Path
from convae.grading.judge_server import JudgeServer
from convae.grading.worker import peak_resident_bytes, resident_bytes
args = json.loads(sys.argv[1])
start = resident_bytes()
with JudgeServer(Path(args["socket"]), root=Path(args["root"]), record=Path(args["record"]),
                 judge_policy=Path(args["policy"]), request_timeout=args["request_timeout"]) as server:
    print("ready", flush=True)
    for command in sys.stdin:
        if command.strip() == "sandbox":
            pid = server.sandbox.proc.pid if server.sandbox.proc else None
            print(json.dumps({"pid": pid, "starts": server.sandbox.starts}), flush=True)
        else:
            break
print(json.dumps({"start": start, "peak": peak_resident_bytes()}), flush=True)
"""


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory):
    from convae.grading.judge_sandbox import write_policy
    from convae.grading.run import LIMITS
    from convae.grading.sandbox import capabilities
    from convae.grading.worker import sandbox_kernelspec

    work = tmp_path_factory.mktemp("judge")
    os.chmod(work, 0o711)
    home, judge_dir = work / "home", work / "judge"
    home.mkdir()
    judge_dir.mkdir(mode=0o711)
    caps = capabilities()
    job = {"course_root": str(ROOT), "limits": LIMITS, "uid": JUDGE_UID - 10_000}
    sandbox_kernelspec(job, work, home, judge_dir, caps)
    policy = write_policy(work / "policy.json", work / "judge-home", JUDGE_UID)
    args = {"socket": str(judge_dir / "sock"), "root": str(ROOT), "record": str(work / "verdicts.jsonl"),
            "policy": str(policy), "request_timeout": REQUEST_TIMEOUT}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, CONVAE_FAST="1"))
    assert proc.stdout.readline().strip() == "ready"
    server = {"proc": proc, "socket": str(judge_dir / "sock"), "record": work / "verdicts.jsonl",
              "policy": policy, "caps": caps}
    yield server
    if proc.poll() is None:
        proc.kill()


def connect(server, timeout=120) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(server["socket"])
    return sock


def read_line(sock) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return json.loads(data) if data else {}


def exchange(server, request: dict, answer) -> dict:
    """One judgement: ``answer(cases) -> bytes`` is the results line the client sends."""
    with connect(server) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        first = read_line(sock)
        if "cases" not in first:
            return first
        cases = [[decode(a) for a in args] for args in first["cases"]]
        sock.sendall(answer(cases))
        return read_line(sock)


def results(*items) -> bytes:
    return json.dumps({"results": list(items)}).encode() + b"\n"


def normalised(cases) -> bytes:
    return results(*[{"value": encode(np.asarray(x) / np.float32(255))} for (x,) in cases])


def npy_with_header(shape, descr="<f8", pad=0, data=b"\0" * 8) -> str:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}) + " " * pad
    header = header.ljust((len(header) + 11) // 64 * 64 + 53) + "\n"
    raw = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header.encode() + data
    return base64.b64encode(raw).decode()


def test_an_honest_answer_passes_through_both_sides(judge_server):
    verdict = exchange(judge_server, {"chapter": "01-pixels", "exercise": "normalise"}, normalised)
    assert verdict == {"ok": True, "message": "normalise: 3 hidden cases passed."}


@needs_root  # a separate user id; under CI=true a missing one fails instead of skipping
def test_the_sandboxed_side_runs_under_its_own_user_id_and_sees_no_solutions(judge_server):
    judge_server["proc"].stdin.write("sandbox\n")
    judge_server["proc"].stdin.flush()
    pid = json.loads(judge_server["proc"].stdout.readline())["pid"]
    process = psutil.Process(pid)
    assert process.uids().real == JUDGE_UID and process.uids().effective == JUDGE_UID
    policy = json.loads(Path(judge_server["policy"]).read_text())
    assert str(ROOT / "solutions") in policy["hide"] and str(ROOT / "grading") in policy["hide"]
    assert policy["caps"]["network_namespace"] and policy["caps"]["mount_namespace"]
    # what that process sees where the solutions are: an empty folder
    assert os.listdir(f"/proc/{pid}/root{ROOT}/solutions") == []


def test_an_over_long_line_is_refused_without_being_held(judge_server):
    with connect(judge_server) as sock:
        sock.sendall(b"x" * (MAX_REQUEST_BYTES * 4))
        answer = read_line(sock)
    assert "longer than 4 KB" in answer["error"], answer


def test_garbage_is_refused_in_words(judge_server):
    with connect(judge_server) as sock:
        sock.sendall(b"\x00\xff\xfe garbage\n")
        assert read_line(sock) == {"error": "the hidden check's judge could not read the request "
                                            "(the request was not JSON)."}
    verdict = exchange(judge_server, {"chapter": "01-pixels", "exercise": "normalise"},
                       lambda cases: b"\x00\xff{{{ not json\n")
    assert verdict["ok"] is False and "no usable answer" in verdict["message"], verdict


def test_a_huge_npy_header_and_a_fake_huge_array_are_refused_before_allocation(judge_server):
    verdict = exchange(judge_server, {"chapter": "01-pixels", "exercise": "normalise"},
                       lambda cases: results(*[{"value": npy_with_header((1,), pad=100_000)} for _ in cases]))
    assert verdict["ok"] is False and "not a valid .npy array" in verdict["message"], verdict
    verdict = exchange(judge_server, {"chapter": "01-pixels", "exercise": "normalise"},
                       lambda cases: results(*[{"value": npy_with_header((10**6, 10**6))} for _ in cases]))
    assert verdict["ok"] is False, verdict
    assert "an array of shape (1000000, 1000000) (float64, 8,000,000,000,000 bytes); the grader accepts " \
           "at most 8 MB per array" in verdict["message"], verdict


def test_bounded_decoding_refuses_lies_and_objects_here_too():
    with pytest.raises(Refused, match="carries 8 bytes of data instead of 80"):
        decode(npy_with_header((10,)))
    with pytest.raises(Refused, match="dtype object"):
        decode(npy_with_header((1,), descr="|O"))
    assert decode(encode(np.arange(3))).tolist() == [0, 1, 2]
    assert decode(encode("min")) == "min", "cases carry text too (best_epoch's mode)"


def test_a_slow_loris_is_dropped_and_others_are_judged_meanwhile(judge_server):
    slow = connect(judge_server)  # sends nothing
    started = time.monotonic()
    verdict = exchange(judge_server, {"chapter": "01-pixels", "exercise": "normalise"}, normalised)
    assert verdict["ok"] is True, verdict
    assert slow.recv(4096).startswith(b'{"error"'), "the silent client was answered and dropped"
    assert REQUEST_TIMEOUT - 0.5 < time.monotonic() - started < REQUEST_TIMEOUT + 10
    slow.close()


def corpus_function(name: str):
    """A function of the corpus's model-editing code (notebook source), defined here."""
    namespace: dict = {}
    exec(OVERSIZED_KERAS, namespace)
    return namespace[name]


def oversized_model() -> bytes:
    return corpus_function("oversized_keras_bytes")()


def test_a_model_that_asks_for_dense_1_000_000_is_refused_in_words(judge_server):
    data = oversized_model()
    assert len(data) < 50_000
    assert "785,000,000 parameters" in model_problems_before_building(data, 7_000_000)
    verdict = exchange(judge_server, {"chapter": "04-mlp-vs-cnn", "exercise": "build_mlp"},
                       lambda cases: results({"model": base64.b64encode(data).decode()}))
    assert verdict == {"ok": False, "message": (
        "build_mlp() returned a model that the grader will not build: its config asks for 785,000,000 "
        "parameters; the grader builds models of at most 7,000,000 parameters for this exercise (the budget "
        "is in the exercise's text).")}


def test_a_model_it_cannot_count_meets_the_memory_limit_and_gets_a_sentence(judge_server):
    """An LSTM is a layer the count does not know: the sandboxed side builds it under its address-space
    limit, which an LSTM(50_000) (10^10 parameters, 40 GB) exceeds; the student reads a sentence,
    and the next judgement works (on a fresh process if that one died)."""
    import keras

    small = keras.Sequential([keras.Input((5, 8)), keras.layers.LSTM(4), keras.layers.Dense(10)])
    data = corpus_function("with_units")(small, 1, 50_000)
    verdict = exchange(judge_server, {"chapter": "04-mlp-vs-cnn", "exercise": "build_mlp"},
                       lambda cases: results({"model": base64.b64encode(data).decode()}))
    assert verdict["ok"] is False and ("could not be built within 6 GB" in verdict["message"]
                                       or "could not be judged within 6 GB" in verdict["message"]), verdict
    assert exchange(judge_server, {"chapter": "01-pixels", "exercise": "normalise"}, normalised)["ok"] is True


def test_a_zip_bomb_and_foreign_members_are_refused():
    buf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", b" " * (64 * 2**20))  # 64 MB of spaces, 64 KB compressed
    assert model_problems_before_building(buf.getvalue(), 10**6) == "the model file's config.json is larger than 1 MB"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("evil.py", "import os")
    assert "holds config.json, evil.py" in model_problems_before_building(buf.getvalue(), 10**6)


def test_a_dead_sandboxed_side_is_restarted(judge_server):
    judge_server["proc"].stdin.write("sandbox\n")
    judge_server["proc"].stdin.flush()
    before = json.loads(judge_server["proc"].stdout.readline())
    psutil.Process(before["pid"]).kill()
    verdict = exchange(judge_server, {"chapter": "01-pixels", "exercise": "normalise"}, normalised)
    assert verdict["ok"] is True, verdict
    judge_server["proc"].stdin.write("sandbox\n")
    judge_server["proc"].stdin.flush()
    after = json.loads(judge_server["proc"].stdout.readline())
    assert after["pid"] != before["pid"] and after["starts"] == before["starts"] + 1


def test_thousands_of_requests_are_capped_and_logged(judge_server):
    answers = []

    def flood(n):
        for _ in range(n):
            try:
                with connect(judge_server, timeout=30) as sock:
                    sock.sendall(b'{"chapter": "01-pixels", "exercise": "invert"}\n')
                    answers.append(read_line(sock))
            except OSError:
                answers.append({"closed": True})

    threads = [threading.Thread(target=flood, args=(500,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with_cases = sum("cases" in a for a in answers)
    assert len(answers) == 2000 and with_cases == 10, with_cases
    assert sum("more than 10 times" in a.get("error", "") for a in answers) > 0


def test_the_trusted_side_stays_small_and_writes_what_it_refused(judge_server):
    """Last: stops the server. Its peak resident memory over every test above, against its start."""
    proc = judge_server["proc"]
    proc.stdin.write("stop\n")
    proc.stdin.flush()
    figures = json.loads(proc.stdout.readline())
    proc.wait(timeout=60)
    growth = (figures["peak"] - figures["start"]) / 2**20
    print(f"trusted judge: started at {figures['start'] / 2**20:.0f} MB, peak {figures['peak'] / 2**20:.0f} MB, "
          f"growth {growth:.0f} MB")
    assert growth < 300, growth
    logs = [json.loads(line).get("log") for line in judge_server["record"].read_text().splitlines()]
    refused = [line for line in logs if line and "requests for invert refused after the first 10" in line]
    assert len(refused) == 1, logs
    assert any(line and line.startswith("judge: ") and "connections broke the protocol" in line for line in logs)
    assert any(line and "model refused before it was built" in line for line in logs)
