###############################################################################
# AWS Batch on Fargate: compute environment, job queue, worker job definition
###############################################################################

resource "aws_cloudwatch_log_group" "worker" {
  name              = "/aws/batch/${local.worker_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_batch_compute_environment" "fargate" {
  compute_environment_name = "${var.name_prefix}-fargate"
  type                     = "MANAGED"
  state                    = "ENABLED"
  # null: AWS Batch's service-linked role AWSServiceRoleForBatch (created by AWS Batch when
  # missing). An explicit role only where an emulator requires one (create_batch_service_role).
  service_role = var.create_batch_service_role ? aws_iam_role.batch_service[0].arn : null

  compute_resources {
    type               = var.compute.use_spot ? "FARGATE_SPOT" : "FARGATE"
    max_vcpus          = var.compute.max_vcpus
    subnets            = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy_attachment.batch_service]
}

resource "aws_batch_job_queue" "this" {
  name     = "${var.name_prefix}-jobs"
  state    = "ENABLED"
  priority = 1

  compute_environment_order {
    order               = 1
    compute_environment = aws_batch_compute_environment.fargate.arn
  }

  tags = var.tags
}

locals {
  # At most 5 conditions, the first whose every pattern matches decides, no match means
  # "retry" (https://docs.aws.amazon.com/batch/latest/APIReference/API_EvaluateOnExit.html).
  # Not retried: the worker's deliberate exits, which another try would repeat. Retried,
  # while attempts remain: everything else - Spot/host interruptions, image pull and init
  # errors, the worker's EX_TEMPFAIL (75), and a worker that died (a signal: 137 for
  # SIGKILL and the OOM killer, 139 for a native crash; 1 for an unhandled exception). The
  # retry classifies the images that were in flight alone first and records an image that
  # kills the worker again as worker_crash (functions/inferstack/batch/inflight.py).
  retry_conditions = [
    var.compute.use_spot
    ? { action = "RETRY", on_status_reason = "Your Spot Task was interrupted*", on_reason = null, on_exit_code = null }
    : { action = "RETRY", on_status_reason = "Host EC2*", on_reason = null, on_exit_code = null },
    # EX_DATAERR: the manifest is malformed or the index outside it.
    { action = "EXIT", on_status_reason = null, on_reason = null, on_exit_code = "65" },
    # EX_CONFIG: the model bundle is refused (integrity, not the pinned sha256).
    { action = "EXIT", on_status_reason = null, on_reason = null, on_exit_code = "78" },
    # argparse's usage error: the job definition's command is wrong.
    { action = "EXIT", on_status_reason = null, on_reason = null, on_exit_code = "2" },
    { action = "RETRY", on_status_reason = null, on_reason = "*", on_exit_code = null },
  ]
}

resource "aws_batch_job_definition" "worker" {
  name                  = local.worker_name
  type                  = "container"
  platform_capabilities = ["FARGATE"]
  propagate_tags        = true

  container_properties = jsonencode({
    image            = local.worker_image
    command          = ["inferstack-worker", "--manifest", "Ref::manifest"]
    jobRoleArn       = aws_iam_role.job.arn
    executionRoleArn = aws_iam_role.execution.arn
    # Nothing in the image can be changed at run time; the worker writes only under the
    # scratch volume (task-scoped, on the task's ephemeral storage, gone with the task).
    readonlyRootFilesystem = true
    volumes                = [{ name = "scratch" }]
    mountPoints            = [{ sourceVolume = "scratch", containerPath = local.worker_scratch_path, readOnly = false }]
    resourceRequirements = [
      { type = "VCPU", value = tostring(var.job.vcpu) },
      { type = "MEMORY", value = tostring(var.job.memory) },
    ]
    environment = [
      for k, v in {
        MODEL_URI                    = var.model_uri
        DATA_BUCKET                  = aws_s3_bucket.data.id
        OUTPUT_PREFIX                = local.output_prefix
        IMAGES_PER_CHILD             = tostring(var.images_per_child)
        POWERTOOLS_SERVICE_NAME      = var.telemetry.worker_service
        POWERTOOLS_METRICS_NAMESPACE = local.powertools.POWERTOOLS_METRICS_NAMESPACE
        # The model the deployment uploaded: a bundle that declares another one is refused.
        MODEL_SHA256 = var.model_sha256 == null ? null : lower(var.model_sha256)
      } : { name = k, value = v } if v != null
    ]
    networkConfiguration = {
      assignPublicIp = "DISABLED"
    }
    fargatePlatformConfiguration = {
      platformVersion = "LATEST"
    }
    runtimePlatform = {
      cpuArchitecture       = var.architecture == "arm64" ? "ARM64" : "X86_64"
      operatingSystemFamily = "LINUX"
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "worker"
      }
    }
  })

  retry_strategy {
    attempts = var.job.attempts

    dynamic "evaluate_on_exit" {
      for_each = var.job.attempts > 1 ? local.retry_conditions : []
      content {
        action           = evaluate_on_exit.value.action
        on_status_reason = evaluate_on_exit.value.on_status_reason
        on_reason        = evaluate_on_exit.value.on_reason
        on_exit_code     = evaluate_on_exit.value.on_exit_code
      }
    }
  }

  timeout {
    attempt_duration_seconds = var.job.timeout
  }

  tags = var.tags
}

###############################################################################
# ECR repository of the worker image
###############################################################################

resource "aws_ecr_repository" "worker" {
  #checkov:skip=CKV_AWS_51:Tags are IMMUTABLE by default (ecr.immutable_tags defaults to true, asserted by tests/batch.tftest.hcl); checkov cannot resolve an optional() attribute of an object variable and sees the conditional expression, not its value. Mutable tags are an explicit opt-in.
  count = var.create_ecr_repository ? 1 : 0

  name                 = local.worker_name
  image_tag_mutability = var.ecr.immutable_tags ? "IMMUTABLE" : "MUTABLE"
  force_delete         = var.ecr.force_delete

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }

  tags = var.tags
}

resource "aws_ecr_lifecycle_policy" "worker" {
  count = var.create_ecr_repository ? 1 : 0

  repository = aws_ecr_repository.worker[0].name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Expire untagged images"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.ecr.untagged_expiration_days
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the newest images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.ecr.keep_images
        }
        action = { type = "expire" }
      },
    ]
  })
}
