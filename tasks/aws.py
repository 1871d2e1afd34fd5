"""boto3 clients for the blocks' AwsCredentials, with explicit timeouts and
bounded retries, so an endpoint that accepts connections and never answers
fails in seconds instead of hanging a flow for minutes.

One boto3 session per identity (keys, profile, region, role) and flow run,
whichever block holds it: the store's and the environment's credentials are
usually the same, loaded twice. Per run, not per process: a role's temporary
credentials expire, and a served flow's process lives long. One client per
session, service and client parameters (endpoint, config).

The service models (botocore's JSON: about 0.25 CPU-s to load S3's and
EC2's) are the installed botocore's files, the same for every session: one
loader holds them for the process, so a second run in a long-lived process
makes its clients in about 15 ms, and a run forked from the warm engine
server (deployments/warm.py, which loads them once) never loads them."""
from __future__ import annotations

import functools
import hashlib
import json
import threading
from typing import Callable

import botocore.loaders
from botocore.config import Config
from botocore.exceptions import BotoCoreError
from prefect_aws import AwsCredentials

CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 10
MAX_ATTEMPTS = 1      # the tasks retry (logged in the UI); botocore retrying too would multiply the wait
HELD_MAX = 32         # a long-lived process loads many blocks: stay bounded

_sessions: dict[str, object] = {}                   # run:identity
_clients: dict[tuple[str, str, str], object] = {}   # (run:identity, service, parameters)
_clients_lock = threading.Lock()
_loaders_lock = threading.Lock()


def identity(credentials: AwsCredentials) -> str:
    """A digest of what a session is made of (never the secret itself): two
    blocks with the same keys, profile, region and role share a session."""
    secret = credentials.aws_secret_access_key.get_secret_value() if credentials.aws_secret_access_key else None
    parts = [credentials.aws_access_key_id, secret, credentials.aws_session_token, credentials.profile_name,
             credentials.region_name, credentials.assume_role_arn,
             credentials.assume_role_kwargs.get_params_override() if credentials.assume_role_arn else None]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def client_params(credentials: AwsCredentials) -> dict:
    """The client's parameters from the block, with our timeouts and retries."""
    params = dict(credentials.aws_client_parameters.get_params_override())
    config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                    retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"})
    if isinstance(params.get("config"), Config):
        config = params["config"].merge(config)
    params["config"] = config
    return params


def _flow_run() -> str:
    from prefect.context import FlowRunContext, TaskRunContext
    task_run = TaskRunContext.get()
    if task_run and task_run.task_run.flow_run_id:
        return str(task_run.task_run.flow_run_id)
    flow_run = FlowRunContext.get()
    return str(flow_run.flow_run.id) if flow_run and flow_run.flow_run else "outside a run"


def shared_loader(data_path: str | None):
    """The process's botocore loader for DATA_PATH (a session's data_path,
    None for botocore's own). Kept on botocore.loaders, not here: the warm
    engine server forgets our modules before it forks a run, and its run
    must still find the models it loaded."""
    held = botocore.loaders.__dict__.setdefault("hotdeploy_loaders", {})
    with _loaders_lock:
        loader = held.get(data_path)
        if loader is None:
            loader = held[data_path] = botocore.loaders.create_loader(data_path)
        return loader


def _sharing_models(session):
    """SESSION (boto3's) reading its models through the process's loader."""
    core = session._session      # boto3 keeps its botocore session there; components are botocore's public API
    core.register_component("data_loader", shared_loader(core.get_config_variable("data_path")))
    return session


def _session(credentials: AwsCredentials):
    return _sharing_models(credentials.get_boto3_session())


PRELOADED = ("s3", "ec2")


def load_models(services: tuple[str, ...] = PRELOADED) -> None:
    """Load SERVICES' models into the shared loader, offline (a client is
    made, nothing is called): the warm engine server's preload."""
    import boto3
    session = _sharing_models(boto3.session.Session(aws_access_key_id="preload", aws_secret_access_key="preload",
                                                    region_name="us-east-1"))
    for service in services:
        session.client(service, endpoint_url="http://127.0.0.1:9")


def client(credentials: AwsCredentials, service: str):
    who = f"{_flow_run()}:{identity(credentials)}"
    key = (who, service, credentials.aws_client_parameters.model_dump_json())
    with _clients_lock:   # a boto3 session is not thread-safe; its clients are
        held = _clients.get(key)
        if held is None:
            if len(_clients) > HELD_MAX or len(_sessions) > HELD_MAX:
                _clients.clear()
                _sessions.clear()
            session = _sessions.get(who)
            if session is None:
                session = _sessions[who] = _session(credentials)
            held = _clients[key] = session.client(service, **client_params(credentials))
        return held


def naming(outage: type[Exception], who: Callable[[object], str]):
    """Decorate a function whose first argument says where it calls (a
    store, an environment): a transport failure (no answer, refused, timed
    out) becomes OUTAGE naming that system, WHO(first argument); a bare
    botocore error says only an URL. The task's retries still apply."""
    def wrap(fn):
        @functools.wraps(fn)
        def call(first, *args, **kwargs):
            try:
                return fn(first, *args, **kwargs)
            except BotoCoreError as e:
                raise outage(f"{who(first)} did not answer: {e}") from None
        return call
    return wrap


def endpoint(credentials) -> str:
    return credentials.aws_client_parameters.endpoint_url or "AWS"
