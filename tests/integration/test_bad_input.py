"""Bad input to release: a clear error naming the problem, and nothing published."""
from __future__ import annotations

import pytest

from tests.integration.conftest import snapshot

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]


def test_missing_app_dir(make_store, tmp_path):
    from flows.release import release
    from tasks.workspace import AppConfigError
    block, client, bucket = make_store()
    with pytest.raises(AppConfigError, match="does not exist"):
        release(app_dir=str(tmp_path / "nope"), store_block=block)
    assert snapshot(client, bucket) == {}


def test_app_without_release_config(make_store, example_version):
    from flows.release import release
    from tasks.workspace import AppConfigError
    block, client, bucket = make_store()
    app = example_version("v1")
    (app / "rebar.config").write_text("{erl_opts, [debug_info]}.\n{deps, []}.\n")
    with pytest.raises(AppConfigError, match="has no relx release"):
        release(app_dir=str(app), store_block=block)
    assert snapshot(client, bucket) == {}


def test_missing_store_block(example_version):
    from blocks import BlockMissing
    from flows.release import release
    with pytest.raises(BlockMissing, match="s3-bucket/no-such-store not found"):
        release(app_dir=str(example_version("v1")), store_block="no-such-store")
