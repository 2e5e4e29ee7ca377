"""Batch dispatcher Lambda (SQS of S3 events -> manifest -> AWS Batch array job)."""
