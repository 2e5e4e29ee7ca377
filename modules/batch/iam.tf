###############################################################################
# IAM: dispatcher, Batch service, task execution, job (worker)
###############################################################################

locals {
  data_arn = aws_s3_bucket.data.arn
  job_definition_arns = [
    aws_batch_job_definition.worker.arn_prefix,
    "${aws_batch_job_definition.worker.arn_prefix}:*",
  ]
  kms_via_s3 = "s3.${local.region}.amazonaws.com"
}

# ----------------------------------------------------------------- dispatcher

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "dispatcher" {
  name               = local.dispatcher_name
  description        = "Execution role of ${local.dispatcher_name}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = var.tags
}

data "aws_iam_policy_document" "dispatcher" {
  statement {
    sid = "ConsumeS3Events"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.events.arn]
  }

  statement {
    sid       = "ReadWriteManifests"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.data_arn}/${local.manifest_prefix}*"]
  }

  statement {
    sid       = "SubmitWorkerJobs"
    actions   = ["batch:SubmitJob"]
    resources = concat([aws_batch_job_queue.this.arn], local.job_definition_arns)
  }

  # A redelivery finds the job an earlier claim submitted by name. ListJobs has no
  # resource-level permissions: AWS accepts only "*".
  statement {
    sid       = "FindExistingJobs"
    actions   = ["batch:ListJobs"]
    resources = ["*"]
  }

  statement {
    sid       = "UseDataKeyViaS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = concat(
        [local.kms_via_s3],
        var.queue.encryption == "KMS" ? ["sqs.${local.region}.amazonaws.com"] : [],
      )
    }
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.dispatcher.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.enable_xray_tracing ? [1] : []
    content {
      # X-Ray has no resource-level permissions: these actions only accept "*".
      sid       = "XRayWrite"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "dispatcher" {
  name   = "inferstack-dispatcher"
  role   = aws_iam_role.dispatcher.id
  policy = data.aws_iam_policy_document.dispatcher.json
}

# ENI management for the dispatcher in a VPC (dispatcher.in_vpc), instead of the AWS managed
# AWSLambdaVPCAccessExecutionRole (log writes and ec2 actions on "*"): what Lambda uses the execution
# role for (https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#configuration-vpc-permissions).
data "aws_iam_policy_document" "dispatcher_vpc_access" {
  count = var.dispatcher.in_vpc ? 1 : 0

  # Describe* have no resource-level permissions: "*" only.
  statement {
    sid       = "DescribeNetwork"
    actions   = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"]
    resources = ["*"]
  }

  statement {
    sid     = "CreateInterfaceInOwnSubnets"
    actions = ["ec2:CreateNetworkInterface"]
    resources = concat(
      ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:network-interface/*"],
      [for id in var.subnet_ids : "arn:${local.partition}:ec2:${local.region}:${local.account_id}:subnet/${id}"],
      [for id in var.security_group_ids : "arn:${local.partition}:ec2:${local.region}:${local.account_id}:security-group/${id}"],
    )
  }

  # Lambda creates the interfaces, so their IDs are unknown here: the account's and region's.
  statement {
    sid       = "ManageInterfaces"
    actions   = ["ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
    resources = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:network-interface/*"]
  }
}

resource "aws_iam_role_policy" "dispatcher_vpc_access" {
  count = var.dispatcher.in_vpc ? 1 : 0

  name   = "inferstack-dispatcher-vpc-access"
  role   = aws_iam_role.dispatcher.id
  policy = data.aws_iam_policy_document.dispatcher_vpc_access[0].json
}

# ------------------------------------------------------------- Batch service

# Only for emulators (create_batch_service_role): on AWS the compute environment uses the
# service-linked role AWSServiceRoleForBatch, which AWS Batch creates when it is missing.
data "aws_iam_policy_document" "assume_batch" {
  count = var.create_batch_service_role ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["batch.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "batch_service" {
  count = var.create_batch_service_role ? 1 : 0

  name               = "${var.name_prefix}-batch-service"
  description        = "AWS Batch service role of ${var.name_prefix}-fargate"
  assume_role_policy = data.aws_iam_policy_document.assume_batch[0].json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "batch_service" {
  count = var.create_batch_service_role ? 1 : 0

  role       = aws_iam_role.batch_service[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSBatchServiceRole"
}

# ---------------------------------------------- task execution (pull + logs)

data "aws_iam_policy_document" "assume_ecs_tasks" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${local.worker_name}-execution"
  description        = "Fargate task execution role of ${local.worker_name} (image pull, logs)"
  assume_role_policy = data.aws_iam_policy_document.assume_ecs_tasks.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  # Pulling from private ECR: the module's repository, or the repository of a brought ECR
  # worker_image (any account or region). A public image needs neither statement.
  # GetAuthorizationToken has no resource-level permissions: AWS accepts only "*".
  dynamic "statement" {
    for_each = local.pull_from_ecr ? [1] : []
    content {
      sid       = "EcrLogin"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = local.pull_from_ecr ? [1] : []
    content {
      sid       = "PullWorkerImage"
      actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
      resources = [local.worker_repository_arn]
    }
  }

  statement {
    sid       = "WriteWorkerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.worker.arn}:*"]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "inferstack-worker-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# ------------------------------------------------------------- job (worker)

resource "aws_iam_role" "job" {
  name               = "${local.worker_name}-job"
  description        = "Job role of ${local.worker_name}: model, input, manifests, output"
  assume_role_policy = data.aws_iam_policy_document.assume_ecs_tasks.json
  tags               = var.tags
}

data "aws_iam_policy_document" "job" {
  statement {
    sid       = "ReadModelBundle"
    actions   = ["s3:GetObject"]
    resources = [for p in local.model_prefixes : "${var.model_bucket_arn}/${p}*"]
  }

  statement {
    sid       = "ListModelPrefix"
    actions   = ["s3:ListBucket"]
    resources = [var.model_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for p in local.model_prefixes : "${p}*"]
    }
  }

  statement {
    sid       = "ReadInputsAndManifests"
    actions   = ["s3:GetObject"]
    resources = ["${local.data_arn}/${local.input_prefix}*", "${local.data_arn}/${local.manifest_prefix}*"]
  }

  # Results and summaries; reading them back lets a retried child skip finished images.
  statement {
    sid       = "ReadWriteOutput"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.data_arn}/${local.output_prefix}*"]
  }

  # Listing output/ finds finished images; listing input/ lets S3 answer 404 rather than 403
  # for an input deleted after it was queued, so the worker writes an error record for it
  # instead of failing the child as an infrastructure fault.
  statement {
    sid       = "ListInputAndOutput"
    actions   = ["s3:ListBucket"]
    resources = [local.data_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.input_prefix}*", "${local.output_prefix}*"]
    }
  }

  statement {
    sid       = "UseDataKeysViaS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via_s3]
    }
  }
}

resource "aws_iam_role_policy" "job" {
  name   = "inferstack-worker-job"
  role   = aws_iam_role.job.id
  policy = data.aws_iam_policy_document.job.json
}
