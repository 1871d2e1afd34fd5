from __future__ import annotations

import uuid

import boto3
import pytest


def new_store(moto_url: str):
    """A fresh bucket on moto behind a saved S3Bucket block; returns (block name, s3 client, bucket)."""
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    if True:
        name = f"store-{uuid.uuid4().hex[:10]}"
        bucket = f"hotdeploy-{name}"
        creds = AwsCredentials(aws_access_key_id="testing", aws_secret_access_key="testing-secret",
                               region_name="us-east-1",
                               aws_client_parameters=AwsClientParameters(endpoint_url=moto_url))
        client = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing-secret")
        client.create_bucket(Bucket=bucket)
        S3Bucket(bucket_name=bucket, credentials=creds).save(name, overwrite=True)
        return name, client, bucket


@pytest.fixture
def make_store(prefect_server, moto_url):
    return lambda: new_store(moto_url)


def snapshot(client, bucket) -> dict[str, str]:
    """Every object in BUCKET with its ETag: compare two to prove nothing changed."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    return out
