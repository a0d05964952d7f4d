"""The trust boundary without a browser: signed anonymous ids, admin checks, redaction, and the one door.

The door tests run real jobs on a real store (SQLite in tmp_path) and call the door's functions the way a
page does, with another visitor's identity and the first visitor's job id.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
import stat

import psycopg
import pytest

from config.settings import load_settings
from streamlit_app import identity
from streamlit_app.identity import Identity
from streamlit_app.jobs import JobDoor, JobNotFound, NotAllowed
from tests.waiting import wait_until
from utils import redact

ALICE = Identity("anon:" + "a" * 32, "alice", is_admin=False, mode="anonymous")
BOB = Identity("anon:" + "b" * 32, "bob", is_admin=False, mode="anonymous")
ADMIN = Identity("oidc:sub-root", "root@example.test", is_admin=True, mode="signed-in")
TEXT_ANALYSER = "streamlit_app.text:analyse_text"


# ---------------------------------------------------------------- anonymous identities
def test_the_server_secret_is_created_once_private_and_kept(tmp_path):
    first = identity.server_secret(tmp_path)
    path = tmp_path / identity.SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert identity.server_secret(tmp_path) == first  # a restart keeps every visitor's identity
    assert [p.name for p in tmp_path.iterdir()] == [identity.SECRET_FILE]  # no temporary file left behind


def test_a_fresh_token_verifies_and_carries_128_random_bits(tmp_path):
    secret = identity.server_secret(tmp_path)
    tokens = {identity.new_anonymous_token(secret) for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        owner = identity.verify_anonymous_token(secret, token)
        assert owner is not None and owner.startswith(identity.ANONYMOUS_PREFIX)
        assert len(owner.removeprefix(identity.ANONYMOUS_PREFIX)) * 4 >= 128


@pytest.mark.parametrize("forge", [
    lambda token: "alice",
    lambda token: "",
    lambda token: "a" * 32,
    lambda token: ("0" if token[0] != "0" else "1") + token[1:],  # another id, the old signature
    lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # the id, a changed signature
    lambda token: token + "x",
])
def test_a_typed_or_tampered_token_is_refused(tmp_path, forge):
    secret = identity.server_secret(tmp_path)
    token = identity.new_anonymous_token(secret)
    assert identity.verify_anonymous_token(secret, forge(token)) is None


def test_a_token_signed_by_another_server_is_refused(tmp_path):
    ours = identity.server_secret(tmp_path / "ours")
    theirs = identity.server_secret(tmp_path / "theirs")
    assert identity.verify_anonymous_token(ours, identity.new_anonymous_token(theirs)) is None


def test_admins_by_email_and_by_token():
    signed_in = identity.signed_in_identity("sub-1", "Root@Example.test", ("root@example.test",))
    assert signed_in.is_admin and signed_in.owner_id == "oidc:sub-1" and signed_in.display == "Root@Example.test"
    assert not identity.signed_in_identity("sub-2", "eve@example.test", ("root@example.test",)).is_admin
    assert not identity.signed_in_identity("sub-3", None, ("root@example.test",)).is_admin
    unverified = identity.signed_in_identity("sub-4", "root@example.test", ("root@example.test",), email_verified=False)
    assert not unverified.is_admin  # an e-mail the provider did not verify could be anyone's
    assert identity.anonymous_may_retune("", proved_token=False)  # no token configured: everyone may
    assert not identity.anonymous_may_retune("s3cret", proved_token=False)
    assert identity.admin_token_matches("s3cret", "s3cret")
    assert not identity.admin_token_matches("s3cre", "s3cret")
    assert not identity.admin_token_matches("", "")


def test_admins_come_from_the_environment():
    settings = load_settings(env={"SPINDLE_ADMINS": " Root@Example.test, ops@example.test ,",
                                  "SPINDLE_ADMIN_TOKEN": "tok"})
    assert settings.admins == ("ops@example.test", "root@example.test")
    assert settings.admin_token == "tok"


# ---------------------------------------------------------------- redaction
MALFORMED_URLS = [
    "postgresql://spindle:Sup3rSecretPW@[bad-ipv6/db",  # psycopg quotes the whole URL
    "postgresql://spindle:Sup3r SecretPW@127.0.0.1:5432/db",  # psycopg quotes the password alone
    "postgresql://spindle:Sup3rSecretPW@127.0.0.1:notaport/db",
]


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_a_malformed_database_url_loses_its_password_in_the_error(url):
    try:
        psycopg.connect(url, connect_timeout=1)
    except psycopg.Error as exc:
        message = str(exc)
    redact.add_secrets(redact.settings_secrets(load_settings(env={"DATABASE_URL": url})))
    assert "Sup3r" not in redact.redact(message)
    assert "Sup3r" not in redact.redact(f"cannot open the store at {url}: {message}")


def test_keys_and_tokens_are_masked_wherever_they_appear():
    maps_key = "AIza" + "Q" * 35
    # A made-up JWT, built in parts so secret scanners do not take the test for a leaked key.
    supabase_key = ".".join(["eyJhbGciOiJIUzI1NiJ9", "eyJyb2xlIjoic2VydmljZV9yb2xlIn0", "c2lnbmF0dXJlLW9mLXRoZS1rZXk"])
    text = (f"GET https://maps.googleapis.com/maps/api/geocode/json?address=1+Main&key={maps_key} failed; "
            f"apikey: {supabase_key}; conninfo host=db password=hunter22 user=x")
    out = redact.redact(text)
    assert maps_key not in out and supabase_key not in out and "hunter22" not in out
    assert "address=1+Main" in out and "host=db" in out  # the rest still explains the error


def test_the_log_filter_masks_messages_and_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("spindle.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        redact.install_log_redaction()
        try:
            raise ValueError("connect to postgresql://bob:Sup3rSecretPW@db.internal/x failed")
        except ValueError:
            logger.exception("store failed for %s", "postgresql://bob:Sup3rSecretPW@db.internal/x")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "Traceback" in written and "ValueError" in written
    assert "Sup3rSecretPW" not in written


# ---------------------------------------------------------------- user text is text
@pytest.mark.parametrize("text", ["**bold**[evil](http://evil.test)<img src=x>", "www.evil.test", "ann@example.com",
                                  ":red[alarm] $x^2$ &lt;b&gt;", "`code` and ``more``", "`edge`"])
def test_user_text_in_markdown_becomes_a_code_span_that_holds_it_verbatim(text):
    from streamlit_app.widgets import md_escape

    shown = md_escape(text)
    fence = re.match(r"`+", shown).group(0)
    assert shown.endswith(fence) and len(fence) > max([0] + [len(run) for run in re.findall(r"`+", text)])
    assert shown[len(fence):-len(fence)].strip(" ") == text.strip(" ")


def test_plain_names_stay_as_typed():
    from streamlit_app.widgets import md_escape

    assert md_escape("requests-2024.csv") == "requests-2024.csv"
    assert md_escape("Phone") == "Phone"


# ---------------------------------------------------------------- the one door
@pytest.fixture(scope="module")
def door(tmp_path_factory):
    from utils.services import open_services

    data_dir = tmp_path_factory.mktemp("door-data")
    settings = dataclasses.replace(load_settings(env={"MAX_WORKERS_PER_USER": "3"}), data_dir=data_dir)
    services = open_services(settings)
    yield JobDoor(services)
    services.close()


@pytest.fixture(scope="module")
def alice_job(door):
    files = [("notes.txt", b"The quick brown fox jumps over the lazy dog. " * 20),
             ("memo.txt", b"Meeting at noon about the budget and the plan for next year. " * 10)]
    job_id = door.start_files(ALICE, "text", files, TEXT_ANALYSER, {}, exec_kind="thread")
    door.services.queue.wait(job_id, timeout=60)
    return job_id


ACTIONS = {
    "status": lambda door, who, job: door.status(who, job),
    "cancel": lambda door, who, job: door.cancel(who, job),
    "results": lambda door, who, job: door.file_results(who, job),
    "details": lambda door, who, job: door.file_details(who, job),
    "download a file": lambda door, who, job: door.file_bytes(who, job, "notes.txt"),
    "similar texts": lambda door, who, job: door.similar_texts(who, job),
    "item rows": lambda door, who, job: door.item_rows(who, job),
    "validation results": lambda door, who, job: door.validation_results(who, job),
    "merges": lambda door, who, job: door.merges(who, job),
    "save merges": lambda door, who, job: door.save_merges(who, job, {"upload:2:3"}),
    "accept into history": lambda door, who, job: door.accept_into_history(who, job),
    "geocode": lambda door, who, job: door.start_geocoding(who, job),
    "re-run": lambda door, who, job: door.rerun(who, job),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_another_visitors_job_answers_exactly_like_a_missing_one(door, alice_job, action):
    run = ACTIONS[action]

    def answer(who: Identity, job_id: str) -> str:
        try:
            return f"returned {run(door, who, job_id)!r}"
        except JobNotFound as exc:
            return f"JobNotFound: {exc}"

    theirs = answer(BOB, alice_job)
    missing = answer(BOB, "0" * 16)
    assert theirs == missing
    assert theirs in ("JobNotFound: no such job", "returned None")


def test_the_owner_reads_their_job_and_nobody_else_lists_it(door, alice_job):
    assert door.status(ALICE, alice_job)["status"] == "completed"
    table = door.file_results(ALICE, alice_job)
    assert sorted(table["file"]) == ["memo.txt", "notes.txt"]
    assert door.file_bytes(ALICE, alice_job, "notes.txt").startswith(b"The quick brown fox")
    assert door.latest_job(ALICE, "text") == alice_job
    assert door.latest_job(BOB, "text") is None
    assert alice_job not in [j["id"] for j in door.my_jobs(BOB)]
    assert not any(j["owner"] == ALICE.owner_id for j in door.unfinished_jobs(BOB))


def test_the_owner_can_run_a_job_again_from_its_stored_inputs(door, alice_job):
    again = door.rerun(ALICE, alice_job)
    assert again != alice_job
    door.services.queue.wait(again, timeout=60)
    assert sorted(door.file_results(ALICE, again)["file"]) == sorted(door.file_results(ALICE, alice_job)["file"])
    assert door.latest_job(ALICE, "text") == again


def test_a_second_visitor_cannot_cancel_the_first_ones_running_job(door):
    many = [(f"file-{i}.txt", f"text number {i} ".encode() * 50) for i in range(40)]
    job_id = door.start_files(ALICE, "text", many, TEXT_ANALYSER, {}, exec_kind="thread")
    with pytest.raises(JobNotFound):
        door.cancel(BOB, job_id)
    status = door.services.queue.get_status(job_id)
    assert status["status"] != "cancelled"
    door.cancel(ALICE, job_id)
    final = door.services.queue.wait(job_id, timeout=60)
    assert final["status"] in ("cancelled", "completed")


def test_only_admins_retune_the_shared_pools(door):
    before = door.pool_settings("default")
    with pytest.raises(NotAllowed):
        door.retune_pool(BOB, "default", workers=1, chunk_size=None, parallel=False)
    with pytest.raises(NotAllowed):
        door.clear_metrics(BOB)
    assert door.pool_settings("default") == before
    door.retune_pool(ADMIN, "default", workers=before["workers"] + 1, chunk_size=25, parallel=True)
    after = door.pool_settings("default")
    assert (after["workers"], after["chunk_size"]) == (before["workers"] + 1, 25)
    door.retune_pool(ADMIN, "default", workers=before["workers"], chunk_size=before["chunk_size"],
                     parallel=before["parallel"])


def test_personal_settings_are_capped_at_the_share_and_reach_only_their_own_jobs(door):
    shared = door.pool_settings("default")
    mine = door.set_personal_settings(BOB, workers=50, chunk_size=7)
    assert (mine.workers, mine.chunk_size) == (3, 7)  # MAX_WORKERS_PER_USER=3 in this fixture
    assert door.personal_settings(ALICE).workers is None  # Alice's are untouched
    assert door.pool_settings("default") == shared  # the shared pool too
    run_id = door.start_test_threading(BOB)
    job = door.services.manager.job(run_id)
    assert job.owner == BOB.owner_id and job.max_workers == 3 and job.explicit_chunk_size == 7
    other = door.start_test_threading(ALICE)
    assert door.services.manager.job(other).max_workers is None
    with pytest.raises(JobNotFound):
        door.live_progress(ALICE, run_id)
    with pytest.raises(JobNotFound):
        door.cancel_live(ALICE, run_id)
    assert wait_until(lambda: door.live_finished(BOB, run_id) and door.live_finished(ALICE, other), 60)


def test_a_benchmark_runs_on_its_owners_share(door):
    run = door.start_benchmark(BOB, "io", 20, [1, 2, 16])  # 20 × 20 ms sequentially first: still running next
    with pytest.raises(NotAllowed):  # one benchmark at a time per visitor
        door.start_benchmark(BOB, "io", 20, [1])
    assert wait_until(lambda: run.finished, 60)
    assert run.error is None
    assert max(m.workers for m in run.result.measurements) <= door.share_limit()
    owners = {j.owner for j in door.services.manager.jobs() if j.name.startswith("benchmark:")}
    assert owners == {BOB.owner_id}


def test_other_visitors_are_shown_only_in_aggregate(door):
    door.visitor_arrived(ALICE)
    door.visitor_arrived(BOB)
    try:
        for_bob = door.visitors(BOB)
        assert for_bob.rows is None and for_bob.others >= 1
        assert ALICE.owner_id not in repr(for_bob)
        for_admin = door.visitors(ADMIN)
        assert for_admin.rows is not None and for_admin.others >= 2
    finally:
        door.visitor_left(ALICE)
        door.visitor_left(BOB)


def test_the_page_side_has_no_side_door():
    """Pages import streamlit_app only: no utils/ or config/ (so every job action goes through the door)."""
    pages = os.path.join(os.path.dirname(__file__), "..", "pages")
    for name in sorted(os.listdir(pages)):
        if name.endswith(".py"):
            source = open(os.path.join(pages, name), encoding="utf-8").read()
            for forbidden in ("from utils", "import utils", "from config", "import config"):
                assert forbidden not in source, f"pages/{name} has {forbidden!r}"
