"""Cold-start reference: the bare Mangum demo plus a boto3 DynamoDB client created at import,
which is what a limiter built on boto3 pays before its first request."""

import boto3
from mangum import Mangum

from bench.apps.demo_routes import build_api

dynamodb = boto3.client("dynamodb")
handler = Mangum(build_api())
