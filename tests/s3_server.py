"""A local S3-compatible server for storage tests: moto in server mode on a free port, one per
test session, and a fresh bucket per test.

    from s3_server import s3  # noqa: F401  (fixture)

    def test_something(app, s3):
        app.config.update(s3.settings)   # STORAGE_BACKEND = "s3" on the test's bucket
        s3.keys()                        # what the bucket holds
"""
from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

CREDENTIALS = {"S3_ACCESS_KEY_ID": "testing", "S3_SECRET_ACCESS_KEY": "testing", "S3_REGION": "us-east-1"}


@dataclasses.dataclass
class S3Bucket:
    endpoint: str
    bucket: str
    client: Any

    @property
    def settings(self) -> dict[str, Any]:
        """The portal's settings for this bucket."""
        return {"STORAGE_BACKEND": "s3", "S3_BUCKET": self.bucket, "S3_ENDPOINT_URL": self.endpoint, **CREDENTIALS}

    def keys(self) -> list[str]:
        answer = self.client.list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("moto", reason="moto (the test extra) runs the local S3 server")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Iterator[S3Bucket]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=CREDENTIALS["S3_REGION"],
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = f"portal-{secrets.token_hex(6)}"
    client.create_bucket(Bucket=bucket)
    yield S3Bucket(endpoint=s3_endpoint, bucket=bucket, client=client)
    for key in S3Bucket(s3_endpoint, bucket, client).keys():
        client.delete_object(Bucket=bucket, Key=key)
    client.delete_bucket(Bucket=bucket)
