"""The storage layer (src/storage) against real servers on 127.0.0.1: moto's S3 in server
mode, which recomputes SigV4 signatures with botocore (so it checks our signer), and a
plain range server behind our fault-injecting proxy (tests/python/storage_servers.py).
The expected bytes are slices of what the test itself uploaded; every failure must be an
OSError that names the URL, the range and the status -- never wrong bytes, never a hang
(every test bounds its retries and timeouts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from cellfeed import _cellfeed
from storage_servers import FaultProxy, RangeServer

read = _cellfeed._read_url_ranges

# Short retry budgets: failures show in seconds, not minutes.
FAST = {"initial_backoff_s": 0.01, "max_backoff_s": 0.2, "max_attempts": 5,
        "max_elapsed_s": 30.0, "connect_timeout_s": 5.0, "request_timeout_s": 20.0,
        "low_speed_time_s": 1.0}


def payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.fixture
def served():
    data = payload(1 << 20)
    server = RangeServer({"/obj.bin": data})
    yield server, data
    server.close()


@pytest.fixture
def proxied(served):
    server, data = served
    proxy = FaultProxy(server.port)
    yield server, proxy, data
    proxy.close()


def random_ranges(n_bytes: int, count: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_bytes, count)
    sizes = rng.integers(0, 40_000, count)
    return [(int(s), int(min(z, n_bytes - s))) for s, z in zip(starts, sizes)]


# --- plain reads ------------------------------------------------------------------------

def test_ranges_read_the_right_bytes(served):
    server, data = served
    ranges = random_ranges(len(data), 200) + [(0, len(data)), (len(data) - 1, 1), (5, 0),
                                               (10, 100), (10, 100), (50, 10)]
    out, info = read(f"{server.url}/obj.bin", ranges, FAST)
    assert info["size"] == len(data)
    assert info["etag"].strip('"') == __import__("hashlib").md5(data).hexdigest()
    for (off, size), got in zip(ranges, out):
        assert got == data[off:off + size], (off, size)


def test_nearby_ranges_share_a_request(served):
    server, data = served
    ranges = [(i * 1000, 100) for i in range(50)]  # holes of 900 bytes
    merged, _ = read(f"{server.url}/obj.bin", ranges, {**FAST, "coalesce_hole": 1000})
    server.requests.clear()
    apart, info = read(f"{server.url}/obj.bin", ranges, {**FAST, "coalesce_hole": 0})
    assert merged == apart == [data[o:o + s] for o, s in ranges]
    gets = [r for r in server.requests if r[0] == "GET"]
    assert len(gets) == 51  # the open, then one request per range
    server.requests.clear()
    read(f"{server.url}/obj.bin", ranges, {**FAST, "coalesce_hole": 1000})
    assert len(server.requests) == 2  # the open, then one merged request


def test_requests_run_concurrently_on_one_thread(proxied):
    server, proxy, data = proxied
    proxy.always = {"delay": 0.2}
    ranges = [(i * 50_000, 1000) for i in range(16)]
    out, info = read(f"{proxy.url}/obj.bin", ranges,
                     {**FAST, "coalesce_hole": 0, "max_in_flight": 8})
    assert out == [data[o:o + s] for o, s in ranges]
    assert server.max_in_flight > 1  # several requests were in flight at once


def test_empty_object_and_out_of_range():
    server = RangeServer({"/empty": b"", "/small": b"abc"})
    try:
        out, info = read(f"{server.url}/empty", [(0, 0)], FAST)
        assert info["size"] == 0 and out == [b""]
        with pytest.raises(IndexError, match="beyond the object's 3 bytes"):
            read(f"{server.url}/small", [(2, 2)], FAST)
    finally:
        server.close()


# --- faults that pass: retried, same bytes ----------------------------------------------

FAULTS = {
    "503": [{"status": 503}],
    "503-retry-after": [{"status": 503, "retry_after": "1"}],
    "429-slowdown": [{"status": 429, "retry_after": "0"}, {"status": 429}],
    "500-502-504": [{"status": 500}, {"status": 502}, {"status": 504}],
    "reset-mid-body": [{"reset": True}],
    "truncated-body": [{"truncate": True}],
    "stalled-body": [{"stall": 4}],
    "200-instead-of-206": [{"whole": True}],
    "latency": [{"delay": 0.3}],
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_transient_faults_are_retried(proxied, name):
    server, proxy, data = proxied
    ranges = [(1000, 5000), (300_000, 200_000)]
    # The first request is the open (bytes=0-0): let it through, then misbehave.
    proxy.faults = [None] + FAULTS[name]
    out, info = read(f"{proxy.url}/obj.bin", ranges, {**FAST, "coalesce_hole": 0})
    assert out == [data[o:o + s] for o, s in ranges]
    if name != "latency":
        assert info["retries"] >= len(FAULTS[name])
    assert not proxy.faults  # every fault was served


def test_faults_on_the_open_are_retried(proxied):
    server, proxy, data = proxied
    proxy.faults = [{"status": 503}, {"reset": True}, {"whole": True}]
    out, info = read(f"{proxy.url}/obj.bin", [(7, 9)], FAST)
    assert out == [data[7:16]] and info["size"] == len(data)


def test_200_for_the_whole_object_is_a_right_answer(proxied):
    server, proxy, data = proxied
    proxy.faults = [None, {"whole": True}]
    out, info = read(f"{proxy.url}/obj.bin", [(0, len(data))], FAST)
    assert out == [data] and info["retries"] == 0


# --- faults that do not pass: a clear error in bounded time ------------------------------

def test_permanent_404_names_url_and_status(served):
    server, _ = served
    url = f"{server.url}/missing.bin"
    t0 = time.monotonic()
    with pytest.raises(OSError) as e:
        read(url, [(0, 1)], FAST)
    msg = str(e.value)
    assert url in msg and "HTTP 404" in msg and "NoSuchKey" in msg and "after 1 attempt" in msg
    assert time.monotonic() - t0 < 10


def test_retries_are_bounded(proxied):
    server, proxy, data = proxied
    proxy.faults = [None]
    proxy.always = None
    url = f"{proxy.url}/obj.bin"
    proxy.faults = [None] + [{"status": 503}] * 10
    with pytest.raises(OSError) as e:
        read(url, [(100, 10)], {**FAST, "max_attempts": 3})
    msg = str(e.value)
    assert url in msg and "bytes 100-109" in msg and "HTTP 503" in msg
    assert "after 3 attempts" in msg


def test_a_long_retry_after_fails_rather_than_waits(proxied):
    server, proxy, data = proxied
    proxy.faults = [None, {"status": 503, "retry_after": "3600"}]
    with pytest.raises(OSError, match="Retry-After"):
        read(f"{proxy.url}/obj.bin", [(0, 10)], FAST)


def test_always_whole_object_is_refused(proxied):
    server, proxy, data = proxied
    proxy.faults = [None]
    proxy.always = None
    proxy.faults = [None] + [{"whole": True}] * 10
    with pytest.raises(OSError, match=r"answered 200 \(the whole object\) to a Range request"):
        read(f"{proxy.url}/obj.bin", [(10, 10)], FAST)


@pytest.mark.parametrize("honour_if_match", [True, False])
def test_object_changed_mid_read(honour_if_match):
    data = payload(100_000)
    server = RangeServer({"/obj.bin": data}, honour_if_match=honour_if_match)
    proxy = FaultProxy(server.port)

    def change():
        server.objects["/obj.bin"] = payload(100_000, seed=9)

    proxy.faults = [None, {"before": change}]
    try:
        with pytest.raises(OSError) as e:
            read(f"{proxy.url}/obj.bin", [(0, 10)], FAST)
        msg = str(e.value)
        assert "changed since it was opened" in msg and f"{proxy.url}/obj.bin" in msg
    finally:
        proxy.close()
        server.close()


def test_refused_connection_is_an_error_not_a_hang():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(OSError, match=f"127.0.0.1:{port}/x"):
        read(f"http://127.0.0.1:{port}/x", [(0, 1)], {**FAST, "max_attempts": 2})


def test_query_string_never_in_messages(served):
    server, _ = served
    url = f"{server.url}/missing.bin?X-Amz-Signature=topsecretsig&X-Amz-Credential=AKID"
    with pytest.raises(OSError) as e:
        read(url, [(0, 1)], FAST)
    assert "topsecretsig" not in str(e.value) and f"{server.url}/missing.bin" in str(e.value)


def test_unknown_option_is_refused(served):
    server, _ = served
    with pytest.raises(ValueError, match="unknown storage option 'max_inflight'"):
        read(f"{server.url}/obj.bin", [(0, 1)], {"max_inflight": 3})


# --- S3 (moto in server mode, signatures checked) ---------------------------------------

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_s3():
    """moto with authentication on after its first 4 actions (the IAM user, its key, its
    policy, the bucket): every later request must carry a valid SigV4 signature."""
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start")
                time.sleep(0.1)
        admin = {"aws_access_key_id": "admin", "aws_secret_access_key": "admin",
                 "region_name": "us-east-1", "endpoint_url": endpoint}
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        iam.put_user_policy(UserName="reader", PolicyName="all",
                            PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":'
                                           '"Allow","Action":"*","Resource":"*"}]}')
        boto3.client("s3", **admin).create_bucket(Bucket="cells")
        s3 = boto3.client("s3", aws_access_key_id=key["AccessKeyId"],
                          aws_secret_access_key=key["SecretAccessKey"],
                          region_name="us-east-1", endpoint_url=endpoint)
        data = payload(300_000, seed=3)
        s3.put_object(Bucket="cells", Key="dir/x y.h5ad", Body=data)
        yield {"endpoint": endpoint, "key": key["AccessKeyId"],
               "secret": key["SecretAccessKey"], "data": data, "port": port}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


S3_RANGES = [(0, 10), (150_000, 20_000), (299_990, 10), (5, 70_000)]


def test_s3_signed_ranges_from_environment(moto_s3, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_s3["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_s3["secret"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3["endpoint"])
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    out, info = read("s3://cells/dir/x y.h5ad", S3_RANGES, FAST)
    data = moto_s3["data"]
    assert out == [data[o:o + s] for o, s in S3_RANGES]
    assert info["size"] == len(data)


def test_s3_profile_from_shared_files(moto_s3, monkeypatch, tmp_path):
    (tmp_path / "credentials").write_text(
        f"[other]\naws_access_key_id = {moto_s3['key']}\n"
        f"aws_secret_access_key = {moto_s3['secret']}\n")
    (tmp_path / "config").write_text(
        f"[profile other]\nregion = us-east-1\nendpoint_url = {moto_s3['endpoint']}\n")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_PROFILE", "other")
    out, _ = read("s3://cells/dir/x y.h5ad", [(1, 2)], FAST)
    assert out == [moto_s3["data"][1:3]]


def test_s3_wrong_secret_is_a_clear_403(moto_s3):
    opts = {**FAST, "endpoint_url": moto_s3["endpoint"], "access_key_id": moto_s3["key"],
            "secret_access_key": "not-the-secret-XYZ"}
    with pytest.raises(OSError) as e:
        read("s3://cells/dir/x y.h5ad", [(0, 1)], opts)
    msg = str(e.value)
    assert "s3://cells/dir/x y.h5ad" in msg and "HTTP 403" in msg
    assert "SignatureDoesNotMatch" in msg and "after 1 attempt" in msg
    assert "not-the-secret-XYZ" not in msg and moto_s3["secret"] not in msg


def test_s3_unsigned_request_is_refused_and_says_why(moto_s3, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(OSError, match="HTTP 403.*no AWS credentials were found"):
        read("s3://cells/dir/x y.h5ad", [(0, 1)],
             {**FAST, "endpoint_url": moto_s3["endpoint"]})


def test_s3_missing_key_is_404(moto_s3):
    opts = {**FAST, "endpoint_url": moto_s3["endpoint"], "access_key_id": moto_s3["key"],
            "secret_access_key": moto_s3["secret"]}
    with pytest.raises(OSError, match=r"s3://cells/nope: opening \(bytes 0-0\): HTTP 404"):
        read("s3://cells/nope", [(0, 1)], opts)


def test_s3_slowdown_through_proxy_is_resigned_and_retried(moto_s3):
    proxy = FaultProxy(moto_s3["port"])
    proxy.faults = [None, {"status": 503, "retry_after": "1"}, {"reset": True}]
    try:
        opts = {**FAST, "endpoint_url": proxy.url, "access_key_id": moto_s3["key"],
                "secret_access_key": moto_s3["secret"], "coalesce_hole": 0}
        out, info = read("s3://cells/dir/x y.h5ad", S3_RANGES, opts)
        assert out == [moto_s3["data"][o:o + s] for o, s in S3_RANGES]
        assert info["retries"] >= 2
    finally:
        proxy.close()
