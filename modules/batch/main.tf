data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  bucket_name     = coalesce(var.data_bucket.name, "${var.name_prefix}-data-${local.account_id}")
  dispatcher_name = "${var.name_prefix}-dispatcher"
  worker_name     = "${var.name_prefix}-worker"

  input_prefix    = "input/"
  output_prefix   = "output/"
  manifest_prefix = "manifests/"
  image_suffixes  = ".jpg,.jpeg,.png,.webp,.bmp,.gif"

  # s3://bucket/prefix/ -> "bucket" and "prefix/" ("" for the bucket root).
  model_bucket = split("/", trimprefix(var.model_uri, "s3://"))[0]
  model_prefix = trimprefix(trimprefix(var.model_uri, "s3://"), "${local.model_bucket}/")
  # Every bundle prefix the job role may read: model_uri's and the additional ones.
  model_prefixes = distinct(concat(
    [local.model_prefix],
    [for u in var.additional_model_uris : trimprefix(trimprefix(u, "s3://"), "${local.model_bucket}/")],
  ))

  worker_image = coalesce(var.worker_image, try("${aws_ecr_repository.worker[0].repository_url}:${var.worker_image_tag}", null))
  # docker build --platform value of the worker image (Fargate's runtimePlatform.cpuArchitecture).
  worker_platform = var.architecture == "arm64" ? "linux/arm64" : "linux/amd64"

  # A brought private ECR image (any account or region) -> its repository, for the pull permission;
  # null for any other registry (public images need no permission).
  byo_image_ecr = var.worker_image == null ? null : try(regex(
    "^(?P<account>[0-9]{12})\\.dkr\\.ecr(?:-fips)?\\.(?P<region>[a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?/(?P<repository>[a-z0-9][a-z0-9._/-]*?)(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?(?:@sha256:[a-f0-9]{64})?$",
    var.worker_image,
  ), null)
  pull_from_ecr = var.worker_image == null || local.byo_image_ecr != null
  worker_repository_arn = (
    var.worker_image == null ? try(aws_ecr_repository.worker[0].arn, null) :
    local.byo_image_ecr == null ? null :
    "arn:${local.partition}:ecr:${local.byo_image_ecr.region}:${local.byo_image_ecr.account}:repository/${local.byo_image_ecr.repository}"
  )

  # The worker's only writable path (the root file system is read-only): a task-scoped bind
  # mount on the task's ephemeral storage. The image declares VOLUME for it and keeps its
  # model cache (MODEL_CACHE_DIR) under it.
  worker_scratch_path = "/tmp"

  queue_visibility_timeout = coalesce(var.queue.visibility_timeout_seconds, 6 * var.dispatcher.timeout)

  powertools = {
    POWERTOOLS_METRICS_NAMESPACE = var.telemetry.namespace
  }

  log_group_names = {
    dispatcher = aws_cloudwatch_log_group.dispatcher.name
    worker     = aws_cloudwatch_log_group.worker.name
  }
}
