"""Background jobs: the queue on a real database (SQLite file; PostgreSQL where it runs), real
worker threads, and the /v1/jobs API over real HTTP against a real anvil deployment.

The handlers here are small stand-ins for training and benchmarks: they report progress,
check for cancellation, fail in the ways real code fails, and return results.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from conftest import cli_environment, deployed_settings, free_port, serve, wait_for

from loraledger.api import create_app
from loraledger.db import make_engine, session_scope
from loraledger.errors import InputError, NotFoundError
from loraledger.jobs.queue import INTERRUPTED, JobContext, JobKind, JobQueue, JobWorker, job_to_dict
from loraledger.jobs.tables import JobRow
from loraledger.node.context import create_tables, open_node

# ------------------------------------------------------------------------- test kinds


def validate_add(params: dict) -> dict:
    if "a" not in params:
        raise InputError("a is required")
    a = params["a"]
    if isinstance(a, bool) or not isinstance(a, int):
        raise InputError(f"a must be an integer, got {type(a).__name__}")
    return {"a": a, "b": int(params.get("b", 1))}  # int("x") raises ValueError: bad input too


def run_add(params: dict, ctx: JobContext) -> dict:
    for step in range(3):
        ctx.check_cancelled()
        ctx.report({"step": step + 1, "of": 3})
    return {"sum": params["a"] + params["b"]}


def any_params(params: dict) -> dict:
    return params


class Probe:
    """A handler that signals when it starts and loops, checking for cancellation, until
    released; counts its runs."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.runs = 0

    def __call__(self, params: dict, ctx: JobContext) -> dict:
        self.runs += 1
        self.started.set()
        while not self.release.is_set():
            ctx.check_cancelled()
            time.sleep(0.01)
        return {"released": True}


def raising(exc: BaseException):
    def run(params: dict, ctx: JobContext) -> dict:
        raise exc

    return run


def kinds(probe: Probe | None = None) -> list[JobKind]:
    found = [
        JobKind("add", run_add, validate_add),
        JobKind("boom", raising(ValueError("bad value 42")), any_params),
        JobKind("refuse", raising(InputError("no GPU on this node")), any_params),
        JobKind("nonjson", lambda params, ctx: {"when": object()}, any_params),
        JobKind("interrupt", raising(KeyboardInterrupt()), any_params),
    ]
    if probe is not None:
        found.append(JobKind("probe", probe, any_params))
    return found


# ------------------------------------------------------------------------- fixtures


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def queue(engine, probe) -> JobQueue:
    return JobQueue(engine, kinds(probe))


@pytest.fixture
def worker(queue, probe):
    # A long tick: a job that starts quickly was started by submit's wake-up, not by polling.
    started = JobWorker(queue, tick=30.0)
    started.start()
    yield started
    probe.release.set()
    started.stop(timeout=10)
    assert not started.is_alive()


# ------------------------------------------------------------------------- queue


def test_submit_get_and_list(queue):
    first = queue.submit("add", {"a": 2})
    second = queue.submit("boom", {"x": [1, "ü"]})
    third = queue.submit("add", {"a": 5, "b": "7"})
    assert (first.id, second.id, third.id) == (first.id, first.id + 1, first.id + 2)
    shown = job_to_dict(queue.get(first.id))
    assert shown["kind"] == "add" and shown["status"] == "queued"
    assert shown["params"] == {"a": 2, "b": 1}  # normalised by validate
    assert shown["startedAt"] is None and shown["result"] is None and shown["cancelRequested"] is False
    assert abs(shown["createdAt"] - time.time()) < 60
    assert json.loads(queue.get(third.id).params) == {"a": 5, "b": 7}
    assert queue.get(second.id).params == '{"x":[1,"\\u00fc"]}'  # canonical, ASCII-safe JSON

    assert [j.id for j in queue.list()] == [third.id, second.id, first.id]  # newest first
    assert [j.id for j in queue.list(kind="add")] == [third.id, first.id]
    assert [j.id for j in queue.list(status="queued", limit=1)] == [third.id]
    assert queue.list(status="done") == []
    with pytest.raises(InputError, match="unknown job status 'finished'; use one of queued, running"):
        queue.list(status="finished")
    with pytest.raises(InputError, match="limit"):
        queue.list(limit=0)
    with pytest.raises(NotFoundError, match="job 999 not found"):
        queue.get(999)


def test_submit_refuses_bad_kinds_and_params(queue):
    with pytest.raises(InputError, match=r"unknown job kind 'no-such-kind'; known kinds: add, boom, interrupt, nonjson"):
        queue.submit("no-such-kind", {})
    with pytest.raises(InputError, match="a is required"):
        queue.submit("add", {})
    with pytest.raises(InputError, match="a must be an integer, got str"):
        queue.submit("add", {"a": "1"})
    with pytest.raises(InputError, match=r"invalid params for a add job: ValueError: invalid literal"):
        queue.submit("add", {"a": 1, "b": "x"})  # validate's own ValueError is the client's input, not a 500
    with pytest.raises(InputError, match="params must be a JSON object, got list"):
        queue.submit("add", [1])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="must be JSON"):
        queue.submit("boom", {"x": math.nan})
    with pytest.raises(InputError, match="must be JSON"):
        queue.submit("boom", {"x": {1, 2}})
    with pytest.raises(InputError, match="no job kinds|none are registered"):
        JobQueue(queue.engine).submit("add", {"a": 1})
    with pytest.raises(InputError, match="already registered"):
        queue.register(JobKind("add", run_add, validate_add))
    assert queue.list() == []  # nothing refused was queued


def test_worker_runs_a_job_to_done_with_result_and_progress(queue, worker):
    submitted = time.monotonic()
    job = queue.submit("add", {"a": 40, "b": 2})
    done = wait_for(lambda: (row := queue.get(job.id)).status == "done" and row, what="job done")
    assert time.monotonic() - submitted < 3  # woken by submit, not by the 30 s tick
    shown = job_to_dict(done)
    assert shown["result"] == {"sum": 42}
    assert shown["progress"] == {"step": 3, "of": 3}  # the last report, though throttled
    assert shown["error"] is None
    assert shown["createdAt"] <= shown["startedAt"] <= shown["finishedAt"]


def test_jobs_run_one_at_a_time_in_submission_order(queue, worker, probe):
    first = queue.submit("probe", {})
    second = queue.submit("add", {"a": 1})
    probe.started.wait(5)
    time.sleep(0.2)
    assert queue.get(second.id).status == "queued"  # waits for the machine
    probe.release.set()
    wait_for(lambda: queue.get(second.id).status == "done", what="second job")
    assert queue.get(first.id).status == "done" and queue.get(first.id).finished_at <= queue.get(second.id).started_at


def test_handler_raising_value_error_fails_with_type_and_message(queue, caplog):
    job = queue.submit("boom", {})
    with caplog.at_level(logging.ERROR, logger="loraledger.jobs"):
        row = queue.run_one()
    assert row is not None and row.id == job.id
    assert row.status == "failed" and row.error == "ValueError: bad value 42"
    assert row.finished_at is not None and row.result is None
    assert any(r.exc_info and "bad value 42" in r.getMessage() + str(r.exc_info[1]) for r in caplog.records)


def test_handler_raising_input_error_fails_with_its_message(queue):
    job = queue.submit("refuse", {})
    row = queue.run_one()
    assert row.id == job.id and row.status == "failed" and row.error == "no GPU on this node"


def test_result_that_is_not_json_fails_the_job(queue):
    job = queue.submit("nonjson", {})
    row = queue.run_one()
    assert row.id == job.id and row.status == "failed"
    assert "result is not JSON-serialisable" in row.error and "object" in row.error


def test_keyboard_interrupt_marks_the_job_failed_and_propagates(queue):
    job = queue.submit("interrupt", {})
    with pytest.raises(KeyboardInterrupt):
        queue.run_one()
    row = queue.get(job.id)
    assert row.status == "failed" and row.error == f"{INTERRUPTED} (KeyboardInterrupt)"


def test_cancel_a_queued_job_and_it_never_runs(queue, probe):
    job = queue.submit("probe", {})
    cancelled = queue.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert queue.run_one() is None  # nothing queued any more
    assert probe.runs == 0
    with pytest.raises(InputError, match=f"job {job.id} already cancelled"):
        queue.cancel(job.id)


def test_cancel_a_running_job_stops_it_within_a_second(queue, worker, probe):
    job = queue.submit("probe", {"n": 1})
    assert probe.started.wait(5)
    asked = time.monotonic()
    row = queue.cancel(job.id)
    assert row.status == "running" and row.cancel_requested
    final = wait_for(lambda: (r := queue.get(job.id)).status != "running" and r, timeout=1.0, what="cancel")
    assert time.monotonic() - asked < 1.0
    assert final.status == "cancelled" and final.error is None and final.cancel_requested
    with pytest.raises(InputError, match=f"job {job.id} already cancelled"):
        queue.cancel(job.id)


def test_cancel_from_another_process_reaches_the_handler_through_the_database(queue, worker, probe, engine):
    job = queue.submit("probe", {})
    assert probe.started.wait(5)
    other = JobQueue(engine)  # e.g. the CLI: same database, none of this process's flags
    asked = time.monotonic()
    assert other.cancel(job.id).cancel_requested
    assert other.cancel(job.id).status == "running"  # asking twice is harmless
    wait_for(lambda: queue.get(job.id).status == "cancelled", timeout=2.0, what="cancel via the database")
    assert time.monotonic() - asked < 1.5  # the handler reads the flag at most every 0.5 s


def test_cancel_a_finished_or_unknown_job_is_refused(queue):
    job = queue.submit("add", {"a": 1})
    assert queue.run_one().status == "done"
    with pytest.raises(InputError, match=f"^job {job.id} already done$"):
        queue.cancel(job.id)
    with pytest.raises(NotFoundError):
        queue.cancel(12345)


def test_a_handler_that_stops_on_cancelled_and_returns_ends_cancelled_with_its_result(engine):
    def run(params: dict, ctx: JobContext) -> dict:
        steps = 0
        while not ctx.cancelled:
            steps += 1
            time.sleep(0.01)
        return {"steps": steps}

    queue = JobQueue(engine, [JobKind("soft", run, any_params)])
    job = queue.submit("soft", {})
    thread = threading.Thread(target=queue.run_one)
    thread.start()
    wait_for(lambda: queue.get(job.id).status == "running", what="start")
    queue.cancel(job.id)
    thread.join(5)
    row = queue.get(job.id)
    assert row.status == "cancelled" and json.loads(row.result)["steps"] > 0


def test_stopping_the_worker_interrupts_the_running_job(queue, probe):
    worker = JobWorker(queue, tick=30.0)
    worker.start()
    job = queue.submit("probe", {})
    assert probe.started.wait(5)
    worker.stop(timeout=5)
    assert not worker.is_alive()
    row = queue.get(job.id)
    assert row.status == "failed" and row.error == INTERRUPTED


def test_recover_fails_jobs_a_dead_process_left_running(engine, probe):
    dead = JobQueue(engine, kinds(probe))  # a node that claimed a job, then died
    job = dead.submit("probe", {})
    claimed = dead.claim_next()
    assert claimed.id == job.id and claimed.status == "running" and claimed.started_at is not None
    queued = dead.submit("add", {"a": 1})

    restarted = JobQueue(engine, kinds())
    assert restarted.recover() == [job.id]
    row = restarted.get(job.id)
    assert row.status == "failed" and row.error == INTERRUPTED and row.finished_at is not None
    assert restarted.get(queued.id).status == "queued"  # queued jobs still run after a restart
    assert restarted.recover() == []
    assert restarted.run_one().id == queued.id


def resumable(probe: Probe) -> JobKind:
    """A kind that resumes: the params that continue it say so (as training's ``resume``)."""
    return JobKind("resumable", probe, any_params, resume=lambda params: {**params, "resume": True})


def test_a_resumable_job_the_node_stops_is_queued_again_and_resumes_at_the_next_start(engine, probe):
    queue = JobQueue(engine, [resumable(probe)])
    worker = JobWorker(queue, tick=30.0)
    worker.start()
    job = queue.submit("resumable", {"n": 1})
    assert probe.started.wait(5)
    worker.stop(timeout=5)
    row = queue.get(job.id)
    assert (row.status, row.error, json.loads(row.params)) == ("queued", None, {"n": 1, "resume": True, "restarts": 1})
    probe.release.set()
    restarted = JobQueue(engine, [resumable(probe)])  # the next start runs it to the end
    assert restarted.recover() == [] and restarted.run_one().status == "done" and probe.runs == 2


def test_recover_queues_a_resumable_job_a_dead_process_left_running_until_its_restarts_run_out(engine, probe):
    from loraledger.jobs.queue import MAX_RESTARTS

    job = JobQueue(engine, [resumable(probe)]).submit("resumable", {})
    for restart in range(1, MAX_RESTARTS + 2):
        dead = JobQueue(engine, [resumable(probe)])
        assert dead.claim_next().id == job.id  # claimed, then the process died
        failed = JobQueue(engine, [resumable(probe)]).recover()
        row = JobQueue(engine, []).get(job.id)
        if restart <= MAX_RESTARTS:
            assert failed == [] and row.status == "queued" and json.loads(row.params)["restarts"] == restart
        else:  # a job that keeps dying does not come back forever
            assert failed == [job.id] and row.status == "failed" and f"({MAX_RESTARTS} times)" in row.error


def test_recover_leaves_jobs_running_in_this_process_alone(queue, worker, probe):
    job = queue.submit("probe", {})
    assert probe.started.wait(5)
    assert queue.recover() == []
    assert queue.get(job.id).status == "running"


def test_two_workers_never_claim_the_same_job(engine):
    # Two queues on two engines: two processes' worth of connections to one database.
    other_engine = make_engine(engine.url)
    try:
        queues = [JobQueue(engine, kinds()), JobQueue(other_engine, kinds())]
        for _ in range(10):
            job = queues[0].submit("add", {"a": 1})
            barrier = threading.Barrier(4)
            claims: list[JobRow | None] = []

            def claim(q: JobQueue) -> None:
                barrier.wait()
                claims.append(q.claim_next())

            threads = [threading.Thread(target=claim, args=(queues[i % 2],)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            won = [c for c in claims if c is not None]
            assert len(claims) == 4 and len(won) == 1 and won[0].id == job.id
    finally:
        other_engine.dispose()


def test_claim_skips_kinds_this_queue_cannot_run(engine):
    JobQueue(engine, kinds()).submit("boom", {})
    only_add = JobQueue(engine, [JobKind("add", run_add, validate_add)])
    assert only_add.claim_next() is None  # another worker (with that kind) may run it
    job = only_add.submit("add", {"a": 1})
    assert only_add.claim_next().id == job.id


def test_progress_reports_are_throttled(engine):
    writes = []

    def run(params: dict, ctx: JobContext) -> dict:
        for step in range(20_000):
            ctx.report({"step": step})
            ctx.check_cancelled()
        writes.append(queue.get(ctx.job_id).progress)
        return {}

    queue = JobQueue(engine, [JobKind("tight", run, any_params)])
    job = queue.submit("tight", {})
    began = time.monotonic()
    row = queue.run_one()
    # 20 000 reports and checks cost little: at most a few database writes happen.
    assert time.monotonic() - began < 5
    assert json.loads(row.progress) == {"step": 19_999}  # the last report lands with the final state
    assert writes[0] is not None  # reports were written while it ran, not only at the end
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        JobContext(queue, job.id, {}).report({"x": object()})


def test_job_ids_are_never_reused(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'ids.db'}")
    create_tables(engine)
    queue = JobQueue(engine, kinds())
    last = queue.submit("add", {"a": 1})
    with session_scope(engine) as session:
        session.delete(session.get(JobRow, last.id))
    assert queue.submit("add", {"a": 1}).id == last.id + 1


# ------------------------------------------------------------------------- API

TOKEN = "jobs-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api(anvil, accounts, artifacts, tmp_path_factory):
    settings = deployed_settings(anvil, accounts[0], artifacts, tmp_path_factory.mktemp("api-jobs"), admin_token=TOKEN)
    node = open_node(settings, operator=accounts[0])
    probe = Probe()
    for kind in kinds(probe):
        node.jobs.register(kind)
    worker = JobWorker(node.jobs, tick=0.2)  # the daemon's part; the app never runs jobs itself
    worker.start()
    url, server, thread = serve(create_app(settings, node=node))
    yield {"url": url, "node": node, "probe": probe}
    probe.release.set()
    server.should_exit = True
    thread.join(timeout=10)
    worker.stop(timeout=10)


def poll(url: str, job_id: int, until=("done", "failed", "cancelled"), timeout: float = 5.0) -> dict:
    return wait_for(lambda: (job := httpx.get(f"{url}/v1/jobs/{job_id}").json())["status"] in until and job,
                    timeout=timeout, what=f"job {job_id} in {until}")


def test_api_submit_needs_the_admin_token(api):
    url = api["url"]
    body = {"kind": "add", "params": {"a": 1}}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.post(f"{url}/v1/jobs", json=body, headers=headers)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
        response = httpx.post(f"{url}/v1/jobs/1/cancel", headers=headers)
        assert response.status_code == 401
    # refused before the body is even read: no 400 leaks whether the body was valid
    assert httpx.post(f"{url}/v1/jobs", content=b"{nope", headers={}).status_code == 401


def test_api_submit_runs_and_shows_the_job(api):
    url = api["url"]
    created = httpx.post(f"{url}/v1/jobs", json={"kind": "add", "params": {"a": 40, "b": 2}}, headers=ADMIN)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] in ("queued", "running", "done") and job["params"] == {"a": 40, "b": 2}
    assert set(job) == {"id", "kind", "status", "params", "createdAt", "startedAt", "finishedAt", "progress",
                        "result", "error", "cancelRequested"}
    done = poll(url, job["id"])
    assert done["status"] == "done" and done["result"] == {"sum": 42} and done["progress"] == {"step": 3, "of": 3}

    failed = httpx.post(f"{url}/v1/jobs", json={"kind": "boom"}, headers=ADMIN).json()  # params optional
    assert poll(url, failed["id"])["error"] == "ValueError: bad value 42"

    listed = httpx.get(f"{url}/v1/jobs").json()
    assert [j["id"] for j in listed][:2] == [failed["id"], job["id"]]
    assert [j["id"] for j in httpx.get(f"{url}/v1/jobs", params={"kind": "add", "status": "done"}).json()] \
        == [job["id"]]
    assert len(httpx.get(f"{url}/v1/jobs", params={"limit": 1}).json()) == 1


@pytest.mark.parametrize(
    "method,path,body,status,needle",
    [
        ("post", "/v1/jobs", {"kind": "no-such-kind", "params": {}}, 400, "unknown job kind 'no-such-kind'; known kinds: add, "),
        ("post", "/v1/jobs", {"kind": "add", "params": {}}, 400, "a is required"),
        ("post", "/v1/jobs", {"kind": "add", "params": [1]}, 400, "params must be a JSON object"),
        ("post", "/v1/jobs", {"params": {}}, 400, "kind is required"),
        ("post", "/v1/jobs", {"kind": "add", "extra": 1}, 400, "unknown field(s) extra"),
        ("post", "/v1/jobs", [1], 400, "must be a JSON object"),
        ("post", "/v1/jobs", b"{nope", 400, "not JSON"),
        ("post", "/v1/jobs/999999/cancel", None, 404, "job 999999 not found"),
        ("post", "/v1/jobs/0/cancel", None, 404, "not found"),
        ("get", "/v1/jobs/999999", None, 404, "job 999999 not found"),
        ("get", "/v1/jobs/99999999999999999999999", None, 404, "not found"),
        ("get", "/v1/jobs/abc", None, 422, "job_id"),
        ("get", "/v1/jobs?status=finished", None, 400, "unknown job status"),
        ("get", "/v1/jobs?limit=0", None, 400, "limit"),
        ("get", "/v1/jobs?limit=x", None, 422, "limit"),
    ],
)
def test_api_bad_requests_get_4xx_with_a_message(api, method, path, body, status, needle):
    kwargs: dict = {}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    headers = ADMIN if method == "post" else {}
    response = getattr(httpx, method)(api["url"] + path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert needle in response.json()["message"]


def test_api_cancel_running_and_finished_jobs(api):
    url, probe = api["url"], api["probe"]
    job = httpx.post(f"{url}/v1/jobs", json={"kind": "probe"}, headers=ADMIN).json()
    assert probe.started.wait(5)
    response = httpx.post(f"{url}/v1/jobs/{job['id']}/cancel", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["cancelRequested"] is True
    assert poll(url, job["id"], timeout=2.0)["status"] == "cancelled"
    again = httpx.post(f"{url}/v1/jobs/{job['id']}/cancel", headers=ADMIN)
    assert again.status_code == 400 and again.json()["message"] == f"job {job['id']} already cancelled"


def test_node_run_fails_jobs_a_previous_run_left_running(anvil, accounts, artifacts, tmp_path):
    """The real daemon: at start it recovers the job a dead run left ``running``, serves
    /v1/jobs, and stops cleanly (its worker too) on SIGTERM."""
    settings = deployed_settings(anvil, accounts[0], artifacts, tmp_path)
    deployments = settings.deployments_dir
    settings.data_dir.mkdir(parents=True)
    engine = make_engine(settings.ledger_url)
    create_tables(engine)
    dead = JobQueue(engine, kinds())  # the previous run: claimed a job, then was killed
    stale = dead.submit("add", {"a": 1})
    assert dead.claim_next().status == "running"
    engine.dispose()

    port = free_port()
    env = cli_environment(anvil.url, tmp_path, operator=accounts[0], deployments=deployments)
    daemon = subprocess.Popen([sys.executable, "-m", "loraledger", "node", "run", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        job = wait_for(lambda: _get_json(f"{url}/v1/jobs/{stale.id}") or daemon.poll() is not None,
                       timeout=30, what="the daemon")
        assert daemon.poll() is None, daemon.stdout.read()
        assert job["status"] == "failed" and job["error"] == INTERRUPTED
        traced = httpx.get(f"{url}/v1/jobs/{stale.id}", headers={"X-Request-Id": "trace-42"})
        assert traced.headers["X-Request-Id"] == "trace-42"
        fresh = httpx.get(f"{url}/v1/jobs/999", headers={"X-Request-Id": "not a token!"})  # refused: a new id
        assert fresh.status_code == 404 and len(fresh.headers["X-Request-Id"]) == 32
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            output, _ = daemon.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            raise
    # uvicorn shuts down, re-raises the SIGTERM to the daemon's handler, which exits 128 + 15
    # after stopping the worker (0 if the signal came before uvicorn installed its handlers)
    assert daemon.returncode in (0, 128 + signal.SIGTERM), output
    assert f"job {stale.id}: {INTERRUPTED}" in output
    # JSON log lines; the request's line carries its id.
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    [request] = [line for line in lines if line.get("requestId") == "trace-42"]
    assert (request["method"], request["path"], request["status"]) == ("GET", f"/v1/jobs/{stale.id}", 200)
    assert lines[-1]["message"] == "stopped"  # the shutdown ran to its end


def _get_json(url: str):
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None
