"""Baseline's stand-in for the aws CLI: one process per S3 call, like
`aws s3 cp` in the seed's scripts. Usage: s3.py cat KEY | get KEY FILE | put FILE KEY
(env: MOTO = endpoint, BUCKET)."""
import os
import sys

import boto3

s3 = boto3.client("s3", endpoint_url=os.environ["MOTO"], region_name="us-east-1",
                  aws_access_key_id="x", aws_secret_access_key="x")
bucket = os.environ["BUCKET"]
cmd, *args = sys.argv[1:]
if cmd == "cat":
    sys.stdout.write(s3.get_object(Bucket=bucket, Key=args[0])["Body"].read().decode())
elif cmd == "get":
    s3.download_file(bucket, args[0], args[1])
elif cmd == "put":
    s3.upload_file(args[0], bucket, args[1])
