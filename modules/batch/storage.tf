###############################################################################
# Data bucket: input/ -> (Batch) -> output/, manifests/
###############################################################################

resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_144:Inputs and results are working data that can be regenerated; cross-region replication is a disaster-recovery choice for the caller.
  bucket        = local.bucket_name
  force_destroy = var.data_bucket.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "data" {
  bucket = aws_s3_bucket.data.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # One data key per bucket instead of one KMS call per object: thousands of images per job.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "data" {
  count = var.data_bucket.access_log_bucket != null ? 1 : 0

  bucket        = aws_s3_bucket.data.id
  target_bucket = var.data_bucket.access_log_bucket
  target_prefix = "${local.bucket_name}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    id     = "abort-incomplete-uploads-and-old-versions"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.data_bucket.abort_incomplete_multipart_upload_days
    }
    noncurrent_version_expiration {
      noncurrent_days = var.data_bucket.noncurrent_version_expiration_days
    }
  }

  dynamic "rule" {
    for_each = {
      for name, r in {
        "expire-input"     = { prefix = local.input_prefix, days = var.data_bucket.input_expiration_days }
        "expire-output"    = { prefix = local.output_prefix, days = var.data_bucket.output_expiration_days }
        "expire-manifests" = { prefix = local.manifest_prefix, days = var.data_bucket.manifest_expiration_days }
      } : name => r if r.days > 0
    }
    content {
      id     = rule.key
      status = "Enabled"
      filter {
        prefix = rule.value.prefix
      }
      expiration {
        days = rule.value.days
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.data]
}

data "aws_iam_policy_document" "data_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.data.arn,
      "${aws_s3_bucket.data.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "data" {
  count = var.enable_tls_only_policy ? 1 : 0

  bucket     = aws_s3_bucket.data.id
  policy     = data.aws_iam_policy_document.data_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.data]
}

###############################################################################
# S3 ObjectCreated under input/ -> SQS (with DLQ)
###############################################################################

resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name_prefix}-s3-events-dlq"
  message_retention_seconds = var.queue.dlq_message_retention_seconds
  sqs_managed_sse_enabled   = var.queue.encryption == "SQS" ? true : null
  kms_master_key_id         = var.queue.encryption == "KMS" ? var.kms_key_arn : null
  tags                      = var.tags
}

resource "aws_sqs_queue" "events" {
  name                       = "${var.name_prefix}-s3-events"
  visibility_timeout_seconds = local.queue_visibility_timeout
  message_retention_seconds  = var.queue.message_retention_seconds
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = var.queue.encryption == "SQS" ? true : null
  kms_master_key_id          = var.queue.encryption == "KMS" ? var.kms_key_arn : null
  tags                       = var.tags

  lifecycle {
    # Owned by aws_sqs_queue_redrive_policy and aws_sqs_queue_policy below.
    ignore_changes = [redrive_policy, policy]
  }
}

# A separate resource, not the queue's inline redrive_policy: moto re-serialises
# the inline JSON (a perpetual diff) and an update of it wipes the queue policy.
resource "aws_sqs_queue_redrive_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.queue.max_receive_count
  })
}

data "aws_iam_policy_document" "events_queue" {
  statement {
    sid       = "AllowDataBucketEvents"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.data.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy    = data.aws_iam_policy_document.events_queue.json
  # No ordering against the redrive policy: SetQueueAttributes changes only the attributes it
  # is given, so the two are written side by side.
}

resource "aws_s3_bucket_notification" "data" {
  bucket = aws_s3_bucket.data.id

  queue {
    id            = "input-object-created"
    queue_arn     = aws_sqs_queue.events.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = local.input_prefix
  }

  # S3 checks that it may send to the queue when the notification is written.
  depends_on = [aws_sqs_queue_policy.events]
}
