###############################################################################
# Dispatcher: SQS (S3 events) -> manifest -> AWS Batch array job
###############################################################################

resource "aws_cloudwatch_log_group" "dispatcher" {
  name              = "/aws/lambda/${local.dispatcher_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "dispatcher" {
  #checkov:skip=CKV_AWS_116:Invoked by an SQS event source mapping; failed messages are redelivered and end in the queue's own DLQ. A function DLQ only applies to asynchronous invocations.
  #checkov:skip=CKV_AWS_117:The VPC is optional (dispatcher.in_vpc); outside a VPC the function needs no NAT or endpoints to reach S3 and Batch.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile; the zips are built reproducibly by the project and pinned by source_code_hash.
  function_name = local.dispatcher_name
  description   = "inferstack batch dispatcher: S3 events -> manifest -> Batch array job"
  role          = aws_iam_role.dispatcher.arn
  handler       = "inferstack_dispatcher.handler.lambda_handler"
  runtime       = var.runtime
  architectures = [var.architecture]
  memory_size   = var.dispatcher.memory_size
  timeout       = var.dispatcher.timeout

  filename         = var.dispatcher_zip_path
  source_code_hash = filebase64sha256(var.dispatcher_zip_path)
  layers           = var.layer_arns

  reserved_concurrent_executions = var.dispatcher.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = merge(local.powertools, {
      DATA_BUCKET             = aws_s3_bucket.data.id
      INPUT_PREFIX            = local.input_prefix
      OUTPUT_PREFIX           = local.output_prefix
      MANIFEST_PREFIX         = local.manifest_prefix
      IMAGE_SUFFIXES          = local.image_suffixes
      IMAGES_PER_CHILD        = tostring(var.images_per_child)
      MAX_ARRAY_SIZE          = tostring(var.max_array_size)
      JOB_QUEUE               = aws_batch_job_queue.this.arn
      JOB_DEFINITION          = aws_batch_job_definition.worker.arn_prefix
      POWERTOOLS_SERVICE_NAME = var.telemetry.dispatcher_service
      LOG_LEVEL               = var.dispatcher.log_level
    })
  }

  tracing_config {
    mode = var.enable_xray_tracing ? "Active" : "PassThrough"
  }

  dynamic "vpc_config" {
    for_each = var.dispatcher.in_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  tags = var.tags

  depends_on = [
    aws_cloudwatch_log_group.dispatcher,
    aws_iam_role_policy.dispatcher,
    aws_iam_role_policy.dispatcher_vpc_access,
  ]
}

resource "aws_lambda_event_source_mapping" "dispatcher" {
  event_source_arn                   = aws_sqs_queue.events.arn
  function_name                      = aws_lambda_function.dispatcher.arn
  batch_size                         = var.dispatcher.batch_size
  maximum_batching_window_in_seconds = var.dispatcher.maximum_batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]
  enabled                            = true

  # Bounds the concurrent dispatchers without reserving concurrency (a reservation fails in a
  # new account whose reduced quota has no room above the unreserved minimum).
  dynamic "scaling_config" {
    for_each = var.dispatcher.maximum_concurrency == 0 ? [] : [1]
    content {
      maximum_concurrency = var.dispatcher.maximum_concurrency
    }
  }
}
