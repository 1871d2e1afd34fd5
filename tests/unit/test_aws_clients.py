"""One boto3 session per identity and flow run (tasks/aws.py): the store's
and the environment's credentials, loaded as two blocks, share it. Clients
are made offline; nothing here calls AWS."""
import pytest
from prefect_aws import AwsCredentials
from prefect_aws.client_parameters import AwsClientParameters

from tasks import aws


def _credentials(secret: str = "s3cr3t-value", endpoint: str = "http://127.0.0.1:9") -> AwsCredentials:
    return AwsCredentials(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key=secret, region_name="us-east-1",
                          aws_client_parameters=AwsClientParameters(endpoint_url=endpoint))


@pytest.fixture(autouse=True)
def _empty():
    aws._sessions.clear(), aws._clients.clear()
    yield
    aws._sessions.clear(), aws._clients.clear()


def test_the_same_identity_in_two_blocks_shares_one_session():
    store, environment = _credentials(), _credentials()
    s3, ec2 = aws.client(store, "s3"), aws.client(environment, "ec2")
    assert len(aws._sessions) == 1 and len(aws._clients) == 2
    assert aws.client(_credentials(), "s3") is s3 and aws.client(environment, "ec2") is ec2
    assert s3.meta.endpoint_url == ec2.meta.endpoint_url == "http://127.0.0.1:9"


def test_another_secret_or_endpoint_is_another_session_or_client():
    aws.client(_credentials(), "s3")
    aws.client(_credentials(secret="another"), "s3")
    assert len(aws._sessions) == 2
    other = aws.client(_credentials(endpoint="http://127.0.0.1:10"), "s3")
    assert other.meta.endpoint_url == "http://127.0.0.1:10" and len(aws._sessions) == 2


def test_our_timeouts_and_single_attempt_apply():
    config = aws.client(_credentials(), "ec2").meta.config
    assert (config.connect_timeout, config.read_timeout) == (aws.CONNECT_TIMEOUT_S, aws.READ_TIMEOUT_S)
    assert config.retries["total_max_attempts"] == aws.MAX_ATTEMPTS


def test_the_key_holds_no_secret():
    aws.client(_credentials(secret="s3cr3t-value"), "s3")
    assert "s3cr3t-value" not in repr(aws._sessions.keys()) + repr(aws._clients.keys())


def test_every_session_reads_the_service_models_through_one_loader():
    # two identities, two sessions, two runs' worth: one parse of botocore's JSON for the process
    a, b = aws.client(_credentials(), "s3"), aws.client(_credentials(secret="another"), "s3")
    assert len(aws._sessions) == 2
    assert a._loader is b._loader is aws.shared_loader(None)


def test_models_loaded_once_are_not_read_again(monkeypatch):
    aws.load_models()
    reads = []
    loader = aws.shared_loader(None)
    real = type(loader).load_data_with_path
    monkeypatch.setattr(type(loader), "load_data_with_path",
                        lambda self, name, *a, **k: reads.append(name) or real(self, name, *a, **k))
    aws.client(_credentials(secret="a third"), "ec2")
    aws.client(_credentials(secret="a third"), "s3")
    assert not [r for r in reads if "ec2" in r or "s3" in r], reads
