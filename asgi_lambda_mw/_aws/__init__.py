"""A lean async DynamoDB client for the rate limiter's per-request path: hand-written SigV4,
credentials, and an HTTP/1.1 keep-alive pool over asyncio. Importing it never imports botocore;
the storage layer (ratelimit/storage/dynamodb.py) is its only user inside the onion."""
