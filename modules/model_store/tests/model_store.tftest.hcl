# Module logic only: the AWS provider is mocked, nothing is created anywhere.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
      arn        = "arn:aws:iam::123456789012:user/test"
      user_id    = "AIDTEST"
    }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_kms_key" {
    defaults = {
      arn    = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
      key_id = "11111111-2222-3333-4444-555555555555"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      id  = "test-stack-models-abc"
      arn = "arn:aws:s3:::test-stack-models-abc"
    }
  }
}

variables {
  name_prefix      = "test-stack"
  model_bundle_dir = "../../tests/terraform/fixtures/bundle"
  tags             = { Project = "inferstack-test" }
}

run "defaults" {
  command = apply

  assert {
    condition     = aws_kms_key.this[0].enable_key_rotation && aws_kms_key.this[0].deletion_window_in_days == 30
    error_message = "the created key must rotate and keep the 30-day deletion window by default"
  }
  assert {
    condition     = aws_kms_alias.this[0].name == "alias/test-stack"
    error_message = "alias must be alias/<name_prefix>"
  }
  assert {
    condition     = aws_s3_bucket.this.bucket_prefix == "test-stack-models-" && !aws_s3_bucket.this.force_destroy
    error_message = "bucket name must be generated from the prefix and force_destroy off by default"
  }
  assert {
    condition = alltrue([
      for r in aws_s3_bucket_server_side_encryption_configuration.this.rule :
      r.bucket_key_enabled && one(r.apply_server_side_encryption_by_default).sse_algorithm == "aws:kms" &&
      one(r.apply_server_side_encryption_by_default).kms_master_key_id == aws_kms_key.this[0].arn
    ])
    error_message = "default encryption must be SSE-KMS with the created key and a bucket key"
  }
  assert {
    condition     = one(aws_s3_bucket_versioning.this.versioning_configuration).status == "Enabled"
    error_message = "versioning must be enabled"
  }
  assert {
    condition = (aws_s3_bucket_public_access_block.this.block_public_acls && aws_s3_bucket_public_access_block.this.block_public_policy
    && aws_s3_bucket_public_access_block.this.ignore_public_acls && aws_s3_bucket_public_access_block.this.restrict_public_buckets)
    error_message = "all four public access blocks must be on"
  }
  assert {
    condition     = one(aws_s3_bucket_ownership_controls.this.rule).object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be disabled (BucketOwnerEnforced)"
  }
  assert {
    condition     = length(aws_s3_bucket_policy.this) == 1 && data.aws_iam_policy_document.bucket[0].statement[0].effect == "Deny"
    error_message = "the TLS-only deny policy must be attached by default"
  }
  assert {
    condition     = one(data.aws_iam_policy_document.bucket[0].statement[0].condition).variable == "aws:SecureTransport"
    error_message = "the bucket policy must deny on aws:SecureTransport = false"
  }
  assert {
    condition     = length(aws_s3_bucket_logging.this) == 0
    error_message = "access logging is off by default"
  }
  assert {
    condition     = [for s in data.aws_iam_policy_document.kms[0].statement : s.sid] == ["AccountAdministersAndDelegatesThroughIam", "CloudWatchLogsForStackLogGroups", "CloudWatchAlarmsPublishToEncryptedTopics", "EventBridgeRulesPublishToEncryptedTopics", "S3NotificationsToEncryptedQueues"]
    error_message = "key policy must have the account statement and the four service statements by default"
  }
  assert {
    # jsonencode on both sides: a list from sort() and a tuple literal never compare equal.
    condition = jsonencode({
      for s in data.aws_iam_policy_document.kms[0].statement : s.sid => sort([for c in s.condition : c.variable])
      if length(s.principals) > 0 && one(s.principals).type == "Service"
      }) == jsonencode({
      CloudWatchLogsForStackLogGroups          = ["kms:EncryptionContext:aws:logs:arn"]
      CloudWatchAlarmsPublishToEncryptedTopics = ["aws:SourceAccount", "kms:EncryptionContext:aws:sns:topicArn"]
      EventBridgeRulesPublishToEncryptedTopics = ["kms:EncryptionContext:aws:sns:topicArn"]
      S3NotificationsToEncryptedQueues         = ["aws:SourceAccount", "aws:SourceArn"]
    })
    error_message = "each service statement of the key policy must be scoped by its conditions"
  }
  assert {
    # EventBridge sends neither aws:SourceAccount nor aws:SourceArn with its KMS requests for
    # encrypted targets: a statement requiring them would drop every rule delivery.
    condition = alltrue([
      for s in data.aws_iam_policy_document.kms[0].statement : alltrue([
        for c in s.condition : !contains(["aws:SourceAccount", "aws:SourceArn"], c.variable)
      ]) if s.sid == "EventBridgeRulesPublishToEncryptedTopics"
    ])
    error_message = "the EventBridge key statement must not require aws:SourceAccount or aws:SourceArn"
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.kms[0].statement : alltrue([
        for c in s.condition : jsonencode(c.values) == jsonencode(["arn:aws:sns:eu-west-1:123456789012:test-stack-*"])
        if c.variable == "kms:EncryptionContext:aws:sns:topicArn"
      ])
    ])
    error_message = "topic-scoped key statements must name this stack's topics"
  }
  assert {
    condition     = !contains(flatten([for s in data.aws_iam_policy_document.kms[0].statement : s.actions]), "kms:*")
    error_message = "key policy must not grant kms:*"
  }
  assert {
    condition     = alltrue([for v in one(data.aws_iam_policy_document.kms[0].statement[1].condition).values : startswith(v, "arn:aws:logs:eu-west-1:123456789012:log-group:")])
    error_message = "CloudWatch Logs access must be limited to this account's log groups"
  }
  assert {
    condition     = keys(aws_s3_object.model) == ["models/fixture-model/3/labels.txt", "models/fixture-model/3/model.json", "models/fixture-model/3/model.tflite"]
    error_message = "the three bundle files must be uploaded"
  }
  assert {
    condition     = aws_s3_object.model["models/fixture-model/3/model.tflite"].key == "models/fixture-model/3/model.tflite" && output.model_object_keys == { "labels.txt" = "models/fixture-model/3/labels.txt", "model.json" = "models/fixture-model/3/model.json", "model.tflite" = "models/fixture-model/3/model.tflite" }
    error_message = "object keys must be <model_prefix>/<name>/<version>/<file> from model.json"
  }
  assert {
    condition     = alltrue([for k, o in aws_s3_object.model : o.kms_key_id == aws_kms_key.this[0].arn && o.source_hash == filemd5("../../tests/terraform/fixtures/bundle/${basename(k)}") && o.etag != null])
    error_message = "objects must be encrypted with the key and tracked with source_hash = filemd5"
  }
  assert {
    condition     = aws_s3_object.model["models/fixture-model/3/model.json"].content_type == "application/json"
    error_message = "model.json must be served as application/json"
  }
  assert {
    condition     = output.model_uri == "s3://test-stack-models-abc/models/fixture-model/3/"
    error_message = "model_uri must be s3://<bucket>/models/<name>/<version>/"
  }
  assert {
    condition     = output.model_prefix_arn == "arn:aws:s3:::test-stack-models-abc/models/fixture-model/3/*"
    error_message = "model_prefix_arn must cover exactly the bundle's objects"
  }
  assert {
    condition     = output.model_sha256 == filesha256("../../tests/terraform/fixtures/bundle/model.tflite") && output.model_name == "fixture-model" && output.model_version == "3"
    error_message = "model name, version and sha256 must come from model.json"
  }
  assert {
    condition     = output.kms_key_id == "11111111-2222-3333-4444-555555555555" && output.kms_alias_name == "alias/test-stack"
    error_message = "key outputs must describe the created key"
  }
  assert {
    condition     = aws_s3_bucket.this.tags["Project"] == "inferstack-test" && aws_kms_key.this[0].tags["Project"] == "inferstack-test" && aws_s3_object.model["models/fixture-model/3/labels.txt"].tags["Project"] == "inferstack-test"
    error_message = "tags must be applied to the key, the bucket and the objects"
  }
}

run "bring_your_own_key" {
  command = apply

  variables {
    create_kms_key = false
    kms_key_arn    = "arn:aws:kms:eu-west-1:123456789012:key/99999999-8888-7777-6666-555555555555"
  }

  assert {
    condition     = length(aws_kms_key.this) == 0 && length(aws_kms_alias.this) == 0 && length(data.aws_iam_policy_document.kms) == 0
    error_message = "no key, alias or key policy may be created when create_kms_key is false"
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default).kms_master_key_id == var.kms_key_arn
    error_message = "the given key must encrypt the bucket"
  }
  assert {
    condition     = alltrue([for o in aws_s3_object.model : o.kms_key_id == var.kms_key_arn])
    error_message = "the given key must encrypt the objects"
  }
  assert {
    condition     = output.kms_key_id == "99999999-8888-7777-6666-555555555555" && output.kms_alias_name == null
    error_message = "kms_key_id must be parsed from the given ARN"
  }
}

run "no_service_access_in_key_policy" {
  command = plan

  variables {
    kms_key_service_access = { logs = false, cloudwatch_alarms = false, eventbridge = false, s3_notifications = false }
  }

  assert {
    condition     = length(data.aws_iam_policy_document.kms[0].statement) == 1
    error_message = "only the account statement may remain when every service is switched off"
  }
}

run "tls_only_policy_off" {
  command = plan

  variables {
    enable_tls_only_policy = false
  }

  assert {
    condition     = length(aws_s3_bucket_policy.this) == 0 && length(data.aws_iam_policy_document.bucket) == 0
    error_message = "no bucket policy when enable_tls_only_policy is false"
  }
}

run "access_logging_on" {
  command = plan

  variables {
    enable_access_logging = true
    access_logging        = { target_bucket = "central-logs" }
  }

  assert {
    condition     = aws_s3_bucket_logging.this[0].target_bucket == "central-logs" && aws_s3_bucket_logging.this[0].target_prefix == "s3-access/models/"
    error_message = "access logging must go to the target bucket with the default prefix"
  }
}

run "named_bucket_no_upload" {
  command = apply

  variables {
    bucket_name         = "my-models"
    force_destroy       = true
    upload_model_bundle = false
    model_bundle_dir    = null
    model_prefix        = "ml/models"
  }

  assert {
    condition     = aws_s3_bucket.this.bucket == "my-models" && aws_s3_bucket.this.force_destroy
    error_message = "bucket_name and force_destroy must be passed through"
  }
  assert {
    condition     = length(aws_s3_object.model) == 0
    error_message = "nothing may be uploaded when upload_model_bundle is false"
  }
  assert {
    condition     = output.model_name == null && output.model_uri == "s3://test-stack-models-abc/ml/models/"
    error_message = "without an upload, model_uri is the models prefix and model metadata is null"
  }
}

run "custom_deletion_window_and_noncurrent_expiry" {
  command = plan

  variables {
    kms_key_deletion_window_days       = 7
    noncurrent_version_expiration_days = 14
  }

  assert {
    condition     = aws_kms_key.this[0].deletion_window_in_days == 7
    error_message = "deletion window must be passed through"
  }
  assert {
    condition     = one(aws_s3_bucket_lifecycle_configuration.this.rule[0].noncurrent_version_expiration).noncurrent_days == 14
    error_message = "noncurrent version expiry must be passed through"
  }
}

run "bundle_checksum_mismatch_is_refused" {
  command = plan

  variables {
    model_bundle_dir = "../../tests/terraform/fixtures/bad_bundle"
  }

  expect_failures = [aws_s3_object.model]
}

run "invalid_name_prefix" {
  command = plan
  variables {
    name_prefix = "Bad_Prefix"
  }
  expect_failures = [var.name_prefix]
}

run "byo_key_requires_arn" {
  command = plan
  variables {
    create_kms_key = false
  }
  expect_failures = [var.kms_key_arn]
}

run "kms_key_arn_must_be_an_arn" {
  command = plan
  variables {
    create_kms_key = false
    kms_key_arn    = "alias/something"
  }
  expect_failures = [var.kms_key_arn]
}

run "deletion_window_out_of_range" {
  command = plan
  variables {
    kms_key_deletion_window_days = 3
  }
  expect_failures = [var.kms_key_deletion_window_days]
}

run "access_logging_requires_target" {
  command = plan
  variables {
    enable_access_logging = true
  }
  expect_failures = [var.access_logging]
}

run "bundle_dir_must_hold_the_bundle" {
  command = plan
  variables {
    model_bundle_dir = "../../tests/terraform/fixtures"
  }
  expect_failures = [var.model_bundle_dir]
}

run "upload_requires_bundle_dir" {
  command = plan
  variables {
    model_bundle_dir = null
  }
  expect_failures = [var.model_bundle_dir]
}

run "model_prefix_without_slashes" {
  command = plan
  variables {
    model_prefix = "/models/"
  }
  expect_failures = [var.model_prefix]
}

run "bucket_name_must_be_valid" {
  command = plan
  variables {
    bucket_name = "Not_A_Bucket"
  }
  expect_failures = [var.bucket_name]
}

run "noncurrent_expiry_must_be_positive" {
  command = plan
  variables {
    noncurrent_version_expiration_days = 0
  }
  expect_failures = [var.noncurrent_version_expiration_days]
}

run "no_candidate_by_default" {
  command = plan

  assert {
    condition     = keys(aws_s3_object.model) == ["models/fixture-model/3/labels.txt", "models/fixture-model/3/model.json", "models/fixture-model/3/model.tflite"] && output.candidate == null
    error_message = "without candidate_bundle_dir nothing more is uploaded and the candidate output is null"
  }
}

run "candidate_uploaded_beside_the_primary" {
  command = apply

  variables {
    candidate_bundle_dir = "../../tests/terraform/fixtures/candidate_bundle"
  }

  assert {
    condition     = [for k in keys(aws_s3_object.model) : k if startswith(k, "models/fixture-model/4/")] == ["models/fixture-model/4/labels.txt", "models/fixture-model/4/model.json", "models/fixture-model/4/model.tflite"] && aws_s3_object.model["models/fixture-model/4/model.tflite"].key == "models/fixture-model/4/model.tflite"
    error_message = "the candidate's three files must go under <model_prefix>/<name>/<version>/ of its own model.json"
  }
  assert {
    condition     = alltrue([for k, o in aws_s3_object.model : o.kms_key_id == aws_kms_key.this[0].arn && o.server_side_encryption == "aws:kms" && o.source_hash == filemd5("../../tests/terraform/fixtures/candidate_bundle/${basename(k)}") if startswith(k, "models/fixture-model/4/")])
    error_message = "the candidate's objects must be encrypted with the key and tracked with source_hash"
  }
  assert {
    condition     = aws_s3_object.model["models/fixture-model/3/model.tflite"].key == "models/fixture-model/3/model.tflite" && output.model_object_keys == { "labels.txt" = "models/fixture-model/3/labels.txt", "model.json" = "models/fixture-model/3/model.json", "model.tflite" = "models/fixture-model/3/model.tflite" } && output.model_uri == "s3://test-stack-models-abc/models/fixture-model/3/"
    error_message = "the primary bundle must stay where it was"
  }
  assert {
    condition = output.model_object_keys == {
      "labels.txt"   = "models/fixture-model/3/labels.txt"
      "model.json"   = "models/fixture-model/3/model.json"
      "model.tflite" = "models/fixture-model/3/model.tflite"
    } && keys(output.model_object_version_ids) == ["labels.txt", "model.json", "model.tflite"]
    error_message = "model_object_keys and model_object_version_ids name the primary bundle's files only, by file name"
  }
  assert {
    condition = output.candidate == {
      uri        = "s3://test-stack-models-abc/models/fixture-model/4/"
      prefix_arn = "arn:aws:s3:::test-stack-models-abc/models/fixture-model/4/*"
      name       = "fixture-model"
      version    = "4"
      sha256     = filesha256("../../tests/terraform/fixtures/candidate_bundle/model.tflite")
    }
    error_message = "the candidate output must describe the uploaded candidate, its sha256 from its model.json"
  }
}

run "candidate_with_the_primarys_version_is_refused" {
  command = plan

  variables {
    candidate_bundle_dir = "../../tests/terraform/fixtures/bundle"
  }

  expect_failures = [aws_s3_object.model]
}

run "inconsistent_candidate_is_refused" {
  command = plan

  variables {
    candidate_bundle_dir = "../../tests/terraform/fixtures/bad_candidate_bundle"
  }

  expect_failures = [aws_s3_object.model]
}

run "candidate_dir_must_hold_a_bundle" {
  command = plan
  variables {
    candidate_bundle_dir = "../../tests/terraform/fixtures"
  }
  expect_failures = [var.candidate_bundle_dir]
}

run "promotion_keeps_the_candidates_objects" {
  # The candidate applied above becomes the primary and the canary goes. Its objects keep their
  # addresses (keyed by S3 key) and are not replaced (a replaced object would be planned with
  # an unknown version id); only the old primary's keys leave for_each, to be deleted once
  # what depended on them has moved on.
  command = plan

  variables {
    model_bundle_dir     = "../../tests/terraform/fixtures/candidate_bundle"
    candidate_bundle_dir = null
  }

  assert {
    condition     = output.model_object_version_ids == run.candidate_uploaded_beside_the_primary.candidate_object_version_ids && length(output.model_object_version_ids) == 3
    error_message = "after a promotion the candidate's objects are the primary's, the same instances, not replaced"
  }
  assert {
    condition     = output.model_uri == "s3://test-stack-models-abc/models/fixture-model/4/" && output.candidate == null && output.model_object_keys["model.tflite"] == "models/fixture-model/4/model.tflite"
    error_message = "after a promotion the outputs name the promoted bundle"
  }
}
