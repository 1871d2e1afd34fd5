"""boto3 clients for the blocks' AwsCredentials: one per credentials object
and service for a flow run (a new session costs ~0.4 CPU-s), with explicit
timeouts and bounded retries, so an endpoint that accepts connections and
never answers fails in seconds instead of hanging a flow for minutes."""
from __future__ import annotations

import functools
import threading
from typing import Callable

from botocore.config import Config
from botocore.exceptions import BotoCoreError
from prefect_aws import AwsCredentials

CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 10
MAX_ATTEMPTS = 1      # the tasks retry (logged in the UI); botocore retrying too would multiply the wait

_clients: dict[tuple[int, str], tuple[AwsCredentials, object]] = {}
_lock = threading.Lock()


def client(credentials: AwsCredentials, service: str):
    key = (id(credentials), service)
    with _lock:
        held = _clients.get(key)
        if held is None or held[0] is not credentials:
            if len(_clients) > 32:  # a long-lived process loads many blocks: stay bounded
                _clients.clear()
            params = dict(credentials.aws_client_parameters.get_params_override())
            config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                            retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"})
            if isinstance(params.get("config"), Config):
                config = params["config"].merge(config)
            params["config"] = config
            held = (credentials, credentials.get_boto3_session().client(service, **params))
            _clients[key] = held
        return held[1]


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
