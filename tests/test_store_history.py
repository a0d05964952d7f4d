"""History per owner: duplicate checks see the caller's own accepted records, or everyone's when shared."""
from __future__ import annotations

import pytest

from config.settings import load_settings
from config.threading_config import load_threading_config
from streamlit_app.validation import batch
from utils.services import open_services
from utils.threading_manager import ThreadingManager


@pytest.fixture
def open_with(tmp_path):
    manager = ThreadingManager(load_threading_config())
    opened = []

    def make(**env: str):
        opened.append(open_services(load_settings({"SPINDLE_DATA_DIR": str(tmp_path), **env}), manager=manager))
        return opened[-1]

    yield make
    manager.shutdown(cancel_futures=True)
    for services in opened:
        services.close()


def test_each_owner_sees_only_their_own_history_unless_it_is_shared(open_with):
    services = open_with()
    services.store.add_history([{"name": "Ana Lima", "phone": "+44 20 7946 0000"}], source="a.csv", owner="ana")
    services.store.add_history([{"name": "Ben Ode", "phone": "+44 20 7946 0001"}], source="b.csv", owner="ben")
    assert batch.history_size(services, owner="ana") == 1
    assert list(batch.history_frame(services, owner="ben")["name"]) == ["Ben Ode"]
    assert batch.history_version(services, owner="ana") < batch.history_version(services, owner="ben")
    shared = open_with(SPINDLE_SHARED_HISTORY="true")
    assert batch.history_size(shared, owner="ana") == 2
    assert set(batch.history_frame(shared, owner="ana")["name"]) == {"Ana Lima", "Ben Ode"}


def test_accepted_records_become_their_job_owner_s_history(open_with):
    services = open_with()
    records = [{"row": 2 + n, "name": f"Person {n}", "phone": f"+44 20 7946 00{n:02d}"} for n in range(3)]
    services.store.create_job({"id": "checked", "owner": "ana", "kind": batch.KIND, "fn": batch.CHECK_FN,
                               "total": 3, "status": "completed",
                               "params": {"source": "ana.csv", "mapping": {"name": "name", "phone": "phone"},
                                          "columns": ["name", "phone"], "options": {}}})
    services.store.add_items("checked", list(enumerate(records)))
    services.store.save_results("checked", [{"idx": n, "status": "completed", "result": {"status": "valid"}}
                                            for n in range(3)])  # as the worker processes left them
    assert batch.accept_into_history(services, "checked") == 3
    assert {row["owner"] for row in services.store.history()} == {"ana"}
    assert batch.history_size(services, owner="ana") == 3
    assert batch.history_size(services, owner="ben") == 0
