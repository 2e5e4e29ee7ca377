data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  kms_key_arn = var.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn

  # The three files of a bundle and the content type each is served with.
  bundle_files = {
    "model.tflite" = "application/octet-stream"
    "labels.txt"   = "text/plain; charset=utf-8"
    "model.json"   = "application/json"
  }

  # model.json is the single source of truth for the bundle's name, version and checksum.
  manifest         = var.upload_model_bundle ? jsondecode(file("${var.model_bundle_dir}/model.json")) : null
  model_name       = var.upload_model_bundle ? tostring(local.manifest.name) : null
  model_version    = var.upload_model_bundle ? tostring(local.manifest.version) : null
  model_sha256     = var.upload_model_bundle ? lower(tostring(local.manifest.sha256)) : null
  model_key_prefix = var.upload_model_bundle ? "${var.model_prefix}/${local.model_name}/${local.model_version}" : var.model_prefix

  # The candidate of a canary rollout: a second bundle beside the primary, under its own
  # <name>/<version> prefix, read the same way from its own model.json.
  has_candidate        = var.candidate_bundle_dir != null
  candidate_manifest   = local.has_candidate ? jsondecode(file("${var.candidate_bundle_dir}/model.json")) : null
  candidate_name       = local.has_candidate ? tostring(local.candidate_manifest.name) : null
  candidate_version    = local.has_candidate ? tostring(local.candidate_manifest.version) : null
  candidate_sha256     = local.has_candidate ? lower(tostring(local.candidate_manifest.sha256)) : null
  candidate_key_prefix = local.has_candidate ? "${var.model_prefix}/${local.candidate_name}/${local.candidate_version}" : null

  # What is uploaded: each file of the primary bundle and of the candidate, keyed by its S3 key
  # (see aws_s3_object.model for why not by bundle).
  bundles = merge(
    var.upload_model_bundle ? {
      primary = { dir = var.model_bundle_dir, key_prefix = local.model_key_prefix, name = local.model_name, version = local.model_version, sha256 = local.model_sha256 }
    } : {},
    # A candidate under the primary's prefix is refused by aws_s3_object.model's precondition
    # (left out here, its keys would collide with the primary's before that could say why).
    local.has_candidate && local.candidate_key_prefix != local.model_key_prefix ? {
      candidate = { dir = var.candidate_bundle_dir, key_prefix = local.candidate_key_prefix, name = local.candidate_name, version = local.candidate_version, sha256 = local.candidate_sha256 }
    } : {},
  )
  bundle_objects = {
    for pair in setproduct(keys(local.bundles), keys(local.bundle_files)) :
    "${local.bundles[pair[0]].key_prefix}/${pair[1]}" => merge(local.bundles[pair[0]], {
      bundle = pair[0], file = pair[1], source = "${local.bundles[pair[0]].dir}/${pair[1]}"
    })
  }

  # Key policy statements for services that publish to this stack's encrypted topics and
  # queues, keyed by their kms_key_service_access switch. Each is scoped by the conditions its
  # service supports:
  # - aws:SourceAccount where the service sends it with its KMS requests;
  # - aws:SourceArn, the resources that may publish;
  # - topic_arns: kms:EncryptionContext:aws:sns:topicArn, the encryption context SNS puts on
  #   every data key of a topic, so the grant only covers this stack's topics.
  # EventBridge does not support aws:SourceAccount or aws:SourceArn on its KMS requests for
  # encrypted targets: with them the key refuses it and rule deliveries to the topic are
  # dropped, so its statement is scoped by the topic instead.
  stack_topic_arns = ["arn:${local.partition}:sns:${local.region}:${local.account_id}:${var.name_prefix}-*"]
  kms_publisher_grants = {
    cloudwatch_alarms = {
      sid            = "CloudWatchAlarmsPublishToEncryptedTopics"
      service        = "cloudwatch.amazonaws.com"
      source_account = true
      source_arns    = null
      topic_arns     = local.stack_topic_arns
    }
    eventbridge = {
      sid            = "EventBridgeRulesPublishToEncryptedTopics"
      service        = "events.amazonaws.com"
      source_account = false
      source_arns    = null
      topic_arns     = local.stack_topic_arns
    }
    s3_notifications = {
      sid            = "S3NotificationsToEncryptedQueues"
      service        = "s3.amazonaws.com"
      source_account = true
      source_arns    = ["arn:${local.partition}:s3:::${var.name_prefix}*"]
      topic_arns     = null
    }
  }
}

################################################################################
# KMS key
################################################################################

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:Key policy: resource "*" means this key only; each service statement is limited by conditions (source account and ARN, or the encryption context of this stack's log groups and topics).
  #checkov:skip=CKV_AWS_356:Key policy: resource "*" means this key only, it cannot be narrowed further.
  #checkov:skip=CKV_AWS_109:Key policy: the account must administer its own key, or the key becomes unmanageable.
  count = var.create_kms_key ? 1 : 0

  # In a key policy "*" as resource means "this key". The account statement is what lets IAM
  # policies in this account grant use of the key; it lists actions instead of kms:*.
  statement {
    sid    = "AccountAdministersAndDelegatesThroughIam"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    actions = [
      "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
      "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
      "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand",
      "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
    ]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_service_access.logs ? [1] : []
    content {
      sid    = "CloudWatchLogsForStackLogGroups"
      effect = "Allow"
      principals {
        type        = "Service"
        identifiers = ["logs.${local.region}.amazonaws.com"]
      }
      actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
      resources = ["*"]
      condition {
        test     = "ArnLike"
        variable = "kms:EncryptionContext:aws:logs:arn"
        values = [
          "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${var.name_prefix}*",
          "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/*/${var.name_prefix}*",
          "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:aws-waf-logs-${var.name_prefix}*",
        ]
      }
    }
  }

  # Services that publish to encrypted topics/queues of this account: same grant, own switch.
  dynamic "statement" {
    for_each = { for key, grant in local.kms_publisher_grants : key => grant if var.kms_key_service_access[key] }
    content {
      sid    = statement.value.sid
      effect = "Allow"
      principals {
        type        = "Service"
        identifiers = [statement.value.service]
      }
      actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
      resources = ["*"]
      dynamic "condition" {
        for_each = statement.value.source_account ? [local.account_id] : []
        content {
          test     = "StringEquals"
          variable = "aws:SourceAccount"
          values   = [condition.value]
        }
      }
      dynamic "condition" {
        for_each = statement.value.source_arns == null ? [] : [statement.value.source_arns]
        content {
          test     = "ArnLike"
          variable = "aws:SourceArn"
          values   = condition.value
        }
      }
      dynamic "condition" {
        for_each = statement.value.topic_arns == null ? [] : [statement.value.topic_arns]
        content {
          test     = "ArnLike"
          variable = "kms:EncryptionContext:aws:sns:topicArn"
          values   = condition.value
        }
      }
    }
  }
}

resource "aws_kms_key" "this" {
  count = var.create_kms_key ? 1 : 0

  description             = "${var.name_prefix}: model bucket, logs and alarm topic encryption"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_key_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms[0].json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  count = var.create_kms_key ? 1 : 0

  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.this[0].key_id
}

################################################################################
# Model bucket
################################################################################

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Models are re-uploaded from the bundle by Terraform; cross-region replication is the deployer's choice, not a module default.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to model uploads; the functions read the bundle at start-up.
  #checkov:skip=CKV_AWS_18:Access logging is optional (enable_access_logging) because it needs a separate log bucket.
  bucket        = var.bucket_name
  bucket_prefix = var.bucket_name == null ? "${var.name_prefix}-models-" : null
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Lifecycle rules apply to versions, so versioning must exist first.
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_logging" "this" {
  count = var.enable_access_logging ? 1 : 0

  bucket        = aws_s3_bucket.this.id
  target_bucket = var.access_logging.target_bucket
  target_prefix = var.access_logging.target_prefix
}

data "aws_iam_policy_document" "bucket" {
  count = var.enable_tls_only_policy ? 1 : 0

  # A Deny covering every S3 action is the point of this statement, so "s3:*" is deliberate.
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  count = var.enable_tls_only_policy ? 1 : 0

  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket[0].json

  # A policy and a public access block written at the same time can conflict on AWS.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

################################################################################
# Model bundle upload
################################################################################

# The primary bundle (upload_model_bundle) and the candidate of a canary rollout, each file of
# each under its bundle's <name>/<version> prefix, keyed by that S3 key rather than by bundle:
# - promoting the candidate (its folder becomes model_bundle_dir, the canary goes) keeps the
#   very same instances, so nothing is re-created and nothing is deleted under the version
#   that is about to serve alone;
# - a key no longer wanted (the old primary's after a promotion or a new model, the
#   candidate's after a rollback) leaves for_each, and Terraform deletes an instance only
#   after updating what depended on it: the function's versions and its alias have moved away.
# Keyed by bundle, a new version was a replacement (the object the alias still served deleted
# first), and a promotion deleted, after the apply wrote them as the primary's, the keys the
# candidate had written.
resource "aws_s3_object" "model" {
  for_each = local.bundle_objects

  bucket       = aws_s3_bucket.this.id
  key          = each.key
  source       = each.value.source
  content_type = local.bundle_files[each.value.file]
  # With kms_key_id the provider cannot use etag for change detection; source_hash is the
  # content checksum Terraform compares instead.
  source_hash            = filemd5(each.value.source)
  server_side_encryption = "aws:kms"
  kms_key_id             = local.kms_key_arn
  tags                   = var.tags

  lifecycle {
    precondition {
      condition     = can(regex("^[A-Za-z0-9._-]+$", each.value.name)) && can(regex("^[A-Za-z0-9._-]+$", each.value.version))
      error_message = "The ${each.value.bundle} bundle's model.json name and version must be non-empty and use only letters, digits, '.', '_' and '-' (they become S3 key segments)."
    }
    precondition {
      condition     = can(regex("^[0-9a-f]{64}$", each.value.sha256)) && (each.value.file != "model.tflite" || each.value.sha256 == filesha256(each.value.source))
      error_message = "The ${each.value.bundle} bundle's model.json sha256 does not match its model.tflite: the bundle is inconsistent, rebuild it."
    }
    precondition {
      # The same keys for both bundles would be one object: the candidate's files would
      # replace the model the primary version serves.
      condition     = !local.has_candidate || local.candidate_key_prefix != local.model_key_prefix
      error_message = "The candidate bundle has the primary's name and version (${coalesce(local.candidate_key_prefix, "-")}): give it another version in its model.json, or its upload would replace the primary's files."
    }
  }

  depends_on = [
    aws_s3_bucket_server_side_encryption_configuration.this,
    aws_s3_bucket_ownership_controls.this,
  ]
}

# States applied before the objects were keyed by S3 key held them as aws_s3_object.bundle
# (the primary's, by file name) and aws_s3_object.candidate. moved blocks cannot map those
# addresses to keys read from model.json, and letting Terraform destroy them would delete the
# keys aws_s3_object.model writes: they are forgotten instead, and written again (same keys,
# same content) by aws_s3_object.model.
removed {
  from = aws_s3_object.bundle
  lifecycle {
    destroy = false
  }
}

removed {
  from = aws_s3_object.candidate
  lifecycle {
    destroy = false
  }
}
